// The VM's hotplug state machine, behind Vm's ControlTarget methods
// (vm_hotplug.cc): device_add / device_del / object-add / object-del, the
// guest's eject, DEVICE_DELETED, and the queries. Kept apart from Vm so the
// unit tests drive it over the fake kernel.
//
// device_add: the device is built, placed and wired (PciPlatform::HotAdd),
// then the guest is signalled (DeviceAdded). device_del: the slot is marked
// pending and the guest asked to eject; a second device_del while pending
// is accepted and asks again (QEMU does the same for ACPI hotplug since
// 8.0.1, for guests that dropped the first request). When the guest ejects
// (on a vCPU thread) the slot is queued for the event loop, which removes
// it (PciPlatform::Remove) and only then emits DEVICE_DELETED. An eject of
// a slot with no pending device_del is ignored (the guest is untrusted),
// with at most one log line a second.
//
// Threads: the ControlTarget calls arrive on the loop thread; OnGuestEject
// on any thread; Shutdown on the VM's thread before it tears the PCI side
// down. mu_ serializes all of them, so nothing is added or removed while
// the VM goes.
#ifndef PASSAGE_VMM_VM_HOTPLUG_H_
#define PASSAGE_VMM_VM_HOTPLUG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "devices/event_loop.h"
#include "nlohmann/json.hpp"
#include "vmm/control.h"
#include "devices/acpi/acpi_hotplug.h"
#include "vmm/passthrough.h"
#include "vmm/pci_platform.h"

namespace passage {

class HotplugController {
 public:
  struct Deps {
    PciPlatform* pci = nullptr;
    EventLoop* loop = nullptr;
    // The VM's passthrough side; `create`: made if the VM has none yet.
    // Null without `create` when there is none.
    std::function<absl::StatusOr<Passthrough*>(bool create)> passthrough;
    std::function<EventSink*()> events;              // null: no monitors
    std::function<HotplugSignaller*()> signaller;    // null: the guest is not told
  };
  static absl::StatusOr<std::unique_ptr<HotplugController>> Create(Deps deps);
  ~HotplugController();

  // ControlTarget's hotplug half (vmm/control.h).
  absl::Status DeviceAdd(const DeviceConfig& config, PassedFds& fds) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DeviceDel(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ObjectAdd(const ObjectConfig& config, PassedFds& fds) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ObjectDel(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  nlohmann::json QueryPci() ABSL_LOCKS_EXCLUDED(mu_);
  nlohmann::json QueryIommufd() ABSL_LOCKS_EXCLUDED(mu_);
  // The PASID space's half (ENQCMD is the Vm's): width, devices, bindings.
  nlohmann::json QueryPasid() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status PasidBind(uint32_t pasid, const std::string& object) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status PasidUnbind(uint32_t pasid, const std::string& object) ABSL_LOCKS_EXCLUDED(mu_);

  // The guest's _EJ0 for `slot` (any value: the guest wrote it). Any
  // thread; returns at once, the removal runs on the loop thread.
  void OnGuestEject(uint8_t slot) ABSL_LOCKS_EXCLUDED(queue_mu_);
  // From now on every call is refused or ignored; waits for one running.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_, queue_mu_);

 private:
  explicit HotplugController(Deps deps) : deps_(std::move(deps)) {}
  // The loop thread's half of OnGuestEject.
  void ProcessEjects() ABSL_LOCKS_EXCLUDED(mu_, queue_mu_);
  void RemoveSlot(uint8_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A PASID command on the passthrough side (`without_passthrough`: the
  // error when the VM has none yet).
  absl::Status WithPasidSpace(const char* command, const std::function<absl::Status(Passthrough&)>& run,
                              const std::string& without_passthrough) ABSL_LOCKS_EXCLUDED(mu_);
  // A line about the guest, at most one a second (the rest are counted).
  void GuestLog(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Deps deps_;
  std::unique_ptr<LoopEventfd> eject_event_;

  absl::Mutex queue_mu_;  // never held with mu_
  bool queue_closed_ ABSL_GUARDED_BY(queue_mu_) = false;
  // Slots the guest ejected and the loop has not handled: a bitmap, so a
  // guest writing in a loop cannot grow anything.
  uint32_t ejected_ ABSL_GUARDED_BY(queue_mu_) = 0;
  uint64_t bad_ejects_ ABSL_GUARDED_BY(queue_mu_) = 0;  // slots > 31

  absl::Mutex mu_;
  bool shut_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint8_t, std::string> pending_ ABSL_GUARDED_BY(mu_);  // slot -> device_del's id
  absl::Time last_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t suppressed_logs_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace passage

#endif  // PASSAGE_VMM_VM_HOTPLUG_H_
