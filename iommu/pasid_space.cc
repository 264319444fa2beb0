#include "iommu/pasid_space.h"

#include <linux/iommufd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace passage {
namespace {

bool Capable(const PasidDevice* d) { return d->pasid_info().max_pasid_log2 != 0; }

std::string PasidList(const std::vector<uint32_t>& pasids) { return absl::StrJoin(pasids, ", "); }

}  // namespace

uint8_t PasidSpace::WidthLocked() const {
  uint8_t width = 0;
  for (const PasidDevice* d : devices_) {
    const uint8_t w = std::min(d->pasid_info().max_pasid_log2, kMaxWidth);
    if (w != 0 && (width == 0 || w < width)) width = w;
  }
  return width;
}

uint8_t PasidSpace::width() const {
  absl::MutexLock lock(&mu_);
  return WidthLocked();
}

absl::StatusOr<PasidSpace::Attachment> PasidSpace::AttachOne(PasidDevice* device, uint32_t pasid) {
  Iommufd* object = device->iommufd();
  absl::StatusOr<uint32_t> hwpt =
      object->AllocHwpt(device->iommufd_devid(), IOMMU_HWPT_ALLOC_PASID, device->id());
  if (!hwpt.ok()) return hwpt.status();
  if (absl::Status s = device->AttachPasid(pasid, *hwpt); !s.ok()) {
    (void)object->DestroyObject(*hwpt);
    return s;
  }
  return Attachment{device, object, *hwpt};
}

absl::Status PasidSpace::DetachOne(const Attachment& a, uint32_t pasid) {
  absl::Status detached = a.device->DetachPasid(pasid);
  // A HWPT still attached cannot be destroyed (EBUSY): leave it to the
  // device's close, which detaches everything.
  if (!detached.ok()) return detached;
  return a.object->DestroyObject(a.hwpt_id);
}

std::string PasidSpace::RollBack(std::vector<Attachment>& done, uint32_t pasid) {
  std::vector<std::string> ids;
  for (auto it = done.rbegin(); it != done.rend(); ++it) {
    if (absl::Status s = DetachOne(*it, pasid); !s.ok()) {
      std::fprintf(stderr, "passage: pasid %u: rolling back %s: %s\n", pasid,
                   it->device->id().c_str(), std::string(s.message()).c_str());
    }
    ids.push_back(it->device->id());
  }
  done.clear();
  return absl::StrJoin(ids, ", ");
}

absl::StatusOr<std::unique_ptr<PasidSpace::Registration>> PasidSpace::AddDevice(
    PasidDevice* device) {
  absl::MutexLock lock(&mu_);
  const Iommufd::HwInfo info = device->pasid_info();
  if (info.max_pasid_log2 == 0 || bindings_.empty()) {
    devices_.push_back(device);
    return std::make_unique<Registration>(this, device);
  }
  // Refuse before touching anything: a live PASID the device cannot carry.
  const uint8_t width = std::min(info.max_pasid_log2, kMaxWidth);
  std::vector<uint32_t> too_wide;
  for (const auto& [pasid, b] : bindings_) {
    if (pasid >> width != 0) too_wide.push_back(pasid);
  }
  if (!too_wide.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        device->id(), ": its PASID width of ", width, " bits would shrink the VM's PASID space below live PASID ",
        PasidList(too_wide), "; x-passage-pasid-unbind ", too_wide.size() == 1 ? "it" : "them",
        " first"));
  }
  // Every live binding, or none.
  std::vector<std::pair<uint32_t, Attachment>> done;
  for (auto& [pasid, b] : bindings_) {
    absl::StatusOr<Attachment> a = AttachOne(device, pasid);
    if (!a.ok()) {
      for (auto it = done.rbegin(); it != done.rend(); ++it) {
        if (absl::Status s = DetachOne(it->second, it->first); !s.ok()) {
          std::fprintf(stderr, "passage: %s: rolling back pasid %u: %s\n", device->id().c_str(),
                       it->first, std::string(s.message()).c_str());
        }
      }
      return absl::Status(a.status().code(),
                          absl::StrCat(device->id(), ": cannot take live PASID ", pasid, " (",
                                       done.size(), " other binding(s) rolled back): ",
                                       a.status().message()));
    }
    done.emplace_back(pasid, *a);
  }
  for (auto& [pasid, a] : done) bindings_[pasid].attached.push_back(a);
  devices_.push_back(device);
  return std::make_unique<Registration>(this, device);
}

void PasidSpace::RemoveDevice(PasidDevice* device) {
  absl::MutexLock lock(&mu_);
  for (auto b = bindings_.rbegin(); b != bindings_.rend(); ++b) {
    std::vector<Attachment>& attached = b->second.attached;
    auto it = std::find_if(attached.begin(), attached.end(),
                           [device](const Attachment& a) { return a.device == device; });
    if (it == attached.end()) continue;
    if (absl::Status s = DetachOne(*it, b->first); !s.ok()) {
      std::fprintf(stderr, "passage: %s: dropping pasid %u: %s\n", device->id().c_str(), b->first,
                   std::string(s.message()).c_str());
    }
    attached.erase(it);
  }
  std::erase(devices_, device);
}

