// A fake kernel behind passage::Sys: just enough of iommufd (/dev/iommu) and
// the legacy VFIO container/group uAPI to test iommu/ without privileges.
// It checks arguments the way the kernel does and keeps track of open fds,
// mappings (pinned pages) and mmaps, so tests can assert nothing leaked;
// `faults` fails the Nth call of a kind (tests/unit/fault_plan.h).
#ifndef PASSAGE_TESTS_UNIT_FAKE_KERNEL_H_
#define PASSAGE_TESTS_UNIT_FAKE_KERNEL_H_

#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "iommu/dma_space.h"
#include "iommu/ioctl_names.h"
#include "iommu/sys.h"
#include "tests/unit/fault_plan.h"

namespace passage::testing {

// A passthrough PCI device as VFIO shows it: config space, regions, IRQs.
struct FakeVfioPci {
  struct Region {
    uint32_t flags = 0;
    uint64_t size = 0;
    std::vector<std::pair<uint64_t, uint64_t>> sparse;  // offset, size
    bool msix_mappable = false;
  };
  std::vector<uint8_t> config = std::vector<uint8_t>(4096, 0);
  std::vector<Region> regions = std::vector<Region>(VFIO_PCI_NUM_REGIONS);
  std::vector<uint32_t> irq_counts = std::vector<uint32_t>(VFIO_PCI_NUM_IRQS, 0);
  bool resettable = true;
  // The expansion ROM region's contents (regions[VFIO_PCI_ROM_REGION_INDEX]
  // gives its size); reads fail with EIO when not readable, as the host
  // kernel does for a ROM without a valid signature.
  std::vector<uint8_t> rom;
  bool rom_readable = true;
  int rom_reads = 0;
  // Reserved IOVA regions (e.g. the x86 MSI window). Like the kernel, the
  // fake shows them in an IOAS only while the device is attached to it, and
  // in the container only while the device's group is in it.
  std::vector<IovaRange> reserved;
  int group_id = -1;  // the IOMMU group, for the container's reserved ranges
  // PCI hot reset (used when not `resettable`): supported at all (else
  // ENODEV), on the cdev path whether all affected devices are owned, on the
  // legacy path the ids of the affected groups.
  bool hot_reset_supported = false;
  bool hot_reset_owned = true;
  std::vector<uint32_t> hot_reset_groups;
  int hot_resets = 0;
  // PASID: what IOMMU_GET_HW_INFO reports (width 0: none; EXEC/PRIV in
  // hw_caps), whether the IOMMU makes PASID-compatible HWPTs, and errnos to
  // fail a PASID HWPT allocation or a PASID attach with (0: they work).
  uint8_t max_pasid_log2 = 0;
  uint64_t hw_caps = 0;
  bool pasid_hwpt_supported = true;
  int fail_hwpt_alloc = 0;
  int fail_pasid_attach = 0;
  int pasid_attaches_before_failing = 0;  // fail_pasid_attach spares this many first
  // State the fake keeps.
  int bound_iommufd = -1;
  uint32_t devid = 0;        // from the bind
  uint32_t attached_pt = 0;  // the IOAS or HWPT of the whole-device attachment
  uint32_t attached_ioas = 0;  // the IOAS it translates through
  std::map<uint32_t, uint32_t> pasids;  // attached PASID -> HWPT
  int pasid_attaches = 0;
  int resets = 0;
  std::map<std::pair<uint32_t, uint32_t>, int32_t> irq_eventfds;  // (index, vector) -> fd
  std::map<uint32_t, int32_t> unmask_eventfds;
  // VFIO_DEVICE_SET_IRQS on these IRQ indexes fails with EINVAL.
  std::set<uint32_t> failing_irq_indexes;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> writes;  // fd offset, data

  static constexpr uint64_t kRegionShift = 40;  // region offset in the device fd
};

class FakeKernel : public Sys {
 public:
  enum class Kind { kIommufd, kContainer, kGroup, kVfioDevice, kKvmVm, kKvmVfio, kOther };

  // sysfs: symlinks, directories, existing paths.
  std::map<std::string, std::string> links;
  std::map<std::string, std::vector<std::string>> dirs;
  std::set<std::string> paths;
  std::map<std::string, std::string> files;  // ReadFile contents
  // Devices by cdev path ("/dev/vfio/devices/vfio0") and by BDF for groups.
  std::map<std::string, FakeVfioPci*> cdevs;
  std::map<std::string, FakeVfioPci*> group_devices;
  // A PCI function bound to vfio-pci as sysfs shows it: its driver and
  // iommu_group links, its vfio-dev cdev, and `dev` behind both the cdev and
  // the group.
  void AddVfioPciSysfs(const std::string& bdf, const std::string& cdev, const std::string& group,
                       FakeVfioPci* dev) {
    const std::string sysfs = "/sys/bus/pci/devices/" + bdf;
    paths.insert(sysfs);
    links[sysfs + "/driver"] = "../../../bus/pci/drivers/vfio-pci";
    links[sysfs + "/iommu_group"] = "../../../kernel/iommu_groups/" + group;
    dirs[sysfs + "/vfio-dev"] = {cdev};
    cdevs["/dev/vfio/devices/" + cdev] = dev;
    group_devices[bdf] = dev;
  }
  std::set<std::string> busy;  // paths whose open fails with EBUSY

