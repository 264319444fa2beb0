// Vm's hotplug member functions and the state machine behind them
// (vm_hotplug.h).
#include "vmm/vm_hotplug.h"

#include <unistd.h>

#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "vmm/vm.h"
#include "vmm/x86_cpu.h"

namespace passage {
namespace {

nlohmann::json Mappings(const std::map<uint64_t, uint64_t>& mappings) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [iova, size] : mappings) out.push_back({{"iova", iova}, {"size", size}});
  return out;
}

// The subset of `devices` whose removal is pending.
nlohmann::json Pending(const std::vector<std::string>& devices, const std::set<std::string>& pending) {
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& d : devices) {
    if (pending.count(d)) out.push_back(d);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HotplugController>> HotplugController::Create(Deps deps) {
  std::unique_ptr<HotplugController> h(new HotplugController(std::move(deps)));
  absl::StatusOr<std::unique_ptr<LoopEventfd>> event =
      LoopEventfd::Create(*h->deps_.loop, [raw = h.get()] { raw->ProcessEjects(); });
  if (!event.ok()) {
    return absl::Status(event.status().code(),
                        absl::StrCat("hotplug eject signal: ", event.status().message()));
  }
  h->eject_event_ = std::move(*event);
  return h;
}

HotplugController::~HotplugController() { Shutdown(); }

void HotplugController::Shutdown() {
  {
    absl::MutexLock lock(&queue_mu_);
    queue_closed_ = true;
  }
  eject_event_.reset();  // waits for a running ProcessEjects
  absl::MutexLock lock(&mu_);  // and for a running control call
  shut_ = true;
}

absl::Status HotplugController::DeviceAdd(const DeviceConfig& config, PassedFds& fds) {
  absl::MutexLock lock(&mu_);
  if (shut_) return absl::FailedPreconditionError("device_add: the VM is shutting down");
  if (config.driver == "vfio-pci") {
    absl::StatusOr<Passthrough*> p = deps_.passthrough(true);
    if (!p.ok()) return absl::Status(p.status().code(), absl::StrCat("device_add: ", p.status().message()));
  }
  absl::StatusOr<uint8_t> slot = deps_.pci->HotAdd(config, fds);
  if (!slot.ok()) return slot.status();
  // The guest last: the device is complete when it looks.
  if (HotplugSignaller* s = deps_.signaller ? deps_.signaller() : nullptr; s != nullptr) s->DeviceAdded(*slot);
  return absl::OkStatus();
}

absl::Status HotplugController::DeviceDel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (shut_) return absl::FailedPreconditionError("device_del: the VM is shutting down");
  std::optional<PciFunctionInfo> f = deps_.pci->Find(id);
  if (!f) return absl::NotFoundError(absl::StrCat("Device '", id, "' not found"));
  HotplugSignaller* s = deps_.signaller ? deps_.signaller() : nullptr;
  if (s == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("device_del: id '", id, "': this VM has no hotplug controller to ask the guest"));
  }
  const uint8_t slot = f->address.slot;
  pending_.emplace(slot, id);  // a second request keeps the first id
  s->EjectRequest(slot);
  return absl::OkStatus();
}

void HotplugController::OnGuestEject(uint8_t slot) {
  absl::MutexLock lock(&queue_mu_);  // held while writing: Shutdown closes the eventfd
  if (queue_closed_) return;
  if (slot < PciBus::kSlots) {
    ejected_ |= 1u << slot;
  } else {
    ++bad_ejects_;
  }
  const uint64_t one = 1;
  (void)!write(eject_event_->fd(), &one, sizeof(one));
}

void HotplugController::ProcessEjects() {
  uint32_t ejected;
  uint64_t bad;
  {
    absl::MutexLock lock(&queue_mu_);
    ejected = ejected_;
    bad = bad_ejects_;
    ejected_ = 0;
    bad_ejects_ = 0;
  }
  absl::MutexLock lock(&mu_);
  if (shut_) return;
  if (bad != 0) GuestLog(absl::StrCat("the guest ejected ", bad, " slot number(s) above 31; ignored"));
  for (uint8_t slot = 0; slot < PciBus::kSlots; ++slot) {
    if (!(ejected & (1u << slot))) continue;
    if (!pending_.count(slot)) {
      GuestLog(absl::StrCat("the guest ejected slot ", slot, ", which has no device_del pending; ignored"));
      continue;
    }
    RemoveSlot(slot);
  }
}

