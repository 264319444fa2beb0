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
// Background mapping (issue 14, -dma-map background; sync is the default):
// pinning guest RAM is most of a VM's set-up, so spaces made during set-up
// defer it (DmaSpace::DeferMapping), and StartMapping(), right before the
// vCPUs start, maps guest RAM into each on one thread (passage-dmamap)
// while the guest boots. The order on that thread follows what is cheap
// for each backend:
// - iommufd: a cdev device made during set-up is only bound there
//   (VfioDevice::Options::defer_attach). The thread maps RAM into the
//   still domain-less IOAS (nothing pinned yet), then attaches the
//   object's devices: the first attach fills its domain from the IOAS
//   (the "fill path", as sync's attach does, rather than IOAS_MAP_FILE
//   into a domain), then FinishMapping.
// - the container: devices join it during set-up (type1 has no
//   attach-after-map order); the thread's VFIO_IOMMU_MAP_DMA pins after
//   VFIO_SET_IOMMU.
// A device's bus-master enable waits for its space's FinishMapping
// (VfioPciDevice), which comes after its attach. A failed map or attach
// stops the VM like a failure in set-up. Run-time changes (object-add/-del,
// device_add, PASID binds) first wait for the mapping thread to end, then
// map (and attach) synchronously. device_del does not wait to remove its
// device (the thread holds a device only while attaching it, so one removed
// meanwhile is closed there); ReleaseUnused, after it, waits before it lets
// an unused space go.
// -dma-map sync: every space maps as it is made; devices attach at once.
//
// Threads: one caller at a time (the VM's creation, then its event loop),
// except CancelMapping (any thread) and the mapping thread.
#ifndef PASSAGE_VMM_PASSTHROUGH_H_
#define PASSAGE_VMM_PASSTHROUGH_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <thread>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/event_loop.h"
#include "devices/irq.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device.h"
#include "iommu/iommufd.h"
#include "iommu/legacy_container.h"
#include "iommu/pasid_space.h"
#include "memory/guest_memory.h"
#include "memory/unique_fd.h"
#include "vmm/config.h"
#include "vmm/device_config.h"
#include "vmm/object_config.h"

namespace passage {

class Passthrough {
 public:
  // Opens (or adopts) every iommufd object and maps guest RAM into each.
  // `vm_fd` < 0: no KVM (unit tests). passage owns every passed fd=: on an
  // error, the fds of all objects are closed, also those after the one that
  // failed.
  // `mode` kBackground: the objects (and the container, once made) defer
  // their mapping to StartMapping().
  static absl::StatusOr<std::unique_ptr<Passthrough>> Create(
      const std::vector<ObjectConfig>& objects, GuestMemory& memory, EventLoop& loop,
      int vm_fd, Sys* sys = &Sys::Real(), DmaMapMode mode = DmaMapMode::kSync);
  // Stops and joins the mapping thread first.
  ~Passthrough();

  // Set-up is over (call once, before the vCPUs start): maps guest RAM into
  // every deferred space on a new thread, then attaches that space's
  // deferred devices (iommufd), and marks the boot phase "dma_mapped" when
  // all are done (at once when nothing was deferred). A space whose map
  // fails is left unmapped, the spaces after it are not mapped, and
  // `on_failure` runs once on that thread with one line naming the space
  // (or the device whose attach failed) and the cause; the VM must then
  // stop (teardown unmaps and closes the rest).
  void StartMapping(std::function<void(const absl::Status&)> on_failure)
      ABSL_LOCKS_EXCLUDED(map_mu_);
  // The VM is stopping: whoever waits for a space (a vCPU's bus-master
  // enable) returns, and the thread maps no further space. Any thread.
  void CancelMapping() ABSL_LOCKS_EXCLUDED(map_mu_);
  // CancelMapping, then waits for the thread (it ends the space at hand
  // first: an ioctl in flight is not interrupted). Before the devices go:
  // a container losing its last group under the thread's map is a mess.
  // The thread that called StartMapping.
  void StopMapping() ABSL_LOCKS_EXCLUDED(map_mu_);

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
  Passthrough(GuestMemory& memory, EventLoop& loop, int vm_fd, Sys* sys, DmaMapMode mode)
      : memory_(memory), sys_(sys), loop_(loop), kvm_vfio_(vm_fd, sys), mode_(mode) {}
  absl::StatusOr<std::shared_ptr<VfioDevice>> Open(const DeviceConfig& config,
                                                   const std::string& label);
  // One object: its fd (owned, -1: open /dev/iommu), IOAS, RAM mapped.
  absl::Status AddObjectOwned(const ObjectConfig& config, SysFd fd);
  // The devices (ids) using `object` ("": the legacy container) now.
  std::vector<std::string> Users(const std::string& object) const;
  // A space made during set-up: deferred (background mode) or mapped now.
  // `label` prefixes a background failure ("-object iommufd,id=i0").
  absl::Status MapOrDefer(DmaSpace* space, const std::string& label) ABSL_LOCKS_EXCLUDED(map_mu_);
  // The mapping thread's body.
  void MapDeferred(std::function<void(const absl::Status&)> on_failure) ABSL_LOCKS_EXCLUDED(map_mu_);
  // The thread's attaches of one mapped space's devices, in order; stops at
  // the first error (naming the device) or a cancel (kCancelled).
  absl::Status AttachDeferred(const std::vector<std::weak_ptr<VfioDevice>>& devices)
      ABSL_LOCKS_EXCLUDED(map_mu_);
  // Run-time changes wait here for the mapping thread to end; an error
  // (prefixed `what`) when it did not map everything.
  absl::Status AwaitMappingThread(const std::string& what) ABSL_LOCKS_EXCLUDED(map_mu_);

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
  bool container_listening_ = false;  // or deferred to the mapping thread
  std::vector<User> users_;

  const DmaMapMode mode_;
  // Until StartMapping: kBackground spaces defer. Read on the loop thread.
  std::atomic<bool> setting_up_ = true;
  std::thread mapper_;
  mutable absl::Mutex map_mu_;
  struct Deferred {
    DmaSpace* space;
    std::string label;
    // iommufd: its devices bound during set-up, attached by the thread
    // after the map (expired: the device went meanwhile).
    std::vector<std::weak_ptr<VfioDevice>> attach;
  };
  // Spaces still to be mapped by (or before) the mapping thread; emptied
  // when it ends, so no later-destroyed space is left here.
  std::vector<Deferred> deferred_ ABSL_GUARDED_BY(map_mu_);
  DmaSpace* mapping_now_ ABSL_GUARDED_BY(map_mu_) = nullptr;  // the thread's current space
  bool map_cancelled_ ABSL_GUARDED_BY(map_mu_) = false;
  bool mapper_running_ ABSL_GUARDED_BY(map_mu_) = false;
  absl::Status map_outcome_ ABSL_GUARDED_BY(map_mu_);
};

}  // namespace passage

#endif  // PASSAGE_VMM_PASSTHROUGH_H_