  // Knobs.
  bool map_file_supported = true;
  std::vector<IovaRange> allowed = {{0, ~0ull}};
  bool group_viable = true;
  // Fails the Nth call of a kind: "open_iommu", "open_container",
  // "open_group", "open_cdev", an ioctl by its macro's name
  // ("IOMMU_IOAS_MAP_FILE", "VFIO_DEVICE_SET_IRQS", "KVM_CREATE_DEVICE"),
  // "pread_config", "pread_rom", "pwrite_config", "pwrite_bar", "mmap_bar",
  // "readlink", "listdir", "readfile". Close and munmap never fail.
  FaultPlan faults;
  // Called with the ioctl's name before the fake serves it (fault check
  // included): a test can hold one call there (e.g. a background map) while
  // other threads run. Nothing else in the fake is thread-safe: a test lets
  // one thread at a time into it.
  std::function<void(const std::string&)> before_ioctl;
  // Whether ATTACH refuses a device whose reserved regions overlap a mapping
  // (the kernel does, with EADDRINUSE); off to test passage's own check.
  bool attach_checks_reserved = true;

  // Observations.
  std::vector<std::string> opened_paths;
  int map_calls = 0, map_file_calls = 0, unmap_calls = 0, destroy_calls = 0;  // IOAS destroys
  int hwpt_allocs = 0, hwpt_destroys = 0;
  // Live HWPTs: id -> (IOAS, flags).
  struct Hwpt {
    uint32_t ioas;
    uint32_t flags;
  };
  std::map<uint32_t, Hwpt> hwpts;
  // iova -> length. Spaces are kept apart by offsetting the key: the first
  // IOAS uses the IOVA itself, IOAS n adds (n-1)<<48, the legacy container
  // 0xffff<<48 (a VM may have both).
  std::map<uint64_t, uint64_t> mapped;
  bool iommu_set = false;
  int group_container = -1;  // the container fd while any group is in it
  std::set<int> groups_in_container;
  // The order of the calls that must be ordered: "kvm-vfio add <fd>",
  // "bind <fd>", "kvm-vfio del <fd>", "attach <fd>", "detach <fd>",
  // "attach-pasid <fd> <pasid>", "detach-pasid <fd> <pasid>".
  std::vector<std::string> events;
  std::set<int> kvm_vfio_files;  // files KVM-VFIO holds
  int kvm_vfio_devices = 0;      // KVM_CREATE_DEVICE calls

  int AddFd(Kind kind) {
    const int fd = next_fd_++;
    fds_[fd] = kind;
    return fd;
  }
  size_t open_fds() const { return fds_.size(); }
  // Pages pinned by IOMMU mappings (the kernel pins what it maps).
  uint64_t pinned_pages() const {
    uint64_t pages = 0;
    for (auto& [iova, len] : mapped) pages += len / 4096;
    return pages;
  }
  size_t live_mmaps() const { return mmaps_.size(); }
  // What the fake holds now, one item per line: fds by kind, IOASes, HWPTs,
  // mappings, devices bound or attached, KVM-VFIO files, the container's
  // state and mmaps. Equal snapshots: nothing was left behind.
  std::string Describe() const {
    std::string out;
    static const char* const kKinds[] = {"iommufd", "container", "group", "vfio-device", "kvm-vm", "kvm-vfio", "other"};
    for (auto& [fd, kind] : fds_) out += "fd " + std::to_string(fd) + " " + kKinds[static_cast<int>(kind)] + "\n";
    for (uint32_t id : ioas_) out += "ioas " + std::to_string(id) + "\n";
    for (auto& [id, h] : hwpts) out += "hwpt " + std::to_string(id) + " on ioas " + std::to_string(h.ioas) + "\n";
    for (auto& [iova, len] : mapped) out += "mapping " + std::to_string(iova) + "+" + std::to_string(len) + "\n";
    for (FakeVfioPci* d : AllDevices()) {
      if (d->bound_iommufd >= 0) out += "device " + std::to_string(d->devid) + " bound\n";
      if (d->attached_pt != 0) out += "device " + std::to_string(d->devid) + " attached to " + std::to_string(d->attached_pt) + "\n";
      if (!d->irq_eventfds.empty()) out += "device " + std::to_string(d->devid) + " has irq eventfds\n";
    }
    for (int f : kvm_vfio_files) out += "kvm-vfio file " + std::to_string(f) + "\n";
    for (int g : groups_in_container) out += "group " + std::to_string(g) + " in the container\n";
    if (iommu_set) out += "container iommu set\n";
    if (!mmaps_.empty()) out += std::to_string(mmaps_.size()) + " mmaps\n";
    return out;
  }
  bool is_open(int fd) const { return fds_.count(fd) != 0; }