void HotplugController::RemoveSlot(uint8_t slot) {
  pending_.erase(slot);
  absl::StatusOr<std::vector<PciFunctionInfo>> removed = deps_.pci->Remove(slot);
  if (!removed.ok()) {  // emptied meanwhile: nothing to report
    GuestLog(absl::StrCat("slot ", slot, ": ", removed.status().message()));
    return;
  }
  EventSink* events = deps_.events ? deps_.events() : nullptr;
  if (events == nullptr) return;
  for (const PciFunctionInfo& f : *removed) {
    nlohmann::json data = {{"path", f.qom_path}};
    if (!f.id.empty()) data["device"] = f.id;  // QEMU leaves it out for devices without id
    events->Emit("DEVICE_DELETED", std::move(data));
  }
}

void HotplugController::GuestLog(const std::string& line) {
  const absl::Time now = absl::Now();
  if (now - last_log_ < absl::Seconds(1)) {
    ++suppressed_logs_;
    return;
  }
  if (suppressed_logs_ != 0) {
    std::fprintf(stderr, "passage: hotplug: %s (and %llu more such lines suppressed)\n", line.c_str(),
                 static_cast<unsigned long long>(suppressed_logs_));
  } else {
    std::fprintf(stderr, "passage: hotplug: %s\n", line.c_str());
  }
  suppressed_logs_ = 0;
  last_log_ = now;
}

absl::Status HotplugController::ObjectAdd(const ObjectConfig& config, PassedFds& fds) {
  absl::MutexLock lock(&mu_);
  if (shut_) return absl::FailedPreconditionError("object-add: the VM is shutting down");
  absl::StatusOr<Passthrough*> p = deps_.passthrough(true);
  if (!p.ok()) return absl::Status(p.status().code(), absl::StrCat("object-add: ", p.status().message()));
  int fd = -1;
  if (config.fd >= 0) {
    absl::StatusOr<UniqueFd> taken = fds.Take(config.fd);
    if (!taken.ok()) {
      return absl::Status(taken.status().code(), absl::StrCat("object-add: ", taken.status().message()));
    }
    fd = taken->release();  // AddObject owns it on every path
  }
  return (*p)->AddObject(config, fd);
}

absl::Status HotplugController::ObjectDel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (shut_) return absl::FailedPreconditionError("object-del: the VM is shutting down");
  absl::StatusOr<Passthrough*> p = deps_.passthrough(false);
  if (!p.ok()) return p.status();
  if (*p == nullptr) return absl::InvalidArgumentError(absl::StrCat("object-del: id '", id, "': no such object"));
  return (*p)->RemoveObject(id);
}

nlohmann::json HotplugController::QueryPci() {
  absl::MutexLock lock(&mu_);
  nlohmann::json devices = nlohmann::json::array();
  if (!shut_) {
    for (const PciFunctionInfo& f : deps_.pci->Describe()) {
      nlohmann::json d = {
          {"bus", f.address.bus},
          {"slot", f.address.slot},
          {"function", f.address.function},
          {"class_info", {{"class", f.ids.class_code >> 8}}},
          {"id",
           {{"device", f.ids.device},
            {"vendor", f.ids.vendor},
            {"subsystem", f.ids.subsystem},
            {"subsystem-vendor", f.ids.subsystem_vendor}}},
          {"irq_pin", f.ids.interrupt_pin},
          {"qdev_id", f.id},
      };
      if (f.ids.interrupt_pin != 0 && f.intx_gsi != 0) d["irq"] = f.intx_gsi;
      nlohmann::json regions = nlohmann::json::array();
      for (const PciFunctionInfo::Bar& b : f.bars) {
        // QEMU's address of a BAR that does not decode: -1.
        nlohmann::json r = {{"bar", b.index},
                            {"type", b.kind == PciBarKind::kIo ? "io" : "memory"},
                            {"address", b.decoding ? static_cast<int64_t>(b.address) : int64_t{-1}},
                            {"size", b.size}};
        if (b.kind != PciBarKind::kIo) {
          r["prefetch"] = b.prefetchable;
          r["mem_type_64"] = b.kind == PciBarKind::kMem64;
        }
        regions.push_back(std::move(r));
      }
      d["regions"] = std::move(regions);
      devices.push_back(std::move(d));
    }
  }
  return nlohmann::json::array({{{"bus", 0}, {"devices", std::move(devices)}}});
}

