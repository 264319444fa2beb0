// What the control plane (the QMP server, vmm/qmp_*) asks of the VM, and how
// the VM tells the control plane what happened. The QMP layer turns JSON into
// these calls (device_add's arguments into a DeviceConfig through the same
// registry the command line uses, a getfd'd fd into a PassedFds entry); the
// VM knows nothing of JSON framing, sockets or monitors.
//
// Threads: every ControlTarget method is called on the VM's event loop
// thread, one at a time. EventSink::Emit may be called from any thread.
#ifndef PASSAGE_VMM_CONTROL_H_
#define PASSAGE_VMM_CONTROL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "vmm/device_config.h"
#include "vmm/object_config.h"
#include "vmm/passed_fds.h"

namespace passage {

// QMP events to every monitor that has negotiated capabilities.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // `event` is QEMU's name ("SHUTDOWN", "DEVICE_DELETED", ...); `data` its
  // "data" object (null: none). Thread-safe; never blocks on a client.
  virtual void Emit(std::string_view event, nlohmann::json data) = 0;
};

// Status codes a ControlTarget returns and the QMP error class each becomes:
// kNotFound -> "DeviceNotFound", everything else -> "GenericError". The
// message names the argument ("device_add: id 'edu0' is already in use").
class ControlTarget {
 public:
  virtual ~ControlTarget() = default;

  // query-status: QEMU's RunState name: "running", "paused", "shutdown".
  virtual std::string RunState() = 0;
  // stop: every vCPU out of KVM_RUN and parked; STOP event. Idempotent.
  virtual absl::Status Stop() = 0;
  // cont: the vCPUs run again; RESUME event. Idempotent.
  virtual absl::Status Cont() = 0;
  // quit: the run ends (exit 0) through the normal teardown;
  // SHUTDOWN {"guest": false, "reason": "host-qmp-quit"}.
  virtual void Quit() = 0;
  // system_reset: passage has no reboot (like QEMU -no-reboot): RESET, then
  // the run ends as on a guest reset, SHUTDOWN reason "host-qmp-system-reset".
  virtual void SystemReset() = 0;
  // system_powerdown: presses the ACPI power button; POWERDOWN event. The
  // guest decides whether to shut down (then SHUTDOWN, reason "guest-shutdown").
  virtual absl::Status SystemPowerdown() = 0;

  // device_add: `config` parsed and checked by the device registry; a fd=
  // it names is held in `fds` (taken from there by the device).
  virtual absl::Status DeviceAdd(const DeviceConfig& config, PassedFds& fds) = 0;
  // device_del: asks the guest to eject; returns at once. Once the guest has
  // ejected and the device is detached, reset and closed: DEVICE_DELETED
  // {"device": ID, "path": "/machine/peripheral/ID"}.
  virtual absl::Status DeviceDel(const std::string& id) = 0;
  // object-add qom-type iommufd: opens (or adopts config.fd from `fds`) the
  // iommufd, allocates its IOAS and maps all guest RAM into it.
  virtual absl::Status ObjectAdd(const ObjectConfig& config, PassedFds& fds) = 0;
  // object-del: refused (GenericError) while a device uses the object.
  virtual absl::Status ObjectDel(const std::string& id) = 0;

  // query-pci: QEMU's reply shape, [{"bus": 0, "devices": [...]}].
  virtual nlohmann::json QueryPci() = 0;
  // x-passage-query-iommufd: per object its id, IOAS id, mappings
  // ([{"iova", "size"}]), the devices attached to it (ids), and devices
  // whose removal is pending; the legacy container likewise.
  virtual nlohmann::json QueryIommufd() = 0;

  // The VM-wide PASID space (iommu/pasid_space.h). x-passage-query-pasid:
  // {"width", "enqcmd", ["enqcmd-off-reason"], "devices": [{"id", "object",
  // "max-pasid-log2", "exec", "priv", "state": "pasid"|"no-pasid",
  // "pasids"}], "bindings": [{"pasid", "object", "ioas-id", "attachments":
  // [{"device", "object", "hwpt-id"}]}]}.
  virtual nlohmann::json QueryPasid() = 0;
  // x-passage-pasid-bind / -unbind: guest PASID `pasid` to/from the IOAS of
  // iommufd object `object`, on every PASID-capable device or none.
  virtual absl::Status PasidBind(uint32_t pasid, const std::string& object) = 0;
  virtual absl::Status PasidUnbind(uint32_t pasid, const std::string& object) = 0;
};

}  // namespace passage

#endif  // PASSAGE_VMM_CONTROL_H_
