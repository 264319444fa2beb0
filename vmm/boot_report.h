// --report-timing: how long a boot took and how much memory passage used.
//
// Times are measured from RecordProcessStart() (first thing in main) with
// CLOCK_MONOTONIC:
//   first_output_ms  the guest's first byte on the serial port (for Linux:
//                    the decompressor or the first printk)
//   marker_ms        the first serial line that marks "init is running":
//                    with -timing-marker TEXT, the first line containing TEXT;
//                    by default the first non-empty line that does not start
//                    with '[' after at least one line that does, i.e. the
//                    first line not from the kernel's timestamped log once
//                    that log has started (needs printk timestamps, the
//                    default with CONFIG_PRINTK_TIME; the decompressor's
//                    untimestamped lines come before the log and do not count)
//   exit_ms          when the report is made (passage is about to exit)
//   phases           when each step of passage's own set-up ended
//                    (MarkBootPhase, in order: "kvm", "memory",
//                    "passthrough", "pci", "acpi", "kernel", "vcpus", "run"):
//                    where the time before the guest's first instruction goes;
//                    and "dma_mapped", when guest RAM was all in the DMA
//                    spaces of passed-through devices (-dma-map: before
//                    "run" with sync, by the mapping thread with background)
// Memory at exit: VmRSS, VmHWM, RssAnon/RssFile/RssShmem from
// /proc/self/status; guest_ram_kib, the guest RAM actually backed (mincore()
// over the guest RAM mapping: the pages the guest touched, which VmRSS
// includes); own_rss_kib = VmRSS - guest_ram_kib, passage's own footprint
// (its code, heap, stacks, KVM run pages). hugetlb-backed guest RAM is in
// none of the RSS figures, so then own_rss_kib = VmRSS.
#ifndef PASSAGE_VMM_BOOT_REPORT_H_
#define PASSAGE_VMM_BOOT_REPORT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "devices/io_bus.h"

namespace passage {

// Call first in main; later calls do nothing.
void RecordProcessStart();
// Nanoseconds since RecordProcessStart (or since the first call of this).
int64_t NanosSinceStart();

// Records that set-up step NAME ended now (thread-safe; the first mark of a
// name counts). Cheap enough to call unconditionally.
void MarkBootPhase(absl::string_view name);
// The marks so far, in order: name, nanoseconds since start.
std::vector<std::pair<std::string, int64_t>> BootPhases();

class BootTimer {
 public:
  explicit BootTimer(std::string marker) : marker_(std::move(marker)) {}

  // Every byte the guest transmits on its console (thread-safe).
  void OnOutput(uint8_t byte) ABSL_LOCKS_EXCLUDED(mu_);

  std::optional<int64_t> first_output_ns() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<int64_t> marker_ns() const ABSL_LOCKS_EXCLUDED(mu_);
  std::string marker_line() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Finishes the current line; true if it is the marker line.
  bool EndLine() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string marker_;
  mutable absl::Mutex mu_;
  std::optional<int64_t> first_output_ns_ ABSL_GUARDED_BY(mu_);
  std::optional<int64_t> marker_ns_ ABSL_GUARDED_BY(mu_);
  std::string marker_line_ ABSL_GUARDED_BY(mu_);
  std::string line_ ABSL_GUARDED_BY(mu_);
  bool saw_log_line_ ABSL_GUARDED_BY(mu_) = false;
};

// Sits in front of the 8250 UART on the port bus: forwards every access and
// tells `timer` about each byte written to the transmit register (DLAB and
// loopback tracked from LCR/MCR writes, as the UART sees them).
class SerialTap : public IoHandler {
 public:
  SerialTap(std::shared_ptr<IoHandler> uart, std::shared_ptr<BootTimer> timer)
      : uart_(std::move(uart)), timer_(std::move(timer)) {}
  void Read(uint64_t offset, std::span<uint8_t> data) override { uart_->Read(offset, data); }
  void Write(uint64_t offset, std::span<const uint8_t> data) override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const std::shared_ptr<IoHandler> uart_;
  const std::shared_ptr<BootTimer> timer_;
  absl::Mutex mu_;
  uint8_t lcr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t mcr_ ABSL_GUARDED_BY(mu_) = 0;
};

struct MemoryUsage {
  uint64_t vm_rss_kib = 0, vm_hwm_kib = 0, rss_anon_kib = 0, rss_file_kib = 0,
           rss_shmem_kib = 0;
  uint64_t guest_ram_kib = 0;  // filled by the caller (ResidentKib over guest RAM)
  uint64_t own_rss_kib() const {
    return vm_rss_kib > guest_ram_kib ? vm_rss_kib - guest_ram_kib : 0;
  }
};

// KiB of [addr, addr + len) backed by memory (mincore); 0 on error.
uint64_t ResidentKib(const void* addr, size_t len);

// Parses the text of /proc/PID/status.
absl::StatusOr<MemoryUsage> ParseProcStatus(absl::string_view text);
absl::StatusOr<MemoryUsage> ReadOwnMemoryUsage();

// One line of JSON (no newline) with the times above, the memory figures and
// `stop` (why the VM ended).
std::string TimingReportJson(const BootTimer& timer, const MemoryUsage& memory,
                             absl::string_view stop);

}  // namespace passage

#endif  // PASSAGE_VMM_BOOT_REPORT_H_