nlohmann::json HotplugController::QueryIommufd() {
  absl::MutexLock lock(&mu_);
  nlohmann::json out = {{"objects", nlohmann::json::array()}, {"legacy-container", nullptr}};
  if (shut_) return out;
  absl::StatusOr<Passthrough*> p = deps_.passthrough(false);
  if (!p.ok() || *p == nullptr) return out;
  // Devices are named as Passthrough names them: id=, else the kind.
  std::set<std::string> pending;
  for (const PciFunctionInfo& f : deps_.pci->Describe()) {
    if (pending_.count(f.address.slot)) pending.insert(f.id.empty() ? f.name : f.id);
  }
  for (const Passthrough::ObjectInfo& o : (*p)->DescribeObjects()) {
    out["objects"].push_back({{"id", o.id},
                              {"ioas-id", o.ioas_id},
                              {"passed-fd", o.passed_fd},
                              {"map-file", o.map_file},
                              {"mappings", Mappings(o.mappings)},
                              {"devices", o.devices},
                              {"pending-removal", Pending(o.devices, pending)}});
  }
  if (std::optional<Passthrough::ContainerInfo> c = (*p)->DescribeContainer(); c.has_value()) {
    out["legacy-container"] = {{"mappings", Mappings(c->mappings)},
                               {"devices", c->devices},
                               {"pending-removal", Pending(c->devices, pending)}};
  }
  return out;
}

nlohmann::json HotplugController::QueryPasid() {
  absl::MutexLock lock(&mu_);
  nlohmann::json out = {{"width", 0}, {"devices", nlohmann::json::array()}, {"bindings", nlohmann::json::array()}};
  if (shut_) return out;
  absl::StatusOr<Passthrough*> p = deps_.passthrough(false);
  if (!p.ok() || *p == nullptr) return out;
  const PasidSpace::Info info = (*p)->DescribePasid();
  out["width"] = info.width;
  for (const PasidSpace::DeviceInfo& d : info.devices) {
    out["devices"].push_back({{"id", d.id},
                              {"object", d.object},
                              {"max-pasid-log2", d.info.max_pasid_log2},
                              {"exec", d.info.pasid_exec},
                              {"priv", d.info.pasid_priv},
                              {"state", d.info.max_pasid_log2 != 0 ? "pasid" : "no-pasid"},
                              {"pasids", d.pasids}});
  }
  for (const PasidSpace::BindingInfo& b : info.bindings) {
    nlohmann::json attachments = nlohmann::json::array();
    for (const PasidSpace::AttachmentInfo& a : b.attachments) {
      attachments.push_back({{"device", a.device}, {"object", a.object}, {"hwpt-id", a.hwpt_id}});
    }
    out["bindings"].push_back(
        {{"pasid", b.pasid}, {"object", b.object}, {"ioas-id", b.ioas_id}, {"attachments", std::move(attachments)}});
  }
  return out;
}

absl::Status HotplugController::PasidBind(uint32_t pasid, const std::string& object) {
  return WithPasidSpace("x-passage-pasid-bind", [&](Passthrough& p) { return p.PasidBind(pasid, object); },
                        absl::StrCat("'object' '", object, "': no such iommufd object"));
}

absl::Status HotplugController::PasidUnbind(uint32_t pasid, const std::string& object) {
  return WithPasidSpace("x-passage-pasid-unbind", [&](Passthrough& p) { return p.PasidUnbind(pasid, object); },
                        absl::StrCat("'pasid' ", pasid, " is not bound"));
}

