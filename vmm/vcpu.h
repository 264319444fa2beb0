// One vCPU: its KVM fd, the shared kvm_run page, and the exit loop that runs
// on its own thread.
#ifndef PASSAGE_VMM_VCPU_H_
#define PASSAGE_VMM_VCPU_H_

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "devices/io_bus.h"
#include "memory/guest_memory.h"
#include "memory/unique_fd.h"
#include "vmm/kvm.h"
#include "vmm/x86_boot.h"

namespace passage {

// Why a vCPU asks the VM to stop.
struct StopRequest {
  // kQuit: QMP quit; kHostReset: QMP system_reset (no reboot: the run
  // ends); kSignal: SIGTERM/SIGINT/SIGHUP, status 128 + signo.
  enum class Reason { kDebugExit, kPowerOff, kReset, kError, kQuit, kHostReset, kSignal };
  Reason reason;
  int status;  // debug-exit status; 0 otherwise
  std::string detail;
};

// QMP stop/cont: while paused, every vCPU stays out of KVM_RUN, parked here.
class VcpuPause {
 public:
  // Asks the vCPUs to park (the caller kicks them out of KVM_RUN).
  void Pause() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `vcpus` are parked or have ended; false after `timeout`.
  bool AwaitParked(int vcpus, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  void Resume() ABSL_LOCKS_EXCLUDED(mu_);
  // Teardown: no vCPU parks any more, parked ones return.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);
  bool paused() ABSL_LOCKS_EXCLUDED(mu_);

  // vCPU thread: parks while paused; returns early when poked (a state
  // dump is wanted). True if it parked.
  bool ParkIfPaused() ABSL_LOCKS_EXCLUDED(mu_);
  // Wakes parked vCPUs for a moment (they re-check why they were woken).
  void Poke() ABSL_LOCKS_EXCLUDED(mu_);
  // vCPU thread: its loop has ended.
  void Ended() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  bool ShouldWake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Mutex mu_;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int parked_ ABSL_GUARDED_BY(mu_) = 0;
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pokes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t wait_pokes_ ABSL_GUARDED_BY(mu_) = 0;  // pokes_ when the parked vCPUs went to sleep
};

// What a vCPU needs from its VM, without depending on Vm.
struct VcpuContext {
  IoBus* pio = nullptr;
  IoBus* mmio = nullptr;
  std::function<void(StopRequest)> stop;
  const std::atomic<bool>* stopping = nullptr;
  VcpuPause* pause = nullptr;  // null: never paused
  // For the state dump's look at the guest's stack; null: not looked at.
  const GuestMemory* memory = nullptr;
};

// What a vCPU state dump reads from KVM (each part absent when its ioctl
// failed), and its one line "vCPU N: rip=... lapic: ... last_exit=...".
struct VcpuState {
  std::optional<kvm_regs> regs;
  std::optional<kvm_sregs> sregs;
  std::optional<kvm_mp_state> mp_state;
  std::optional<kvm_vcpu_events> events;
  std::optional<kvm_lapic_state> lapic;
  uint32_t last_exit_reason = 0;
  uint64_t last_exit_addr = 0;  // port or guest-physical address
  // Return-address candidates on the guest's stack (KernelTextWords).
  std::optional<std::vector<uint64_t>> stack;
};
std::string FormatVcpuState(int index, const VcpuState& state);

// The words in `stack` (read from a guest's stack pointer upwards) that look
// like addresses in an x86-64 Linux kernel's text mapping
// (0xffffffff80000000 up to the modules area at 0xffffffffc0000000), in
// order, at most `max`: the return addresses of a scan-style backtrace,
// which System.map names (tests/rig's l2_diag). Data words in that range
// show up too; it is a hint, not an unwinder.
std::vector<uint64_t> KernelTextWords(std::span<const uint8_t> stack, size_t max);

// KVM_EXIT_INTERNAL_ERROR as one line: the suberror with its meaning and the
// data words KVM gave (for suberror 3, a failed event delivery: the
// vectoring info, the exit reason, ...), as QEMU prints them.
std::string InternalErrorText(const decltype(kvm_run::internal)& internal);

class Vcpu {
 public:
  static absl::StatusOr<std::unique_ptr<Vcpu>> Create(const Kvm& kvm, int vm_fd, int index);
  ~Vcpu();

  int index() const { return index_; }
  int fd() const { return fd_.get(); }

  // CPUID from KVM's supported list, with this vCPU's APIC ID filled in.
  absl::Status SetCpuid(const std::vector<kvm_cpuid_entry2>& supported, int cpu_count);
  absl::Status SetupEntry(const BootEntry& entry);

  // Starts the exit loop on a new thread.
  void Start(VcpuContext context);
  // Makes the loop return soon (thread-safe); then Join().
  void Kick();
  void Join();

  // One line describing the vCPU (registers, run state, pending events, the
  // local APIC's ISR/IRR), for the SIGUSR1 dump. A running vCPU is kicked out
  // of KVM_RUN and reads its own state on its thread, then runs on; one that
  // does not answer within `timeout` (busy in a device) is reported with its
  // last exit instead. Call from one thread at a time.
  std::string DumpState(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(dump_mu_);

 private:
  Vcpu(int index, UniqueFd fd, kvm_run* run, size_t run_size)
      : index_(index), fd_(std::move(fd)), run_(run), run_size_(run_size) {}
  void Loop(VcpuContext context);
  // Handles one exit; false ends the loop.
  bool HandleExit(const VcpuContext& context);
  // On the vCPU thread (or any thread when it is not running): the dump line.
  std::string DescribeState();
  // Answers a pending DumpState() request; vCPU thread only.
  void ServeDumpRequest() ABSL_LOCKS_EXCLUDED(dump_mu_);
  // KernelTextWords of the 512 bytes at the guest's `rsp` (long mode), or
  // nothing when no byte of it could be translated and read.
  std::optional<std::vector<uint64_t>> ReadStack(const GuestMemory& memory, uint64_t rsp);
  static constexpr size_t kStackScanBytes = 512;
  static constexpr size_t kStackWordsShown = 16;

  const int index_;
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<VcpuPause*> pause_{nullptr};  // from Start's context, for Kick
  std::atomic<const GuestMemory*> memory_{nullptr};  // from Start's context, for the dump
  // The last exit (reason, port or address), for a vCPU that cannot answer.
  std::atomic<uint32_t> last_exit_reason_{0};
  std::atomic<uint64_t> last_exit_addr_{0};

  std::atomic<bool> dump_wanted_{false};
  absl::Mutex dump_mu_;
  bool dump_requested_ ABSL_GUARDED_BY(dump_mu_) = false;
  std::optional<std::string> dump_ ABSL_GUARDED_BY(dump_mu_);
};

// Installs the (empty) signal handler used to kick vCPUs out of KVM_RUN.
void InstallVcpuKickSignal();

// The signals Vm::Run() takes through its signalfd (SIGINT, SIGTERM, SIGHUP:
// stop; SIGUSR1: dump state) and the vCPU kick signal.
sigset_t VmSignals();
// Blocks VmSignals() in the calling thread. Call it in main() before any
// thread exists: threads inherit the mask, so a termination signal can only
// reach Run()'s signalfd and never kills passage in a helper thread through
// the default action (skipping teardown).
void BlockVmSignals();

}  // namespace passage

#endif  // PASSAGE_VMM_VCPU_H_