  int Open(const char* path, int) override {
    opened_paths.emplace_back(path);
    const std::string p(path);
    const char* kind = cdevs.count(p) || p.rfind("/dev/vfio/devices/", 0) == 0 ? "open_cdev"
                       : p == "/dev/iommu"                                     ? "open_iommu"
                       : p == "/dev/vfio/vfio"                                 ? "open_container"
                       : p.rfind("/dev/vfio/", 0) == 0                         ? "open_group"
                                                                               : "open";
    if (int err = faults.Check(kind)) return Fail(err);
    if (busy.count(p)) return Fail(EBUSY);
    if (auto c = cdevs.find(p); c != cdevs.end()) {
      const int fd = AddFd(Kind::kVfioDevice);
      device_of_[fd] = c->second;
      return fd;
    }
    if (p == "/dev/iommu") return AddFd(Kind::kIommufd);
    if (p == "/dev/vfio/vfio") return AddFd(Kind::kContainer);
    if (p.rfind("/dev/vfio/", 0) == 0) {
      const int fd = AddFd(Kind::kGroup);
      group_of_[fd] = std::atoi(p.c_str() + std::strlen("/dev/vfio/"));
      return fd;
    }
    errno = ENOENT;
    return -1;
  }
  int Close(int fd) override {
    if (FakeVfioPci* d = Device(fd)) {
      d->bound_iommufd = -1;  // closing a cdev unbinds it
      d->attached_pt = 0;
      d->attached_ioas = 0;
      d->pasids.clear();
      device_of_.erase(fd);
    }
    group_of_.erase(fd);
    if (fds_.erase(fd) == 0) {
      errno = EBADF;
      return -1;
    }
    return 0;
  }
  ssize_t Pread(int fd, void* buf, size_t count, off_t offset) override {
    FakeVfioPci* d = Device(fd);
    if (d == nullptr) return Fail(EBADF);
    const uint64_t index = static_cast<uint64_t>(offset) >> FakeVfioPci::kRegionShift;
    const uint64_t off = static_cast<uint64_t>(offset) & ((1ull << FakeVfioPci::kRegionShift) - 1);
    if (int err = faults.Check(index == VFIO_PCI_CONFIG_REGION_INDEX ? "pread_config"
                               : index == VFIO_PCI_ROM_REGION_INDEX  ? "pread_rom"
                                                                     : "pread_bar")) {
      return Fail(err);
    }
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
      if (off + count > d->config.size()) return Fail(EINVAL);
      std::memcpy(buf, d->config.data() + off, count);
      return static_cast<ssize_t>(count);
    }
    if (index == VFIO_PCI_ROM_REGION_INDEX) {
      ++d->rom_reads;
      if (!d->rom_readable) return Fail(EIO);
      if (off + count > d->rom.size()) return Fail(EINVAL);
      std::memcpy(buf, d->rom.data() + off, count);
      return static_cast<ssize_t>(count);
    }
    std::memset(buf, 0, count);
    return static_cast<ssize_t>(count);
  }
  ssize_t Pwrite(int fd, const void* buf, size_t count, off_t offset) override {
    FakeVfioPci* d = Device(fd);
    if (d == nullptr) return Fail(EBADF);
    if (int err = faults.Check(static_cast<uint64_t>(offset) >> FakeVfioPci::kRegionShift ==
                                       VFIO_PCI_CONFIG_REGION_INDEX
                                   ? "pwrite_config"
                                   : "pwrite_bar")) {
      return Fail(err);
    }
    const auto* p = static_cast<const uint8_t*>(buf);
    d->writes.push_back({static_cast<uint64_t>(offset), std::vector<uint8_t>(p, p + count)});
    const uint64_t index = static_cast<uint64_t>(offset) >> FakeVfioPci::kRegionShift;
    const uint64_t off = static_cast<uint64_t>(offset) & ((1ull << FakeVfioPci::kRegionShift) - 1);
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
      if (off + count > d->config.size()) return Fail(EINVAL);
      std::memcpy(d->config.data() + off, p, count);
    }
    return static_cast<ssize_t>(count);
  }
  void* MmapShared(int fd, size_t length, off_t) override {
    if (Device(fd) == nullptr) {
      errno = EBADF;
      return MAP_FAILED;
    }
    if (int err = faults.Check("mmap_bar")) {
      errno = err;
      return MAP_FAILED;
    }
    void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) mmaps_[p] = length;
    return p;
  }
  int Munmap(void* addr, size_t length) override {
    mmaps_.erase(addr);
    return ::munmap(addr, length);
  }
  absl::StatusOr<std::string> ReadLink(const std::string& path) override {
    if (int err = faults.Check("readlink")) return absl::ErrnoToStatus(err, "readlink " + path);
    auto it = links.find(path);
    if (it == links.end()) return absl::NotFoundError(path);
    return it->second;
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    if (int err = faults.Check("listdir")) return absl::ErrnoToStatus(err, "opendir " + path);
    auto it = dirs.find(path);
    if (it == dirs.end()) return absl::NotFoundError(path);
    return it->second;
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    if (int err = faults.Check("readfile")) return absl::ErrnoToStatus(err, "read " + path);
    auto it = files.find(path);
    if (it == files.end()) return absl::NotFoundError(path);
    return it->second;
  }
  bool Exists(const std::string& path) override {
    return paths.count(path) || dirs.count(path) || links.count(path);
  }

  int Ioctl(int fd, unsigned long request, void* arg) override {
    auto it = fds_.find(fd);
    if (it == fds_.end()) return Fail(EBADF);
    const std::string name = IoctlName(it->second, request);
    if (before_ioctl) before_ioctl(name);
    if (int err = faults.Check(name)) return Fail(err);
    switch (it->second) {
      case Kind::kIommufd: return IommufdIoctl(fd, request, arg);
      case Kind::kContainer: return ContainerIoctl(request, arg);
      case Kind::kGroup: return GroupIoctl(fd, request, arg);
      case Kind::kVfioDevice: return DeviceIoctl(fd, request, arg);
      case Kind::kKvmVm: return KvmVmIoctl(request, arg);
      case Kind::kKvmVfio: return KvmVfioIoctl(request, arg);
      case Kind::kOther: return Fail(ENOTTY);
    }
    return Fail(ENOTTY);
  }

 private:
  static std::string IoctlName(Kind kind, unsigned long request) {
    return passage::IoctlName(request, kind == Kind::kContainer);
  }
  static int Fail(int err) {
    errno = err;
    return -1;
  }
  // `ranges` without the parts in `holes`.
  static std::vector<IovaRange> Subtract(std::vector<IovaRange> ranges,
                                         const std::vector<IovaRange>& holes) {
    for (const IovaRange& h : holes) {
      std::vector<IovaRange> out;
      for (const IovaRange& r : ranges) {
        if (h.last < r.start || h.start > r.last) {
          out.push_back(r);
          continue;
        }
        if (h.start > r.start) out.push_back({r.start, h.start - 1});
        if (h.last < r.last) out.push_back({h.last + 1, r.last});
      }
      ranges = out;
    }
    return ranges;
  }
  std::set<FakeVfioPci*> AllDevices() const {
    std::set<FakeVfioPci*> all;
    for (auto& [p, d] : cdevs) all.insert(d);
    for (auto& [b, d] : group_devices) all.insert(d);
    return all;
  }
  // What an IOAS (space > 0) or the container (space 0) allows right now.
  std::vector<IovaRange> AllowedIn(uint32_t space) const {
    std::vector<IovaRange> holes;
    for (FakeVfioPci* d : AllDevices()) {
      const bool in = space == 0 ? groups_in_container.count(d->group_id) != 0
                                 : d->attached_ioas == space;
      if (in) holes.insert(holes.end(), d->reserved.begin(), d->reserved.end());
    }
    return Subtract(allowed, holes);
  }
  // Whether a mapping of `space` overlaps one of `regions`.
  bool MappingHits(uint32_t space, const std::vector<IovaRange>& regions) const {
    for (const IovaRange& r : regions) {
      for (auto& [key, len] : mapped) {
        if ((key >> 48) != SpaceTag(space)) continue;
        const uint64_t iova = key & ((uint64_t{1} << 48) - 1);
        if (iova <= r.last && r.start <= iova + len - 1) return true;
      }
    }
    return false;
  }
  bool Allowed(uint32_t space, uint64_t iova, uint64_t len) const {
    for (auto& r : AllowedIn(space)) {
      if (iova >= r.start && iova + len - 1 <= r.last) return true;
    }
    return false;
  }
  static uint64_t SpaceTag(uint32_t space) { return space == 0 ? 0xffff : space - 1; }
  static uint64_t Key(uint32_t space, uint64_t iova) { return iova + (SpaceTag(space) << 48); }
  int AddMapping(uint32_t space, uint64_t iova, uint64_t len) {
    if (len == 0 || iova % 4096 || len % 4096) return Fail(EINVAL);
    if (!Allowed(space, iova, len)) return Fail(EINVAL);
    iova = Key(space, iova);
    for (auto& [a, l] : mapped) {
      if (iova < a + l && a < iova + len) return Fail(EEXIST);
    }
    mapped[iova] = len;
    return 0;
  }
  int RemoveMapping(uint32_t space, uint64_t iova, uint64_t len) {
    auto m = mapped.find(Key(space, iova));
    if (m == mapped.end() || m->second != len) return Fail(ENOENT);
    mapped.erase(m);
    return 0;
  }

  // The device bound to iommufd `fd` as `devid`.
  FakeVfioPci* Bound(int fd, uint32_t devid) const {
    for (FakeVfioPci* d : AllDevices()) {
      if (d->bound_iommufd == fd && d->devid == devid) return d;
    }
    return nullptr;
  }
  bool HwptInUse(uint32_t id) const {
    for (FakeVfioPci* d : AllDevices()) {
      if (d->attached_pt == id) return true;
      for (auto& [pasid, hwpt] : d->pasids) {
        if (hwpt == id) return true;
      }
    }
    return false;
  }

  int IommufdIoctl(int fd, unsigned long request, void* arg) {
    switch (request) {
      case IOMMU_GET_HW_INFO: {
        auto* info = static_cast<iommu_hw_info*>(arg);
        if (info->size < sizeof(*info) || info->flags) return Fail(EINVAL);
        FakeVfioPci* d = Bound(fd, info->dev_id);
        if (d == nullptr) return Fail(ENOENT);
        info->out_data_type = IOMMU_HW_INFO_TYPE_NONE;
        info->data_len = 0;
        info->out_max_pasid_log2 = d->max_pasid_log2;
        info->out_capabilities = d->hw_caps;
        return 0;
      }
      case IOMMU_HWPT_ALLOC: {
        auto* a = static_cast<iommu_hwpt_alloc*>(arg);
        if (a->size < sizeof(*a) || (a->flags & ~IOMMU_HWPT_ALLOC_PASID)) return Fail(EOPNOTSUPP);
        FakeVfioPci* d = Bound(fd, a->dev_id);
        if (d == nullptr || !ioas_.count(a->pt_id)) return Fail(ENOENT);
        if (a->flags & IOMMU_HWPT_ALLOC_PASID) {
          if (d->max_pasid_log2 == 0 || !d->pasid_hwpt_supported) return Fail(EOPNOTSUPP);
          if (d->fail_hwpt_alloc != 0) return Fail(d->fail_hwpt_alloc);
        }
        ++hwpt_allocs;
        a->out_hwpt_id = next_id_++;
        hwpts[a->out_hwpt_id] = {a->pt_id, a->flags};
        return 0;
      }
      case IOMMU_IOAS_ALLOC: {
        auto* a = static_cast<iommu_ioas_alloc*>(arg);
        if (a->size < sizeof(*a) || a->flags) return Fail(EINVAL);
        a->out_ioas_id = next_id_++;
        ioas_.insert(a->out_ioas_id);
        return 0;
      }
      case IOMMU_DESTROY: {
        auto* d = static_cast<iommu_destroy*>(arg);
        if (hwpts.count(d->id)) {
          if (HwptInUse(d->id)) return Fail(EBUSY);
          ++hwpt_destroys;
          hwpts.erase(d->id);
          return 0;
        }
        ++destroy_calls;
        for (auto& [id, h] : hwpts) {
          if (h.ioas == d->id) return Fail(EBUSY);  // a HWPT still refers to it
        }
        return ioas_.erase(d->id) ? 0 : Fail(ENOENT);
      }
      case IOMMU_IOAS_IOVA_RANGES: {
        auto* q = static_cast<iommu_ioas_iova_ranges*>(arg);
        if (!ioas_.count(q->ioas_id)) return Fail(ENOENT);
        const std::vector<IovaRange> now = AllowedIn(q->ioas_id);
        const uint32_t room = q->num_iovas;
        q->num_iovas = static_cast<uint32_t>(now.size());
        if (room < now.size()) return Fail(EMSGSIZE);
        auto* out = reinterpret_cast<iommu_iova_range*>(q->allowed_iovas);
        for (size_t i = 0; i < now.size(); ++i) out[i] = {now[i].start, now[i].last};
        q->out_iova_alignment = 4096;
        return 0;
      }
      case IOMMU_IOAS_MAP: {
        auto* m = static_cast<iommu_ioas_map*>(arg);
        ++map_calls;
        if (!ioas_.count(m->ioas_id) || !(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA) || !m->user_va) {
          return Fail(EINVAL);
        }
        return AddMapping(m->ioas_id, m->iova, m->length);
      }
      case IOMMU_IOAS_MAP_FILE: {
        if (!map_file_supported) return Fail(ENOTTY);
        auto* m = static_cast<iommu_ioas_map_file*>(arg);
        ++map_file_calls;
        if (!ioas_.count(m->ioas_id) || m->fd < 0) return Fail(EINVAL);
        return AddMapping(m->ioas_id, m->iova, m->length);
      }
      case IOMMU_IOAS_UNMAP: {
        auto* u = static_cast<iommu_ioas_unmap*>(arg);
        ++unmap_calls;
        if (!ioas_.count(u->ioas_id)) return Fail(ENOENT);
        return RemoveMapping(u->ioas_id, u->iova, u->length);
      }
    }
    return Fail(ENOTTY);
  }

  int ContainerIoctl(unsigned long request, void* arg) {
    switch (request) {
      case VFIO_GET_API_VERSION: return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return reinterpret_cast<uintptr_t>(arg) == VFIO_TYPE1v2_IOMMU ? 1 : 0;
      case VFIO_SET_IOMMU:
        if (group_container < 0 || iommu_set) return Fail(EINVAL);
        iommu_set = true;
        return 0;
      case VFIO_IOMMU_GET_INFO: {
        auto* info = static_cast<vfio_iommu_type1_info*>(arg);
        if (!iommu_set) return Fail(EINVAL);
        const std::vector<IovaRange> now = AllowedIn(0);
        const size_t need = sizeof(vfio_iommu_type1_info) +
                            sizeof(vfio_iommu_type1_info_cap_iova_range) +
                            now.size() * sizeof(vfio_iova_range);
        info->flags = VFIO_IOMMU_INFO_CAPS;
        if (info->argsz < need) {
          info->argsz = static_cast<uint32_t>(need);
          info->cap_offset = 0;
          return 0;
        }
        info->cap_offset = sizeof(vfio_iommu_type1_info);
        auto* cap = reinterpret_cast<vfio_iommu_type1_info_cap_iova_range*>(
            reinterpret_cast<uint8_t*>(info) + info->cap_offset);
        cap->header.id = VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE;
        cap->header.version = 1;
        cap->header.next = 0;
        cap->nr_iovas = static_cast<uint32_t>(now.size());
        for (size_t i = 0; i < now.size(); ++i) cap->iova_ranges[i] = {now[i].start, now[i].last};
        return 0;
      }
      case VFIO_IOMMU_MAP_DMA: {
        auto* m = static_cast<vfio_iommu_type1_dma_map*>(arg);
        ++map_calls;
        if (!iommu_set || !m->vaddr) return Fail(EINVAL);
        return AddMapping(0, m->iova, m->size);
      }
      case VFIO_IOMMU_UNMAP_DMA: {
        auto* u = static_cast<vfio_iommu_type1_dma_unmap*>(arg);
        ++unmap_calls;
        return RemoveMapping(0, u->iova, u->size);
      }
    }
    return Fail(ENOTTY);
  }

  int GroupIoctl(int fd, unsigned long request, void* arg) {
    const int group = group_of_.count(fd) ? group_of_.at(fd) : -1;
    const bool in = groups_in_container.count(group) != 0;
    switch (request) {
      case VFIO_GROUP_GET_STATUS: {
        auto* s = static_cast<vfio_group_status*>(arg);
        s->flags = (group_viable ? VFIO_GROUP_FLAGS_VIABLE : 0) |
                   (in ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
        return 0;
      }
      case VFIO_GROUP_SET_CONTAINER: {
        const int c = *static_cast<int*>(arg);
        auto it = fds_.find(c);
        if (it == fds_.end() || it->second != Kind::kContainer) return Fail(EBADF);
        if (in || (group_container >= 0 && group_container != c)) return Fail(EBUSY);
        // type1 refuses a group whose reserved regions overlap a mapping.
        for (FakeVfioPci* d : AllDevices()) {
          if (d->group_id == group && iommu_set && MappingHits(0, d->reserved)) return Fail(EINVAL);
        }
        group_container = c;
        groups_in_container.insert(group);
        return 0;
      }
      case VFIO_GROUP_GET_DEVICE_FD: {
        if (!in || !iommu_set) return Fail(EINVAL);
        auto it = group_devices.find(static_cast<const char*>(arg));
        if (it == group_devices.end()) return Fail(ENODEV);
        if (busy.count(it->first)) return Fail(EBUSY);
        const int fd = AddFd(Kind::kVfioDevice);
        device_of_[fd] = it->second;
        return fd;
      }
      case VFIO_GROUP_UNSET_CONTAINER:
        if (!in) return Fail(EINVAL);
        groups_in_container.erase(group);
        if (groups_in_container.empty()) {  // the IOMMU and its mappings go
          group_container = -1;
          iommu_set = false;
          std::erase_if(mapped, [](auto& m) { return (m.first >> 48) == SpaceTag(0); });
        }
        return 0;
    }
    return Fail(ENOTTY);
  }

  FakeVfioPci* Device(int fd) const {
    auto it = device_of_.find(fd);
    return it == device_of_.end() ? nullptr : it->second;
  }

  int DeviceIoctl(int fd, unsigned long request, void* arg) {
    FakeVfioPci* d = Device(fd);
    switch (request) {
      case VFIO_DEVICE_BIND_IOMMUFD: {
        auto* b = static_cast<vfio_device_bind_iommufd*>(arg);
        auto it = fds_.find(b->iommufd);
        if (it == fds_.end() || it->second != Kind::kIommufd) return Fail(EBADF);
        if (d->bound_iommufd >= 0) return Fail(EINVAL);
        d->bound_iommufd = b->iommufd;
        events.push_back("bind " + std::to_string(fd));
        d->devid = next_devid_++;
        b->out_devid = d->devid;
        return 0;
      }
      case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
        auto* a = static_cast<vfio_device_attach_iommufd_pt*>(arg);
        if (d->bound_iommufd < 0 || (a->flags & ~VFIO_DEVICE_ATTACH_PASID)) return Fail(EINVAL);
        auto hwpt = hwpts.find(a->pt_id);
        if (a->flags & VFIO_DEVICE_ATTACH_PASID) {
          // The kernel: a PASID-flagged HWPT, and a PASID-compatible
          // domain on the whole device too.
          if (a->pasid == 0 || a->pasid >> d->max_pasid_log2 != 0) return Fail(EINVAL);
          if (hwpt == hwpts.end() || !(hwpt->second.flags & IOMMU_HWPT_ALLOC_PASID)) return Fail(EINVAL);
          auto main = hwpts.find(d->attached_pt);
          if (main == hwpts.end() || !(main->second.flags & IOMMU_HWPT_ALLOC_PASID)) return Fail(EINVAL);
          if (d->fail_pasid_attach != 0 && d->pasid_attaches >= d->pasid_attaches_before_failing) {
            return Fail(d->fail_pasid_attach);
          }
          ++d->pasid_attaches;
          d->pasids[a->pasid] = a->pt_id;
          events.push_back("attach-pasid " + std::to_string(fd) + " " + std::to_string(a->pasid));
          return 0;
        }
        const uint32_t ioas = hwpt != hwpts.end() ? hwpt->second.ioas : a->pt_id;
        if (!ioas_.count(ioas)) return Fail(EINVAL);
        if (!d->pasids.empty() && (hwpt == hwpts.end() || !(hwpt->second.flags & IOMMU_HWPT_ALLOC_PASID))) {
          return Fail(EINVAL);
        }
        if (attach_checks_reserved && MappingHits(ioas, d->reserved)) return Fail(EADDRINUSE);
        d->attached_pt = a->pt_id;
        d->attached_ioas = ioas;
        events.push_back("attach " + std::to_string(fd));
        return 0;
      }
      case VFIO_DEVICE_DETACH_IOMMUFD_PT: {
        auto* a = static_cast<vfio_device_detach_iommufd_pt*>(arg);
        if (a->flags & VFIO_DEVICE_DETACH_PASID) {
          if (d->pasids.erase(a->pasid) == 0) return Fail(EINVAL);
          events.push_back("detach-pasid " + std::to_string(fd) + " " + std::to_string(a->pasid));
          return 0;
        }
        if (d->attached_pt == 0) return Fail(EINVAL);
        d->attached_pt = 0;
        d->attached_ioas = 0;
        events.push_back("detach " + std::to_string(fd));
        return 0;
      }
      case VFIO_DEVICE_GET_INFO: {
        auto* info = static_cast<vfio_device_info*>(arg);
        if (d->bound_iommufd < 0 && groups_in_container.empty()) return Fail(EINVAL);
        info->flags = VFIO_DEVICE_FLAGS_PCI | (d->resettable ? VFIO_DEVICE_FLAGS_RESET : 0);
        info->num_regions = static_cast<uint32_t>(d->regions.size());
        info->num_irqs = static_cast<uint32_t>(d->irq_counts.size());
        return 0;
      }
      case VFIO_DEVICE_GET_REGION_INFO: {
        auto* info = static_cast<vfio_region_info*>(arg);
        if (info->index >= d->regions.size()) return Fail(EINVAL);
        const FakeVfioPci::Region& r = d->regions[info->index];
        size_t need = sizeof(vfio_region_info);
        if (!r.sparse.empty()) {
          need += sizeof(vfio_region_info_cap_sparse_mmap) +
                  r.sparse.size() * sizeof(vfio_region_sparse_mmap_area);
        }
        if (r.msix_mappable) need += sizeof(vfio_info_cap_header);
        const uint32_t argsz = info->argsz;
        info->flags = r.flags | (need > sizeof(vfio_region_info) ? VFIO_REGION_INFO_FLAG_CAPS : 0);
        info->size = r.size;
        info->offset = static_cast<uint64_t>(info->index) << FakeVfioPci::kRegionShift;
        info->cap_offset = 0;
        if (argsz < need) {
          info->argsz = static_cast<uint32_t>(need);
          return 0;
        }
        auto* base = reinterpret_cast<uint8_t*>(info);
        uint32_t off = sizeof(vfio_region_info);
        vfio_info_cap_header* prev = nullptr;
        if (!r.sparse.empty()) {
          auto* cap = reinterpret_cast<vfio_region_info_cap_sparse_mmap*>(base + off);
          cap->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
          cap->header.version = 1;
          cap->header.next = 0;
          cap->nr_areas = static_cast<uint32_t>(r.sparse.size());
          for (size_t i = 0; i < r.sparse.size(); ++i) {
            cap->areas[i] = {r.sparse[i].first, r.sparse[i].second};
          }
          info->cap_offset = off;
          prev = &cap->header;
          off += static_cast<uint32_t>(sizeof(*cap) + r.sparse.size() * sizeof(cap->areas[0]));
        }
        if (r.msix_mappable) {
          auto* hdr = reinterpret_cast<vfio_info_cap_header*>(base + off);
          hdr->id = VFIO_REGION_INFO_CAP_MSIX_MAPPABLE;
          hdr->version = 1;
          hdr->next = 0;
          if (prev) prev->next = off; else info->cap_offset = off;
        }
        return 0;
      }
      case VFIO_DEVICE_GET_IRQ_INFO: {
        auto* info = static_cast<vfio_irq_info*>(arg);
        if (info->index >= d->irq_counts.size()) return Fail(EINVAL);
        info->count = d->irq_counts[info->index];
        info->flags = VFIO_IRQ_INFO_EVENTFD |
                      (info->index == VFIO_PCI_INTX_IRQ_INDEX ? VFIO_IRQ_INFO_MASKABLE |
                                                                 VFIO_IRQ_INFO_AUTOMASKED
                                                           : VFIO_IRQ_INFO_NORESIZE);
        return 0;
      }
      case VFIO_DEVICE_SET_IRQS: {
        auto* set = static_cast<vfio_irq_set*>(arg);
        if (set->index >= d->irq_counts.size()) return Fail(EINVAL);
        if (d->failing_irq_indexes.count(set->index)) return Fail(EINVAL);
        const uint32_t count = d->irq_counts[set->index];
        if (set->flags & VFIO_IRQ_SET_DATA_NONE) {
          if (set->count != 0) return Fail(EINVAL);
          std::erase_if(d->irq_eventfds, [&](auto& e) { return e.first.first == set->index; });
          return 0;
        }
        if (!(set->flags & VFIO_IRQ_SET_DATA_EVENTFD)) return Fail(EINVAL);
        if (set->start >= count || set->count > count - set->start) return Fail(EINVAL);
        if (set->argsz < sizeof(*set) + set->count * sizeof(int32_t)) return Fail(EINVAL);
        const auto* efds = reinterpret_cast<const int32_t*>(set->data);
        for (uint32_t i = 0; i < set->count; ++i) {
          if (set->flags & VFIO_IRQ_SET_ACTION_UNMASK) {
            d->unmask_eventfds[set->index] = efds[i];
          } else if (efds[i] < 0) {
            d->irq_eventfds.erase({set->index, set->start + i});
          } else {
            d->irq_eventfds[{set->index, set->start + i}] = efds[i];
          }
        }
        return 0;
      }
      case VFIO_DEVICE_RESET:
        if (!d->resettable) return Fail(ENOTTY);
        ++d->resets;
        return 0;
      case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: {
        auto* info = static_cast<vfio_pci_hot_reset_info*>(arg);
        if (!d->hot_reset_supported) return Fail(ENODEV);
        const bool cdev = d->bound_iommufd >= 0;
        const size_t n = cdev ? 1 : d->hot_reset_groups.size();
        const uint32_t argsz = info->argsz;
        info->flags = cdev ? VFIO_PCI_HOT_RESET_FLAG_DEV_ID |
                                 (d->hot_reset_owned ? VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED : 0)
                           : 0;
        info->count = static_cast<uint32_t>(n);
        if (argsz < sizeof(*info) + n * sizeof(vfio_pci_dependent_device)) return Fail(ENOSPC);
        for (size_t i = 0; i < n; ++i) {
          info->devices[i] = {};
          if (cdev) {
            info->devices[i].devid = d->hot_reset_owned ? d->devid : VFIO_PCI_DEVID_NOT_OWNED;
          } else {
            info->devices[i].group_id = d->hot_reset_groups[i];
          }
        }
        return 0;
      }
      case VFIO_DEVICE_PCI_HOT_RESET: {
        auto* r = static_cast<vfio_pci_hot_reset*>(arg);
        if (!d->hot_reset_supported) return Fail(ENODEV);
        if (d->bound_iommufd >= 0) {
          // cdev: an empty group list, ownership checked through iommufd.
          if (r->count != 0 || !d->hot_reset_owned) return Fail(EPERM);
        } else {
          std::set<uint32_t> proven;
          const auto* fds = reinterpret_cast<const int32_t*>(r->group_fds);
          for (uint32_t i = 0; i < r->count; ++i) {
            if (!group_of_.count(fds[i])) return Fail(EINVAL);
            proven.insert(static_cast<uint32_t>(group_of_.at(fds[i])));
          }
          for (uint32_t g : d->hot_reset_groups) {
            if (!proven.count(g)) return Fail(EPERM);
          }
        }
        ++d->hot_resets;
        return 0;
      }
    }
    return Fail(ENOTTY);
  }

  int KvmVmIoctl(unsigned long request, void* arg) {
    if (request != KVM_CREATE_DEVICE) return Fail(ENOTTY);
    auto* c = static_cast<kvm_create_device*>(arg);
    if (c->type != KVM_DEV_TYPE_VFIO) return Fail(ENODEV);
    ++kvm_vfio_devices;
    c->fd = static_cast<uint32_t>(AddFd(Kind::kKvmVfio));
    return 0;
  }

  int KvmVfioIoctl(unsigned long request, void* arg) {
    if (request != KVM_SET_DEVICE_ATTR) return Fail(ENOTTY);
    auto* a = static_cast<kvm_device_attr*>(arg);
    if (a->group != KVM_DEV_VFIO_FILE) return Fail(ENXIO);
    const int32_t file = *reinterpret_cast<const int32_t*>(a->addr);
    auto it = fds_.find(file);
    if (it == fds_.end()) return Fail(EBADF);
    if (it->second != Kind::kVfioDevice && it->second != Kind::kGroup) return Fail(EINVAL);
    if (a->attr == KVM_DEV_VFIO_FILE_ADD) {
      if (!kvm_vfio_files.insert(file).second) return Fail(EEXIST);
      events.push_back("kvm-vfio add " + std::to_string(file));
      return 0;
    }
    if (a->attr == KVM_DEV_VFIO_FILE_DEL) {
      if (kvm_vfio_files.erase(file) == 0) return Fail(ENOENT);
      events.push_back("kvm-vfio del " + std::to_string(file));
      return 0;
    }
    return Fail(ENXIO);
  }

  std::map<void*, size_t> mmaps_;  // live MmapShared mappings
  std::map<int, FakeVfioPci*> device_of_;
  std::map<int, int> group_of_;  // group fd -> group id
  int next_fd_ = 100;
  uint32_t next_id_ = 1;
  uint32_t next_devid_ = 42;
  std::map<int, Kind> fds_;
  std::set<uint32_t> ioas_;
};

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_FAKE_KERNEL_H_
