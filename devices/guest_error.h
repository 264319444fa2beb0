// The one log for guest misbehaviour passage detects and survives: an
// out-of-range or malformed MSI-X access, a BAR placed over RAM or over
// another BAR, a config write outside every capability the guest was shown,
// and so on. The guest is untrusted, so these are neither passage's errors
// nor fatal: the access is dropped (or the BAR left undecoded) and one line
//   passage: guest error: <device>: <what>
// goes to stderr. A guest can repeat an access millions of times, so the log
// is rate-limited per device and kind (as the kernel's printk_ratelimit):
// at most kBurst lines per kWindow; the rest are counted, and the next line
// of that device and kind after the window (or Flush, at exit) first says
//   passage: guest error: <device>: N similar messages suppressed (<kind>)
// Thread-safe: vCPU threads report concurrently.
#ifndef PASSAGE_DEVICES_GUEST_ERROR_H_
#define PASSAGE_DEVICES_GUEST_ERROR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace passage {

class GuestErrorLog {
 public:
  static constexpr int kBurst = 10;
  static constexpr int64_t kWindowNs = 5'000'000'000;

  // Where lines go (without the trailing newline) and what time it is
  // (monotonic nanoseconds); tests inject both.
  using Sink = std::function<void(const std::string& line)>;
  using Clock = std::function<int64_t()>;

  GuestErrorLog(Sink sink, Clock clock) : sink_(std::move(sink)), clock_(std::move(clock)) {}

  // The process's log: stderr, CLOCK_MONOTONIC.
  static GuestErrorLog& Global();

  // One detection. `kind` groups messages for the limit ("msix-table",
  // "bar-placement", ...); `what` says what the guest did and what passage
  // did about it.
  void Report(absl::string_view device, absl::string_view kind, absl::string_view what)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Reports every count still suppressed (at exit).
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);

  // Detections so far of `device` and `kind` (printed or not); for tests.
  uint64_t count(absl::string_view device, absl::string_view kind) const ABSL_LOCKS_EXCLUDED(mu_);
  // Swaps the sink (tests capture the global log); returns the old one.
  Sink SetSink(Sink sink) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets every window and count (tests).
  void Reset() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Window {
    int64_t start = 0;
    int printed = 0;
    uint64_t suppressed = 0;
    uint64_t total = 0;
  };
  void EmitSuppressed(const std::pair<std::string, std::string>& key, Window& w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  Sink sink_ ABSL_GUARDED_BY(mu_);
  const Clock clock_;
  std::map<std::pair<std::string, std::string>, Window> windows_ ABSL_GUARDED_BY(mu_);
};

// GuestErrorLog::Global().Report(...): what devices call.
void ReportGuestError(absl::string_view device, absl::string_view kind, absl::string_view what);

}  // namespace passage

#endif  // PASSAGE_DEVICES_GUEST_ERROR_H_
