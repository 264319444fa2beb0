#include "vmm/device_registry.h"

#include <fcntl.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "devices/vfio/vfio_device.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtio_rng.h"
#include "vmm/passed_fds.h"
#include "vmm/passthrough.h"

namespace passage {
namespace {

absl::Status Named(const DeviceConfig& config, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(config.Label(), ": ", s.message()));
}

// The fd a -device named, from the command line's owner (it is the
// device's from now on).
absl::StatusOr<UniqueFd> TakeFd(const DeviceConfig& config, const DeviceEnv& env) {
  if (env.fds == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("fd=", config.fd, " was not passed to passage"));
  }
  return env.fds->Take(config.fd);
}

// --- virtio-rng-pci ---

absl::Status CheckRng(const DeviceConfig& d) {
  const bool has_file = d.props.count("filename") > 0;
  if (has_file && d.fd >= 0) return absl::InvalidArgumentError("filename= and fd= are exclusive");
  if (has_file && d.props.at("filename").empty()) return absl::InvalidArgumentError("filename= is empty");
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenRngSource(const DeviceConfig& config, const DeviceEnv& env) {
  if (config.fd >= 0) return TakeFd(config, env);
  std::string path = "/dev/urandom";
  if (auto f = config.props.find("filename"); f != config.props.end()) path = f->second;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return ErrnoError(absl::StrCat("filename=", absl::CEscape(path)));
  return fd;
}

absl::StatusOr<std::shared_ptr<PciDevice>> CreateRng(const DeviceConfig& config, const DeviceEnv& env) {
  absl::StatusOr<UniqueFd> source = OpenRngSource(config, env);
  if (!source.ok()) return Named(config, source.status());
  absl::StatusOr<std::unique_ptr<VirtioRng>> rng = VirtioRng::Create(std::move(*source));
  if (!rng.ok()) return Named(config, rng.status());
  const std::string name = config.Label().substr(std::string("-device ").size());
  absl::StatusOr<std::shared_ptr<VirtioPciDevice>> d =
      VirtioPciDevice::Create(name, std::move(*rng), *env.memory, *env.irq);
  if (!d.ok()) return Named(config, d.status());
  return std::shared_ptr<PciDevice>(std::move(*d));
}

// --- vfio-pci ---

absl::Status CheckVfioPciConfig(const DeviceConfig& d) {
  const int sources = static_cast<int>(d.props.count("host") + d.props.count("sysfsdev")) + (d.fd >= 0 ? 1 : 0);
  if (sources != 1) {
    return absl::InvalidArgumentError("exactly one of host=, sysfsdev= or fd= names the device");
  }
  if (auto it = d.props.find("host"); it != d.props.end()) {
    if (absl::StatusOr<std::string> bdf = ParseHostBdf(it->second); !bdf.ok()) return bdf.status();
  }
  // The one home of this rule: a passed fd is a VFIO cdev, and a cdev is
  // bound through iommufd (the legacy container takes groups, not cdevs).
  if (d.fd >= 0 && d.props.count("iommufd") == 0) {
    return absl::InvalidArgumentError("fd= needs iommufd= (a passed fd is a VFIO cdev, bound through iommufd)");
  }
  if (auto it = d.props.find("sysfsdev"); it != d.props.end() && it->second.empty()) {
    return absl::InvalidArgumentError("sysfsdev= is empty");
  }
  if (auto it = d.props.find("iommufd"); it != d.props.end() && it->second.empty()) {
    return absl::InvalidArgumentError("iommufd= is empty");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<PciDevice>> CreateVfioPci(const DeviceConfig& config, const DeviceEnv& env) {
  if (env.passthrough == nullptr) {  // the fd, if any, stays with env.fds, which closes it
    return absl::FailedPreconditionError(absl::StrCat(config.Label(), ": this VM has no passthrough side"));
  }
  if (config.fd >= 0) {
    absl::StatusOr<UniqueFd> fd = TakeFd(config, env);
    if (!fd.ok()) return Named(config, fd.status());
    (void)fd->release();  // Passthrough owns it now, also when it fails
  }
  return env.passthrough->CreateVfioPci(config, *env.irq);
}

}  // namespace

const std::vector<DeviceKind>& DeviceKinds() {
  static const auto* kinds = new std::vector<DeviceKind>{
      {"vfio-pci",
       "a host PCI device passed through by VFIO",
       {{"host", "BDF", "the host device (0000:00:04.0 or 00:04.0), bound to vfio-pci"},
        {"sysfsdev", "PATH", "the host device's sysfs directory, instead of host="},
        {"fd", "N", "an open VFIO cdev (/dev/vfio/devices/vfioX); needs iommufd="},
        {"iommufd", "ID", "join that -object iommufd's IOAS (default: the legacy VFIO container)"}},
       CheckVfioPciConfig,
       CreateVfioPci},
      {"virtio-rng-pci",
       "virtio entropy source",
       {{"filename", "PATH", "read entropy from this file (default /dev/urandom)"},
        {"fd", "N", "read entropy from this open file or pipe, instead of filename="}},
       CheckRng,
       CreateRng},
  };
  return *kinds;
}

const DeviceKind* FindDeviceKind(absl::string_view name) {
  for (const DeviceKind& k : DeviceKinds()) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

std::vector<std::string> KnownDeviceNames() {
  std::vector<std::string> names;
  for (const DeviceKind& k : DeviceKinds()) names.push_back(k.name);
  return names;
}

std::string DeviceKindsHelp() {
  std::string out;
  for (const DeviceKind& k : DeviceKinds()) {
    absl::StrAppend(&out, KindHelp(k.name, k.help, k.keys));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<PciDevice>> CreateDevice(const DeviceConfig& config, const DeviceEnv& env) {
  const DeviceKind* kind = FindDeviceKind(config.driver);
  if (kind == nullptr) return absl::InvalidArgumentError(absl::StrCat(config.Label(), ": no such device"));
  return kind->create(config, env);
}

}  // namespace passage
