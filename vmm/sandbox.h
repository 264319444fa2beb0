// -sandbox on: the seccomp filter passage puts on itself once the VM is set
// up (RAM mapped or, with -dma-map background, being mapped on its own
// thread; devices opened and attached, QMP sockets bound), before
// the first vCPU runs. It allows only the system calls the run loop, the
// vCPUs, QMP and hotplug make, on every thread (SECCOMP_FILTER_FLAG_TSYNC),
// and turns any other call into SIGSYS: passage writes one line
//   passage: sandbox: forbidden system call 257 (openat) args ... at ... in thread N (NAME)
// to stderr and exits with status kSandboxViolationExit. The allowlist, with
// the reason for each entry, is SandboxAllowlist() (README "Sandbox").
#ifndef PASSAGE_VMM_SANDBOX_H_
#define PASSAGE_VMM_SANDBOX_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace passage {

struct VmConfig;

// 128 + SIGSYS: what a shell reports for a process SIGSYS killed.
inline constexpr int kSandboxViolationExit = 159;

// What the filter allows beyond the fixed allowlist.
struct SandboxPolicy {
  // open/openat and the path look-ups around them (readlink, getdents64):
  // a device_add or object-add that names a path (host=, sysfsdev=,
  // filename=, /dev/iommu) opens it at run time. Without, open is fatal.
  bool allow_open = false;
  // unlinkat only relative to these directory fds: the QMP socket files'
  // directories (their sockets are removed at exit).
  std::vector<int> unlink_dirs;
  // readlinkat only relative to these directory fds: /proc/self/fd, for
  // --report-resources (vmm/proc_self.h).
  std::vector<int> readlink_dirs;
};

// One entry of the allowlist, for the README, tests and --help.
struct SandboxRule {
  const char* syscall;
  // When it is allowed: "always", or the argument condition.
  const char* when;
  const char* why;
};
// Every entry; those that depend on the policy say so in `when`.
const std::vector<SandboxRule>& SandboxAllowlist();

// Runs, once, what glibc and Abseil would otherwise do lazily on first use
// and what opens a file then (Abseil's CPU count for Mutex spinning reads
// /sys/devices/system/cpu/online, and so does glibc's malloc when a 9th
// thread needs an arena; gmtime_r's time zone set-up reads
// /etc/localtime). InstallSandbox calls it; InstallSandboxUnprimed does
// not, to show what it prevents.
void PrimeLazyInit();

// PrimeLazyInit(), the SIGSYS handler, then the filter on every thread of
// the process. Fails (nothing installed) if libseccomp or the kernel
// refuses; a thread that cannot be synchronised fails it too.
absl::Status InstallSandbox(const SandboxPolicy& policy);
// InstallSandbox without PrimeLazyInit: for the tests that show the
// priming is needed (a fresh process dies where InstallSandbox's lives).
absl::Status InstallSandboxUnprimed(const SandboxPolicy& policy);

// The filter `policy` gives, as the BPF program libseccomp generates (for
// tests: it builds, and the policy changes it).
absl::StatusOr<std::string> SandboxBpf(const SandboxPolicy& policy);

// Whether a sandboxed run of `config` allows open after set-up (-sandbox
// on,open=allow|deny; auto: only when a QMP monitor exists and the command
// line names a file by path, i.e. hotplug by path is how this VM is run).
bool SandboxAllowsOpen(const VmConfig& config);

// Test-only (README): with PASSAGE_SANDBOX_SELFTEST=1 in the environment a
// sandboxed passage makes one forbidden call right after the filter is on
// (open of /dev/null when open is forbidden, else a socket(AF_INET)), from
// its event-loop thread, to show the filter and its message in a real run.
bool SandboxSelftestRequested();
// The forbidden call itself (never returns under the filter).
void SandboxSelftestViolation(bool open_allowed);

}  // namespace passage

#endif  // PASSAGE_VMM_SANDBOX_H_
