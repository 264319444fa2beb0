// A virtual machine: the KVM VM fd, guest memory and its memslots, the I/O
// buses with the platform devices, and the vCPU threads.
#ifndef PASSAGE_VMM_VM_H_
#define PASSAGE_VMM_VM_H_

#include <atomic>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/acpi/acpi_hotplug.h"
#include "devices/acpi/acpi_pm_device.h"
#include "devices/cmos_rtc.h"
#include "devices/debug_device.h"
#include "devices/event_loop.h"
#include "devices/i8042.h"
#include "devices/io_bus.h"
#include "devices/uart_8250.h"
#include "memory/guest_memory.h"
#include "memory/unique_fd.h"
#include "vmm/boot_report.h"
#include "vmm/config.h"
#include "vmm/control.h"
#include "vmm/kvm.h"
#include "vmm/kvm_irq.h"
#include "vmm/kvm_memslots.h"
#include "vmm/linux_loader.h"
#include "vmm/passed_fds.h"
#include "vmm/passthrough.h"
#include "vmm/pci_platform.h"
#include "vmm/platform_fdt.h"
#include "vmm/qmp_server.h"
#include "vmm/vcpu.h"
#include "vmm/vm_hotplug.h"

namespace passage {

class Vm : public ControlTarget {
 public:
  // Builds the whole VM (memory, devices, image, vCPUs) without running it.
  // Each consumer takes its fd from `fds` (the command line's fd= list)
  // right before use; what is left there when this fails stays with `fds`.
  static absl::StatusOr<std::unique_ptr<Vm>> Create(const VmConfig& config, PassedFds& fds);
  ~Vm() override;

  // Runs the vCPUs until the guest ends the VM; returns passage's exit status
  // (the debug-exit status, 0 for power-off/reset) or the error that ended it.
  absl::StatusOr<int> Run();

  // Thread-safe; the first request wins.
  void RequestStop(StopRequest request) ABSL_LOCKS_EXCLUDED(stop_mu_);

  GuestMemory& memory() { return *memory_; }
  IoBus& pio() { return pio_; }
  IoBus& mmio() { return mmio_; }
  int vm_fd() const { return vm_fd_.get(); }
  // The in-kernel irqchip: pins (the UART's IRQ 4, INTx), GSI routes, irqfds.
  InterruptController& irq() { return *irq_; }

  // What the VM is made of (memory map, vCPUs, devices, ACPI, boot).
  const PlatformDescription& platform() const { return platform_; }
  // -dump-dtb: writes platform() as a flattened device tree.
  absl::Status DumpDtb(const std::string& path) const;
  // Why the VM stopped ("power-off", "reset", ...), after Run().
  std::string StopDescription() ABSL_LOCKS_EXCLUDED(stop_mu_);
  // --report-timing: the one-line JSON report (boot_report.h).
  std::string TimingReport() ABSL_LOCKS_EXCLUDED(stop_mu_);

  // Hotplug (vm_hotplug.cc)
  // ControlTarget's hotplug half is declared with the control plane below;
  // the state machine is HotplugController (vmm/vm_hotplug.h).
  // The guest ejected `slot` (AcpiHotplug's on_eject, on a vCPU thread):
  // the removal runs later on the loop thread.
  void OnGuestEject(uint8_t slot);
  // The guest-visible hotplug device (before Run); null: none.
  void SetHotplugSignaller(HotplugSignaller* signaller);

 private:
  // Called by Create once the PCI side exists.
  absl::Status CreateHotplug();
  // ~Vm, first: no hotplug call runs or starts after this.
  void ShutdownHotplug();
  absl::StatusOr<Passthrough*> EnsurePassthrough(bool create);
  HotplugSignaller* hotplug_signaller_ = nullptr;
  // Shut down first thing in ~Vm; from then on it touches nothing else.
  std::unique_ptr<HotplugController> hotplug_;
  // End of hotplug.

 private:
  explicit Vm(Kvm kvm) : kvm_(std::move(kvm)) {}
  absl::Status CreatePlatform(const VmConfig& config, PassedFds& fds);
  // The PCI host bridge and the -device devices (called by CreatePlatform).
  absl::Status CreatePci(const VmConfig& config, PassedFds& fds);
  // ACPI tables and the reset-vector stub into guest memory; the e820 ranges
  // they and the holes need.
  absl::Status CreateAcpi(const VmConfig& config, LinuxBootPlatform& boot_platform);
  absl::Status CreateVcpus(const VmConfig& config, const LinuxBootPlatform& boot_platform);

