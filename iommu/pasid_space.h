// The VM-wide PASID space (issue 13). ENQCMD takes its PASID from the
// vCPU's IA32_PASID MSR whichever device a descriptor goes to, so inside one
// VM a PASID must mean the same address space on every assigned device, on
// every iommufd object, for the VM's whole life. One PasidSpace per VM keeps
// the table guest PASID -> (address space, per device the host attachment)
// and is the only code that attaches or detaches PASIDs.
//
// Choices (README "PASID"):
// - Host PASID = guest PASID. VFIO_DEVICE_ATTACH_PASID lets the user pick
//   the PASID per device, so the identity keeps one number per address
//   space on every device.
// - A binding names an iommufd object (its "home": the IOAS whose
//   contents the PASID means). Each PASID-capable device gets its own HWPT,
//   allocated with IOMMU_HWPT_ALLOC_PASID over the IOAS of the object the
//   device is bound to: a HWPT lives in one iommufd context, and every
//   object's IOAS holds the same thing (all guest RAM at IOVA = GPA, kept in
//   step by the memory listeners), so they are the same address space.
// - The kernel requires a PASID-compatible domain on the device's
//   whole-device (RID) attachment too, and an IOAS attach gets an auto
//   domain without IOMMU_HWPT_ALLOC_PASID: VfioDevice attaches PASID-capable
//   devices to a PASID-flagged HWPT of their object's IOAS instead.
// - Width = min over the PASID-capable devices of max_pasid_log2 (0: none).
//
// Atomicity: a bind attaches on every PASID-capable device or on none (a
// failure at device k undoes devices k-1..0 in that order); a device added
// later receives every live binding or is refused with nothing left; every
// exit path undoes in reverse order.
//
// Threads: every method takes mu_; the ioctls run under it, so a bind is
// never seen half done. PasidDevice calls come back without re-entering.
#ifndef PASSAGE_IOMMU_PASID_SPACE_H_
#define PASSAGE_IOMMU_PASID_SPACE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "iommu/iommufd.h"

namespace passage {

// A device that can take part in the PASID space: a VFIO cdev device, or
// (on the rig) an IOMMUFD_TEST mock device. Deliberately small: what the
// space needs to allocate a HWPT for it and attach/detach one PASID.
class PasidDevice {
 public:
  virtual ~PasidDevice() = default;
  virtual const std::string& id() const = 0;
  // The iommufd object the device is bound to, and its device id there.
  virtual Iommufd* iommufd() const = 0;
  virtual uint32_t iommufd_devid() const = 0;
  // From IOMMU_GET_HW_INFO; max_pasid_log2 == 0: no PASID.
  virtual Iommufd::HwInfo pasid_info() const = 0;
  // Attach `pasid` to HWPT `hwpt_id` (a second attach replaces); detach it.
  virtual absl::Status AttachPasid(uint32_t pasid, uint32_t hwpt_id) = 0;
  virtual absl::Status DetachPasid(uint32_t pasid) = 0;
};

class PasidSpace {
 public:
  // PCIe allows 20 bits.
  static constexpr uint8_t kMaxWidth = 20;

  // A device's membership; destroying it drops the device's bindings
  // (detach, HWPT destroyed, newest binding first). Destroy it before the
  // device's own whole-device detach.
  class Registration {
   public:
    Registration(PasidSpace* space, PasidDevice* device) : space_(space), device_(device) {}
    ~Registration() { space_->RemoveDevice(device_); }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    PasidSpace* const space_;
    PasidDevice* const device_;
  };

  PasidSpace() = default;
  PasidSpace(const PasidSpace&) = delete;
  PasidSpace& operator=(const PasidSpace&) = delete;
  // Every Registration is gone by now; bindings left have no attachment.
  ~PasidSpace() = default;

  // A device joins (before the guest sees it). A PASID-capable one receives
  // every live binding; it is refused (nothing left attached) when its
  // width would shrink the space below a live PASID or an attach fails. A
  // device without PASID joins as such (listed, never attached).
  absl::StatusOr<std::unique_ptr<Registration>> AddDevice(PasidDevice* device)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Binds guest PASID `pasid` to the IOAS of `object` on every
  // PASID-capable device, or on none. Refused: pasid 0 (the device's
  // requests without PASID), a PASID already bound, beyond the width, no
  // PASID-capable device, or none on `object`. Messages name the argument.
  absl::Status Bind(uint32_t pasid, Iommufd* object) ABSL_LOCKS_EXCLUDED(mu_);
  // The reverse, newest attachment first. `object` must be the binding's.
  // A detach that fails is reported; the binding is dropped anyway (the
  // kernel detaches it when the device closes).
  absl::Status Unbind(uint32_t pasid, const std::string& object) ABSL_LOCKS_EXCLUDED(mu_);

  // Refused while a binding's address space is `object`'s or a HWPT of a
  // binding lives there; the message names the PASIDs.
  absl::Status CheckObjectRemovable(const std::string& object) const ABSL_LOCKS_EXCLUDED(mu_);

  // The negotiated width in bits (0: no PASID-capable device).
  uint8_t width() const ABSL_LOCKS_EXCLUDED(mu_);

  struct DeviceInfo {
    std::string id;
    std::string object;
    Iommufd::HwInfo info;
    std::vector<uint32_t> pasids;  // attached now
  };
  struct AttachmentInfo {
    std::string device;
    std::string object;  // where its HWPT lives
    uint32_t hwpt_id;
  };
  struct BindingInfo {
    uint32_t pasid;
    std::string object;
    uint32_t ioas_id;
    std::vector<AttachmentInfo> attachments;
  };
  struct Info {
    uint8_t width = 0;
    std::vector<DeviceInfo> devices;
    std::vector<BindingInfo> bindings;
  };
  Info Describe() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Attachment {
    PasidDevice* device;
    Iommufd* object;  // the device's, where hwpt_id lives
    uint32_t hwpt_id;
  };
  struct Binding {
    Iommufd* home;
    std::vector<Attachment> attached;  // in attach order
  };

  void RemoveDevice(PasidDevice* device) ABSL_LOCKS_EXCLUDED(mu_);
  uint8_t WidthLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One device: a PASID HWPT on its object's IOAS, then the attach; on a
  // failed attach the HWPT is destroyed again.
  static absl::StatusOr<Attachment> AttachOne(PasidDevice* device, uint32_t pasid);
  // Detach, then destroy the HWPT (it cannot go while attached).
  static absl::Status DetachOne(const Attachment& a, uint32_t pasid);
  // Undoes `done` newest first; returns the devices' ids for the message.
  static std::string RollBack(std::vector<Attachment>& done, uint32_t pasid);

  mutable absl::Mutex mu_;
  std::vector<PasidDevice*> devices_ ABSL_GUARDED_BY(mu_);  // in join order
  std::map<uint32_t, Binding> bindings_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_IOMMU_PASID_SPACE_H_
