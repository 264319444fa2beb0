// One vCPU: its KVM fd, the shared kvm_run page, and the exit loop that runs
// on its own thread.
#ifndef PASSAGE_VMM_VCPU_H_
#define PASSAGE_VMM_VCPU_H_

#include <linux/kvm.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/io_bus.h"
#include "memory/unique_fd.h"
#include "vmm/kvm.h"
#include "vmm/x86_boot.h"

namespace passage {

// Why a vCPU asks the VM to stop.
struct StopRequest {
  enum class Reason { kDebugExit, kPowerOff, kReset, kError };
  Reason reason;
  int status;  // debug-exit status; 0 otherwise
  std::string detail;
};

// What a vCPU needs from its VM, without depending on Vm.
struct VcpuContext {
  IoBus* pio = nullptr;
  IoBus* mmio = nullptr;
  std::function<void(StopRequest)> stop;
  const std::atomic<bool>* stopping = nullptr;
};

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

 private:
  Vcpu(int index, UniqueFd fd, kvm_run* run, size_t run_size)
      : index_(index), fd_(std::move(fd)), run_(run), run_size_(run_size) {}
  void Loop(VcpuContext context);
  // Handles one exit; false ends the loop.
  bool HandleExit(const VcpuContext& context);

  const int index_;
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
  std::thread thread_;
  std::atomic<bool> running_{false};
};

// Installs the (empty) signal handler used to kick vCPUs out of KVM_RUN.
void InstallVcpuKickSignal();

}  // namespace passage

#endif  // PASSAGE_VMM_VCPU_H_