  Kvm kvm_;
  UniqueFd vm_fd_;
  UniqueFd serial_file_;
  std::unique_ptr<GuestMemory> memory_;
  std::unique_ptr<KvmMemslots> memslots_;  // RAM and device memory, one numbering
  std::unique_ptr<KvmIrqRouting> irq_;
  IoBus pio_{"port I/O"};
  IoBus mmio_{"MMIO"};
  std::shared_ptr<Uart8250> uart_;
  std::unique_ptr<DebugDevice> debug_;
  std::shared_ptr<AcpiPmDevice> acpi_pm_;
  std::shared_ptr<I8042> i8042_;
  std::shared_ptr<CmosRtc> cmos_;
  // The Generic Event Device: PCI hotplug slot events and the power button
  // (HotplugSignaller for the hotplug code; PowerButton() for system_powerdown).
  std::shared_ptr<AcpiHotplug> acpi_hotplug_;
  // Device interrupts that need emulation, the control sockets; outlives
  // the devices and passthrough_ (declared before them).
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Passthrough> passthrough_;  // iommufd objects, VFIO container; outlives pci_
  std::unique_ptr<PciPlatform> pci_;  // bus 0 and the -device devices
  std::shared_ptr<BootTimer> boot_timer_;  // with --report-timing
  bool hugepages_ = false;
  PlatformDescription platform_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
  bool serial_stdio_ = false;

  // -sandbox on (vmm/sandbox.h): the filter goes on in Run(), before the
  // first vCPU runs. sandbox_open_: open stays allowed (hotplug by path);
  // without it, device_add/object-add by path are refused up front.
  absl::Status EnterSandbox();
  bool sandbox_ = false;
  bool sandbox_open_ = false;
  std::unique_ptr<LoopEventfd> sandbox_selftest_;

  std::atomic<bool> stopping_{false};
  UniqueFd stop_event_;  // eventfd: the main loop wakes when a stop is requested
  absl::Mutex stop_mu_;
  std::optional<StopRequest> stop_ ABSL_GUARDED_BY(stop_mu_);

  // SIGUSR1: each vCPU's registers and local APIC, the 8250, IOAPIC pin 4,
  // on stderr; the VM runs on.
  void DumpState();
  std::string DescribeIoapicPin(uint32_t pin);

  // ---- Control plane (QMP): run state and events (vmm/control.h). --------
 public:
  std::string RunState() override;
  absl::Status Stop() override ABSL_LOCKS_EXCLUDED(run_mu_);
  absl::Status Cont() override ABSL_LOCKS_EXCLUDED(run_mu_);
  void Quit() override;
  void SystemReset() override;
  absl::Status SystemPowerdown() override;
  // Hotplug and its queries: vmm/vm_hotplug.cc.
  absl::Status DeviceAdd(const DeviceConfig& config, PassedFds& fds) override;
  absl::Status DeviceDel(const std::string& id) override;
  absl::Status ObjectAdd(const ObjectConfig& config, PassedFds& fds) override;
  absl::Status ObjectDel(const std::string& id) override;
  nlohmann::json QueryPci() override;
  nlohmann::json QueryIommufd() override;
  nlohmann::json QueryPasid() override;
  absl::Status PasidBind(uint32_t pasid, const std::string& object) override;
  absl::Status PasidUnbind(uint32_t pasid, const std::string& object) override;
  // A QMP event to every monitor (none: dropped). Any thread.
  void Emit(std::string_view event, nlohmann::json data = nullptr);

 private:
  // RESET/SHUTDOWN for how the run ended (QEMU's reasons).
  void EmitStopEvents(const StopRequest& stop);
  // CPUID.(7,0):ECX[29] as KVM_GET_SUPPORTED_CPUID reported it (the guest's
  // is the same: GuestCpuid never sets it on its own).
  bool enqcmd_ = false;
  std::unique_ptr<QmpServer> qmp_;  // -qmp / -mon sockets; served on loop_ from Run()
  VcpuPause pause_;  // QMP stop/cont
  absl::Mutex run_mu_;  // one stop/cont at a time
  // system_powerdown presses this: the GED's power button (set in Create).
  std::function<absl::Status()> power_button_ = [] {
    return absl::FailedPreconditionError("system_powerdown: no ACPI power button");
  };
};

}  // namespace passage

#endif  // PASSAGE_VMM_VM_H_
