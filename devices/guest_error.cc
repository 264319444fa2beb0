#include "devices/guest_error.h"

#include <time.h>

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

int64_t MonotonicNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

void ToStderr(const std::string& line) {
  // One write per line, so lines from several threads do not interleave.
  const std::string out = line + "\n";
  std::fputs(out.c_str(), stderr);
}

}  // namespace

GuestErrorLog& GuestErrorLog::Global() {
  static GuestErrorLog* const log = new GuestErrorLog(ToStderr, MonotonicNs);
  return *log;
}

void GuestErrorLog::EmitSuppressed(const std::pair<std::string, std::string>& key, Window& w) {
  if (w.suppressed == 0) return;
  sink_(absl::StrCat("passage: guest error: ", key.first, ": ", w.suppressed,
                     " similar messages suppressed (", key.second, ")"));
  w.suppressed = 0;
}

void GuestErrorLog::Report(absl::string_view device, absl::string_view kind,
                           absl::string_view what) {
  const int64_t now = clock_();
  absl::MutexLock lock(&mu_);
  auto key = std::make_pair(std::string(device), std::string(kind));
  auto [it, fresh] = windows_.try_emplace(key);
  Window& w = it->second;
  ++w.total;
  if (fresh || now - w.start >= kWindowNs) {
    EmitSuppressed(it->first, w);
    w.start = now;
    w.printed = 0;
  }
  if (w.printed >= kBurst) {
    ++w.suppressed;
    return;
  }
  ++w.printed;
  sink_(absl::StrCat("passage: guest error: ", device, ": ", what));
}

void GuestErrorLog::Flush() {
  absl::MutexLock lock(&mu_);
  for (auto& [key, w] : windows_) EmitSuppressed(key, w);
}

uint64_t GuestErrorLog::count(absl::string_view device, absl::string_view kind) const {
  absl::MutexLock lock(&mu_);
  auto it = windows_.find(std::make_pair(std::string(device), std::string(kind)));
  return it == windows_.end() ? 0 : it->second.total;
}

GuestErrorLog::Sink GuestErrorLog::SetSink(Sink sink) {
  absl::MutexLock lock(&mu_);
  std::swap(sink, sink_);
  return sink;
}

void GuestErrorLog::Reset() {
  absl::MutexLock lock(&mu_);
  windows_.clear();
}

void ReportGuestError(absl::string_view device, absl::string_view kind, absl::string_view what) {
  GuestErrorLog::Global().Report(device, kind, what);
}

}  // namespace passage
