// The VM's passthrough side: the -object iommufd instances (each one IOAS
// that maps all guest RAM), the legacy VFIO container with its groups (made
// on first use) and KVM's VFIO pseudo device. Creates vfio-pci devices for
// the PCI platform; their emulated interrupts run on the VM's event loop.
//
// Teardown order matters and is fixed by ownership: devices (owned by the
// PCI bus, destroyed first by Vm) -> DMA spaces leave guest memory (unmap,
// unpin) -> iommufd objects and the container close.
//
// At run time (object-add/object-del, device_add/device_del) the same
// order holds per object: an object goes only once no device uses it, and
// the legacy container closes with its last device (ReleaseUnused).
// Threads: one caller at a time (the VM's creation, then its event loop).
#ifndef PASSAGE_VMM_PASSTHROUGH_H_
#define PASSAGE_VMM_PASSTHROUGH_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/event_loop.h"
#include "devices/irq.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device.h"
#include "iommu/iommufd.h"
#include "iommu/legacy_container.h"
#include "iommu/pasid_space.h"
#include "memory/guest_memory.h"
#include "memory/unique_fd.h"
#include "vmm/device_config.h"
#include "vmm/object_config.h"

namespace passage {

class Passthrough {
 public:
  // Opens (or adopts) every iommufd object and maps guest RAM into each.
  // `vm_fd` < 0: no KVM (unit tests). passage owns every passed fd=: on an
  // error, the fds of all objects are closed, also those after the one that
  // failed.
  static absl::StatusOr<std::unique_ptr<Passthrough>> Create(
      const std::vector<ObjectConfig>& objects, GuestMemory& memory, EventLoop& loop,
      int vm_fd, Sys* sys = &Sys::Real());
  ~Passthrough();

  // Opens the device of a `-device vfio-pci,...` and builds its guest view.
  // A passed fd= is owned from the call on and closed on every error.
  absl::StatusOr<std::shared_ptr<PciDevice>> CreateVfioPci(const DeviceConfig& config,
                                                           InterruptController& irq);
  EventLoop& loop() { return loop_; }

  // object-add: opens /dev/iommu (or adopts `fd`, owned from the call on
  // and closed on every error), allocates the IOAS and maps all guest RAM
  // into it, as for -object. Errors name the argument.
  absl::Status AddObject(const ObjectConfig& config, int fd);
  // object-del: refused while a device uses the object (the message names
  // them) or a PASID binding lives on it; otherwise guest RAM is unmapped
  // (unpinned), the IOAS destroyed and the fd closed.
  absl::Status RemoveObject(const std::string& id);
  // The legacy container closes (RAM unmapped first) when no device uses
  // it any more. Called after a device went or failed to come.
  void ReleaseUnused();

  // The VM's PASID space (every cdev device joins it as it opens).
  // x-passage-pasid-bind / -unbind: `object` is an -object iommufd id.
  absl::Status PasidBind(uint32_t pasid, const std::string& object);
  absl::Status PasidUnbind(uint32_t pasid, const std::string& object);
  // Devices named as DescribeObjects names them (id=, else the kind).
  PasidSpace::Info DescribePasid() const;

  struct ObjectInfo {
    std::string id;
    uint32_t ioas_id;
    bool passed_fd;
    bool map_file;
    std::map<uint64_t, uint64_t> mappings;  // iova -> size
    std::vector<std::string> devices;       // ids of the devices using it
  };
  std::vector<ObjectInfo> DescribeObjects() const;
  struct ContainerInfo {
    std::map<uint64_t, uint64_t> mappings;
    std::vector<std::string> devices;
  };
  // Null when the VM has no legacy container (now).
  std::optional<ContainerInfo> DescribeContainer() const;

 private:
  Passthrough(GuestMemory& memory, EventLoop& loop, int vm_fd, Sys* sys)
      : memory_(memory), sys_(sys), loop_(loop), kvm_vfio_(vm_fd, sys) {}
  absl::StatusOr<std::shared_ptr<VfioDevice>> Open(const DeviceConfig& config,
                                                   const std::string& label);
  // One object: its fd (owned, -1: open /dev/iommu), IOAS, RAM mapped.
  absl::Status AddObjectOwned(const ObjectConfig& config, SysFd fd);
  // The devices (ids) using `object` ("": the legacy container) now.
  std::vector<std::string> Users(const std::string& object) const;

  // A device opened through an object or the container, for counting its
  // users: it is gone once `vfio` expired (the VFIO file closed).
  struct User {
    std::string device;
    std::string label;   // the VfioDevice's name ("vfio-pci,id=edu0")
    std::string object;  // "" for the legacy container
    std::weak_ptr<VfioDevice> vfio;
  };

  GuestMemory& memory_;
  Sys* const sys_;
  EventLoop& loop_;  // the VM's; outlives this
  // Outlives the devices (the PCI bus destroys them before Passthrough):
  // each device deletes its file from KVM-VFIO as it closes.
  KvmVfio kvm_vfio_;
  std::vector<std::unique_ptr<Iommufd>> iommufds_;  // each a memory listener
  // Refers to iommufds_: reset before them (~Passthrough). Its devices are
  // gone by then; bindings left have no attachment.
  std::unique_ptr<PasidSpace> pasid_ = std::make_unique<PasidSpace>();
  std::vector<bool> passed_fd_;
  std::unique_ptr<LegacyContainer> container_;  // owns the VFIO groups too
  bool container_listening_ = false;
  std::vector<User> users_;
};

}  // namespace passage

#endif  // PASSAGE_VMM_PASSTHROUGH_H_
