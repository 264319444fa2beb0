// The VM's passthrough side: the -object iommufd instances (each one IOAS
// that maps all guest RAM), the legacy VFIO container with its groups (made
// on first use) and KVM's VFIO pseudo device. Creates vfio-pci devices for
// the PCI platform; their emulated interrupts run on the VM's event loop.
//
// Teardown order matters and is fixed by ownership: devices (owned by the
// PCI bus, destroyed first by Vm) -> DMA spaces leave guest memory (unmap,
// unpin) -> iommufd objects and the container close.
#ifndef PASSAGE_VMM_PASSTHROUGH_H_
#define PASSAGE_VMM_PASSTHROUGH_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "devices/event_loop.h"
#include "devices/irq.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device.h"
#include "iommu/iommufd.h"
#include "iommu/legacy_container.h"
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

  struct ObjectInfo {
    std::string id;
    uint32_t ioas_id;
    bool passed_fd;
    bool map_file;
  };
  std::vector<ObjectInfo> DescribeObjects() const;

 private:
  Passthrough(GuestMemory& memory, EventLoop& loop, int vm_fd, Sys* sys)
      : memory_(memory), sys_(sys), loop_(loop), kvm_vfio_(vm_fd, sys) {}
  absl::StatusOr<std::shared_ptr<VfioDevice>> Open(const DeviceConfig& config,
                                                   const std::string& label);

  GuestMemory& memory_;
  Sys* const sys_;
  EventLoop& loop_;  // the VM's; outlives this
  // Outlives the devices (the PCI bus destroys them before Passthrough):
  // each device deletes its file from KVM-VFIO as it closes.
  KvmVfio kvm_vfio_;
  std::vector<std::unique_ptr<Iommufd>> iommufds_;  // each a memory listener
  std::vector<bool> passed_fd_;
  std::unique_ptr<LegacyContainer> container_;  // owns the VFIO groups too
  bool container_listening_ = false;
};

}  // namespace passage

#endif  // PASSAGE_VMM_PASSTHROUGH_H_