absl::Status HotplugController::WithPasidSpace(const char* command,
                                               const std::function<absl::Status(Passthrough&)>& run,
                                               const std::string& without_passthrough) {
  absl::MutexLock lock(&mu_);
  if (shut_) return absl::FailedPreconditionError(absl::StrCat(command, ": the VM is shutting down"));
  absl::StatusOr<Passthrough*> p = deps_.passthrough(false);
  if (!p.ok()) return p.status();
  // No passthrough side yet: no object, so nothing bound either.
  if (*p == nullptr) return absl::InvalidArgumentError(absl::StrCat(command, ": ", without_passthrough));
  return run(**p);
}

// ---- Vm ----------------------------------------------------------------------

absl::Status Vm::CreateHotplug() {
  HotplugController::Deps deps;
  deps.pci = pci_.get();
  deps.loop = loop_.get();
  deps.passthrough = [this](bool create) { return EnsurePassthrough(create); };
  deps.events = [this]() -> EventSink* { return qmp_.get(); };
  deps.signaller = [this] { return hotplug_signaller_; };
  absl::StatusOr<std::unique_ptr<HotplugController>> h = HotplugController::Create(std::move(deps));
  if (!h.ok()) return h.status();
  hotplug_ = std::move(*h);
  return absl::OkStatus();
}

absl::StatusOr<Passthrough*> Vm::EnsurePassthrough(bool create) {
  if (passthrough_ == nullptr && create) {
    absl::StatusOr<std::unique_ptr<Passthrough>> p = Passthrough::Create({}, *memory_, *loop_, vm_fd());
    if (!p.ok()) return p.status();
    passthrough_ = std::move(*p);
    pci_->set_passthrough(passthrough_.get());
  }
  return passthrough_.get();
}

void Vm::ShutdownHotplug() {
  if (hotplug_ != nullptr) hotplug_->Shutdown();
}

void Vm::SetHotplugSignaller(HotplugSignaller* signaller) { hotplug_signaller_ = signaller; }

namespace {

// -sandbox on without open: a file named by path could not be opened (the
// filter would end passage), so the command is refused before anything.
absl::Status SandboxRefusesPath(absl::string_view command, std::string label) {
  if (size_t space = label.find(' '); space != std::string::npos) label.erase(0, space + 1);  // "-device "
  return absl::FailedPreconditionError(absl::StrCat(
      command, ": ", label, " names its file by path, and -sandbox on forbids opening files after set-up; pass it "
      "with getfd and fd=NAME (or run passage with -sandbox on,open=allow)"));
}

}  // namespace

absl::Status Vm::DeviceAdd(const DeviceConfig& config, PassedFds& fds) {
  // Every device kind opens a path unless given fd= (SandboxAllowsOpen).
  if (sandbox_ && !sandbox_open_ && config.fd < 0) return SandboxRefusesPath("device_add", config.Label());
  return hotplug_->DeviceAdd(config, fds);
}
absl::Status Vm::DeviceDel(const std::string& id) { return hotplug_->DeviceDel(id); }
absl::Status Vm::ObjectAdd(const ObjectConfig& config, PassedFds& fds) {
  if (sandbox_ && !sandbox_open_ && config.fd < 0) return SandboxRefusesPath("object-add", config.Label());
  return hotplug_->ObjectAdd(config, fds);
}
absl::Status Vm::ObjectDel(const std::string& id) { return hotplug_->ObjectDel(id); }
nlohmann::json Vm::QueryPci() { return hotplug_->QueryPci(); }
nlohmann::json Vm::QueryIommufd() { return hotplug_->QueryIommufd(); }
nlohmann::json Vm::QueryPasid() {
  nlohmann::json q = hotplug_->QueryPasid();
  q["enqcmd"] = enqcmd_;
  if (!enqcmd_) q["enqcmd-off-reason"] = kEnqcmdOffReason;
  return q;
}
absl::Status Vm::PasidBind(uint32_t pasid, const std::string& object) {
  return hotplug_->PasidBind(pasid, object);
}
absl::Status Vm::PasidUnbind(uint32_t pasid, const std::string& object) {
  return hotplug_->PasidUnbind(pasid, object);
}
void Vm::OnGuestEject(uint8_t slot) {
  if (hotplug_ != nullptr) hotplug_->OnGuestEject(slot);
}

}  // namespace passage