absl::Status PasidSpace::Bind(uint32_t pasid, Iommufd* object) {
  absl::MutexLock lock(&mu_);
  const std::string where = absl::StrCat("x-passage-pasid-bind: 'pasid' ", pasid);
  if (pasid == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": PASID 0 stands for the device's requests without a PASID (IOMMU_NO_PASID)"));
  }
  if (auto it = bindings_.find(pasid); it != bindings_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat(where, " is already bound to iommufd '", it->second.home->name(), "'"));
  }
  std::vector<PasidDevice*> capable;
  std::vector<std::string> without, on_object;
  for (PasidDevice* d : devices_) {
    if (Capable(d)) {
      capable.push_back(d);
      if (d->iommufd() == object) on_object.push_back(d->id());
    } else {
      without.push_back(d->id());
    }
  }
  if (capable.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": no device in this VM supports PASID",
        without.empty() ? "" : absl::StrCat(" (", absl::StrJoin(without, ", "), ": width 0)")));
  }
  if (on_object.empty()) {
    std::vector<std::string> there;
    for (PasidDevice* d : devices_) {
      if (d->iommufd() == object) there.push_back(d->id());
    }
    return absl::FailedPreconditionError(absl::StrCat(
        where, ": 'object' iommufd '", object->name(), "' has no PASID-capable device",
        there.empty() ? "" : absl::StrCat(" (", absl::StrJoin(there, ", "), ": width 0)")));
  }
  const uint8_t width = WidthLocked();
  if (pasid >> width != 0) {
    return absl::OutOfRangeError(absl::StrCat(where, " is beyond the VM's PASID width of ", width,
                                              " bits (largest ", (1u << width) - 1, ")"));
  }
  std::vector<Attachment> done;
  for (PasidDevice* d : capable) {
    absl::StatusOr<Attachment> a = AttachOne(d, pasid);
    if (!a.ok()) {
      const std::string undone = RollBack(done, pasid);
      return absl::Status(a.status().code(),
                          absl::StrCat(where, ": ", a.status().message(),
                                       undone.empty() ? "" : absl::StrCat("; rolled back on ", undone)));
    }
    done.push_back(*a);
  }
  bindings_[pasid] = Binding{object, std::move(done)};
  return absl::OkStatus();
}

absl::Status PasidSpace::Unbind(uint32_t pasid, const std::string& object) {
  absl::MutexLock lock(&mu_);
  const std::string where = absl::StrCat("x-passage-pasid-unbind: 'pasid' ", pasid);
  auto it = bindings_.find(pasid);
  if (it == bindings_.end()) return absl::InvalidArgumentError(absl::StrCat(where, " is not bound"));
  if (it->second.home->name() != object) {
    return absl::InvalidArgumentError(absl::StrCat(where, " is bound to iommufd '",
                                                   it->second.home->name(), "', not 'object' '",
                                                   object, "'"));
  }
  absl::Status first;
  std::vector<Attachment>& attached = it->second.attached;
  for (auto a = attached.rbegin(); a != attached.rend(); ++a) {
    if (absl::Status s = DetachOne(*a, pasid); !s.ok() && first.ok()) first = s;
  }
  bindings_.erase(it);
  if (!first.ok()) {
    return absl::Status(first.code(), absl::StrCat(where, ": ", first.message(),
                                                   " (dropped from the table; the device keeps it "
                                                   "until it is closed)"));
  }
  return absl::OkStatus();
}

absl::Status PasidSpace::CheckObjectRemovable(const std::string& object) const {
  absl::MutexLock lock(&mu_);
  std::vector<uint32_t> pasids;
  for (const auto& [pasid, b] : bindings_) {
    bool uses = b.home->name() == object;
    for (const Attachment& a : b.attached) uses |= a.object->name() == object;
    if (uses) pasids.push_back(pasid);
  }
  if (pasids.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "object-del: iommufd '", object, "' has live PASID binding(s) (pasid ", PasidList(pasids),
      "); x-passage-pasid-unbind them first"));
}

PasidSpace::Info PasidSpace::Describe() const {
  absl::MutexLock lock(&mu_);
  Info out;
  out.width = WidthLocked();
  for (const PasidDevice* d : devices_) {
    DeviceInfo info{d->id(), d->iommufd()->name(), d->pasid_info(), {}};
    for (const auto& [pasid, b] : bindings_) {
      for (const Attachment& a : b.attached) {
        if (a.device == d) info.pasids.push_back(pasid);
      }
    }
    out.devices.push_back(std::move(info));
  }
  for (const auto& [pasid, b] : bindings_) {
    BindingInfo info{pasid, b.home->name(), b.home->ioas_id(), {}};
    for (const Attachment& a : b.attached) {
      info.attachments.push_back({a.device->id(), a.object->name(), a.hwpt_id});
    }
    out.bindings.push_back(std::move(info));
  }
  return out;
}

}  // namespace passage
