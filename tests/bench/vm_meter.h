#ifndef PASSAGE_TESTS_BENCH_VM_METER_H_
#define PASSAGE_TESTS_BENCH_VM_METER_H_

// The pure parts of bench-vmrun (the whole-VM meter of passage-bench): its
// flags, a VMM's memory read from /proc/PID/status and /proc/PID/smaps, and
// the console line matcher. No system calls here (unit-tested).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace passage::bench {

struct VmRunFlags {
  std::string marker = "RIG-BOOT";   // the console line that says the guest's init runs
  std::string end_marker;            // the line after which the guest only powers off
  uint64_t ram_kib = 0;              // the VMM's -m: guest RAM mappings are those this large
  std::string serial_path;           // the console, copied
  std::vector<std::string> command;  // the VMM and its arguments (after --)
};

// argv without the program name. Errors name the flag (one line).
absl::StatusOr<VmRunFlags> ParseVmRunFlags(const std::vector<std::string>& args);
std::string VmRunUsage();

// A VMM's memory at one moment.
//   vm_rss_kib, vm_hwm_kib   /proc/PID/status VmRSS, VmHWM
//   guest_ram_rss_kib        Rss of the mappings at least ram_kib large in
//                            /proc/PID/smaps: the guest RAM (passage's memfd,
//                            QEMU's pc.ram / microvm.ram) as far as it is
//                            resident in the VMM's page tables
//   guest_maps               how many mappings counted as guest RAM
//   own_rss_kib              vm_rss_kib - guest_ram_rss_kib: what the VMM
//                            holds besides guest RAM (code, heap, stacks,
//                            firmware and ROM copies, page tables not counted)
struct VmMemory {
  uint64_t vm_rss_kib = 0, vm_hwm_kib = 0, guest_ram_rss_kib = 0;
  int guest_maps = 0;
  int64_t own_rss_kib() const {
    return static_cast<int64_t>(vm_rss_kib) - static_cast<int64_t>(guest_ram_rss_kib);
  }
};
absl::StatusOr<VmMemory> ParseVmMemory(absl::string_view status, absl::string_view smaps,
                                       uint64_t ram_kib);
nlohmann::json VmMemoryJson(const VmMemory& m);

// Splits console bytes into lines (\r dropped); a line that is still open is
// kept for the next Feed.
class LineSplitter {
 public:
  std::vector<std::string> Feed(absl::string_view bytes);

 private:
  std::string partial_;
};

}  // namespace passage::bench

#endif  // PASSAGE_TESTS_BENCH_VM_METER_H_
