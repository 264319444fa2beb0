// passage-bench (issue 14, first slice): guest-RAM-sized DMA mapping through
// iommufd (IOAS_MAP of a user VA, IOAS_MAP_FILE of a memfd) against the type1
// container and a bare populate, and device set-up by cdev against the legacy
// group path. It measures passage's own iommu/ and devices/vfio/ classes, so a
// number here is what passage pays. See README.md "passage-bench".

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "devices/vfio/vfio_device.h"
#include "iommu/iommufd.h"
#include "iommu/legacy_container.h"
#include "memory/unique_fd.h"
#include "tests/bench/bench_core.h"
#include "tests/bench/timed_sys.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace passage::bench {
namespace {

// Above the 4 GiB hole and every reserved region the rig's vIOMMU reports.
constexpr uint64_t kIova = 1ull << 32;

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A field of a "name value" file (/proc/vmstat) or "Name: value kB"
// (/proc/meminfo).
int64_t Field(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    std::vector<absl::string_view> w =
        absl::StrSplit(line, absl::ByAnyChar(" :"), absl::SkipEmpty());
    int64_t v = 0;
    if (w.size() >= 2 && w[0] == name && absl::SimpleAtoi(w[1], &v)) return v;
  }
  return 0;
}

// Pages pinned with FOLL_PIN system-wide (iommufd and type1 both pin so).
// /proc/vmstat lags by the per-CPU deltas not yet folded in (a few pages
// were seen missing in the rig); writing vm.stat_refresh folds them first.
int64_t Pinned() {
  std::ofstream("/proc/sys/vm/stat_refresh") << "1\n";
  const std::string v = ReadText("/proc/vmstat");
  return Field(v, "nr_foll_pin_acquired") - Field(v, "nr_foll_pin_released");
}

// kB of memory in huge pages of any kind (shmem THP, anonymous THP, hugetlb).
int64_t HugeKb() {
  const std::string m = ReadText("/proc/meminfo");
  return Field(m, "ShmemHugePages") + Field(m, "AnonHugePages") +
         (Field(m, "HugePages_Total") - Field(m, "HugePages_Free")) * Field(m, "Hugepagesize");
}

// The bracketed word of a sysfs choice file ("always within_size [advise]
// never").
std::string Choice(const std::string& path) {
  const std::string t = ReadText(path);
  const size_t a = t.find('['), b = t.find(']');
  return a == std::string::npos || b == std::string::npos ? "" : t.substr(a + 1, b - a - 1);
}

// A fresh memfd of SIZE bytes of page kind PAGE, mapped shared and not yet
// populated: what passage's GuestMemory gives a region.
struct Buffer {
  UniqueFd fd;
  uint8_t* addr = nullptr;
  uint64_t size = 0;
  ~Buffer() {
    if (addr != nullptr) munmap(addr, size);
  }
};

absl::StatusOr<std::unique_ptr<Buffer>> MakeBuffer(const std::string& page, uint64_t size) {
  auto b = std::make_unique<Buffer>();
  b->size = size;
  unsigned flags = MFD_CLOEXEC;
  if (page == "hugetlb") flags |= MFD_HUGETLB | MFD_HUGE_2MB;
  b->fd.reset(memfd_create("passage-bench", flags));
  if (!b->fd.valid()) return ErrnoError(absl::StrCat("memfd_create (", page, ")"));
  if (ftruncate(b->fd.get(), size) != 0) return ErrnoError(absl::StrCat("ftruncate ", size));
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoError(absl::StrCat("mmap ", size));
  b->addr = static_cast<uint8_t*>(p);
  if (page != "hugetlb" && madvise(p, size, page == "thp" ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0) {
    return ErrnoError("madvise (THP)");
  }
  return b;
}

struct Context {
  Flags flags;
  nlohmann::json common;  // machine, kernel, repetitions: copied into every record
  nlohmann::json records = nlohmann::json::array();
  nlohmann::json skipped = nlohmann::json::array();
  int failures = 0;
  TimedSys sys{&Sys::Real()};  // every DMA space and device of the run goes through it

  void Skip(const std::string& what, const std::string& reason) {
    skipped.push_back({{"what", what}, {"reason", reason}});
    std::cerr << "passage-bench: skipped " << what << ": " << reason << "\n";
  }
  void Fail(const std::string& what, const absl::Status& s) {
    ++failures;
    Skip(what, absl::StrCat("failed: ", s.message()));
  }
};

VfioDevice::Options DeviceOptions(const DeviceArg& d) {
  VfioDevice::Options o;
  o.id = d.text;
  o.sysfs_path = d.sysfs_path;
  o.fd = d.fd >= 0 ? dup(d.fd) : -1;  // VfioDevice adopts it: one copy per open
  return o;
}

// A DMA space with the device attached to it. Members go in reverse: the
// device before its space, as in passage.
template <typename Space>
struct Held {
  std::unique_ptr<Space> space;
  std::unique_ptr<VfioDevice> device;
};

// SPACE (just created) with DEV opened on it by OPEN (the cdev or the group
// sequence of devices/vfio/).
template <typename Space>
absl::StatusOr<std::unique_ptr<Held<Space>>> Attach(
    absl::StatusOr<std::unique_ptr<Space>> space, const DeviceArg& dev,
    absl::StatusOr<std::unique_ptr<VfioDevice>> (*open)(const VfioDevice::Options&, Space&, Sys*),
    Sys* sys = &Sys::Real()) {
  if (!space.ok()) return space.status();
  auto held = std::make_unique<Held<Space>>();
  held->space = std::move(*space);
  absl::StatusOr<std::unique_ptr<VfioDevice>> device = open(DeviceOptions(dev), *held->space, sys);
  if (!device.ok()) return device.status();
  held->device = std::move(*device);
  return held;
}

// One map/unmap sample through SPACE (null: the bare populate).
struct MapSample {
  double map_s, unmap_s;
  double map_ioctl_s;  // of map_s, the time inside the kernel's map ioctl(s)
  int64_t pinned_after_map, pinned_after_unmap, huge_kb;
};

// SYS: the TimedSys SPACE's ioctls go through (unused for the populate).
absl::StatusOr<MapSample> SampleMap(const std::string& method, const std::string& page,
                                    uint64_t size, DmaSpace* space, TimedSys& sys) {
  absl::StatusOr<std::unique_ptr<Buffer>> buf = MakeBuffer(page, size);
  if (!buf.ok()) return buf.status();
  const int64_t pins0 = Pinned(), huge0 = HugeKb();
  MapSample s{};
  sys.Take();
  double t0 = Now();
  if (space == nullptr) {
    if (madvise((*buf)->addr, size, MADV_POPULATE_WRITE) != 0)
      return ErrnoError("MADV_POPULATE_WRITE");
  } else {
    DmaMapping m{kIova, size, (*buf)->addr, -1, 0};
    if (method == kIommufdMapFile) m.fd = (*buf)->fd.get();
    if (absl::Status st = space->Map(m); !st.ok()) return st;
    if (method == kIommufdMapFile && !static_cast<Iommufd*>(space)->used_map_file()) {
      space->Unmap(kIova, size).IgnoreError();
      return absl::UnimplementedError("the kernel has no IOMMU_IOAS_MAP_FILE (IOAS_MAP was used)");
    }
  }
  s.map_s = Now() - t0;
  // The populate is the kernel's alone (one madvise).
  s.map_ioctl_s = space == nullptr ? s.map_s : 0;
  std::map<std::string, TimedSys::Step> steps = sys.Take();
  for (const char* ioctl : {"IOMMU_IOAS_MAP", "IOMMU_IOAS_MAP_FILE", "VFIO_IOMMU_MAP_DMA"}) {
    s.map_ioctl_s += steps[ioctl].seconds;
  }
  s.pinned_after_map = Pinned() - pins0;
  s.huge_kb = HugeKb() - huge0;
  t0 = Now();
  if (space == nullptr) {
    buf->reset();  // munmap and close: the pages go back
  } else if (absl::Status st = space->Unmap(kIova, size); !st.ok()) {
    return st;
  }
  s.unmap_s = Now() - t0;
  s.pinned_after_unmap = Pinned() - pins0;
  return s;
}

void MeasureMap(Context& c, const std::string& method, DmaSpace* space,
                const std::vector<uint64_t>& sizes, const std::vector<std::string>& pages) {
  for (const std::string& page : pages) {
    for (uint64_t size : sizes) {
      const std::string what = absl::StrCat("map ", method, " ", page, " ", size >> 20, " MiB");
      if (page == "hugetlb") {
        const std::string m = ReadText("/proc/meminfo");
        const int64_t free_kb = Field(m, "HugePages_Free") * Field(m, "Hugepagesize");
        if (free_kb * 1024 < static_cast<int64_t>(size)) {
          c.Skip(what, absl::StrCat("only ", free_kb >> 10,
                                    " MiB of hugetlb pages free (reserve more: "
                                    "vm.nr_hugepages)"));
          continue;
        }
      }
      std::vector<double> map_s, unmap_s, map_ioctl_s, after_map, after_unmap, huge;
      absl::Status error;
      for (int r = 0; r < c.flags.repetitions && error.ok(); ++r) {
        absl::StatusOr<MapSample> s = SampleMap(method, page, size, space, c.sys);
        if (!s.ok()) {
          error = s.status();
          break;
        }
        map_s.push_back(s->map_s);
        map_ioctl_s.push_back(s->map_ioctl_s);
        unmap_s.push_back(s->unmap_s);
        after_map.push_back(s->pinned_after_map);
        after_unmap.push_back(s->pinned_after_unmap);
        huge.push_back(s->huge_kb);
      }
      if (!error.ok()) {
        if (absl::IsUnimplemented(error)) {
          c.Skip(what, std::string(error.message()));
        } else {
          c.Fail(what, error);
        }
        continue;
      }
      nlohmann::json r = c.common;
      r.update({{"kind", "map"},
                {"method", method},
                {"page", page},
                {"size", size},
                {"map_s", SamplesJson(map_s)},
                {"map_ioctl_s", SamplesJson(map_ioctl_s)},
                {"unmap_s", SamplesJson(unmap_s)},
                {"pinned_after_map", SamplesJson(after_map)},
                {"pinned_after_unmap", SamplesJson(after_unmap)},
                {"huge_kb_after_map", SamplesJson(huge)}});
      c.records.push_back(r);
    }
  }
}

void RunMap(Context& c, const std::vector<uint64_t>& sizes) {
  std::vector<std::string> pages = {"4k"};
  const std::string shmem = Choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
  if (shmem.empty() || shmem == "never" || shmem == "deny") {
    c.Skip("map thp", absl::StrCat("shmem THP is off (transparent_hugepage/shmem_enabled: ",
                                   shmem.empty() ? "absent" : shmem, ")"));
  } else {
    pages.push_back("thp");
  }
  const std::string m = ReadText("/proc/meminfo");
  if (Field(m, "Hugepagesize") != 2048) {
    c.Skip("map hugetlb", "no 2 MiB hugetlb pages on this kernel");
  } else if (Field(m, "HugePages_Free") == 0) {
    c.Skip("map hugetlb", "no hugetlb pages reserved (vm.nr_hugepages is 0)");
  } else {
    pages.push_back("hugetlb");
  }
  MeasureMap(c, kPopulate, nullptr, sizes, pages);
  if (c.flags.devices.empty()) {
    c.Skip("map iommufd, type1",
           "no --device (an IOAS pins nothing until a device is attached, "
           "and VFIO_SET_IOMMU needs a group)");
    return;
  }
  const DeviceArg& dev = c.flags.devices.front();
  if (auto io = Attach(Iommufd::Create({"bench", -1, true}, &c.sys), dev,
                       &VfioDevice::OpenWithIommufd, &c.sys);
      !io.ok()) {
    c.Fail("map iommufd", io.status());
  } else {
    MeasureMap(c, kIommufdMap, (*io)->space.get(), sizes, pages);
    MeasureMap(c, kIommufdMapFile, (*io)->space.get(), sizes, pages);
  }
  if (dev.sysfs_path.empty()) {
    c.Skip("map type1",
           absl::StrCat(dev.text, ": an fd names a cdev; the container needs its group"));
    return;
  }
  if (auto ct = Attach(LegacyContainer::Create(-1, &c.sys), dev, &VfioDevice::OpenWithContainer,
                       &c.sys);
      !ct.ok()) {
    c.Fail("map type1", ct.status());
  } else {
    MeasureMap(c, kType1, (*ct)->space.get(), sizes, pages);
  }
}

// One set-up + teardown sample: OPEN returns the opened objects, whose
// destruction is the teardown. SYS is the TimedSys OPEN goes through: its
// steps are taken for each half.
struct SetupSample {
  double setup_s = 0, teardown_s = 0;
  std::map<std::string, TimedSys::Step> setup_steps, teardown_steps;
};

absl::StatusOr<SetupSample> SampleSetup(
    const std::function<absl::StatusOr<std::shared_ptr<void>>()>& open, TimedSys& sys) {
  SetupSample s;
  sys.Take();
  const double t0 = Now();
  absl::StatusOr<std::shared_ptr<void>> held = open();
  if (!held.ok()) return held.status();
  const double t1 = Now();
  s.setup_steps = sys.Take();
  held->reset();
  s.teardown_s = Now() - t1;
  s.setup_s = t1 - t0;
  s.teardown_steps = sys.Take();
  return s;
}

// Per step: the median over the samples of its time in each (a step a
// sample did not make counts 0 there), and its calls per sample; plus
// "passage" (the rest of the wall time: passage's own work between calls).
nlohmann::json StepsJson(const std::vector<std::map<std::string, TimedSys::Step>>& samples,
                         const std::vector<double>& totals) {
  std::set<std::string> keys;
  for (const auto& m : samples) {
    for (const auto& [k, v] : m) keys.insert(k);
  }
  nlohmann::json out = nlohmann::json::object();
  std::vector<double> rest(totals);
  for (const std::string& k : keys) {
    std::vector<double> t;
    int calls = 0;
    for (size_t i = 0; i < samples.size(); ++i) {
      auto it = samples[i].find(k);
      const double v = it == samples[i].end() ? 0 : it->second.seconds;
      t.push_back(v);
      rest[i] -= v;
      if (it != samples[i].end()) calls = std::max(calls, it->second.calls);
    }
    out[k] = {{"median_s", Summarize(t).median}, {"calls", calls}};
  }
  out["passage"] = {{"median_s", Summarize(rest).median}, {"calls", 0}};
  return out;
}

void RunSetup(Context& c) {
  if (c.flags.devices.empty()) {
    c.Skip("setup", "no --device");
    return;
  }
  for (const DeviceArg& dev : c.flags.devices) {
    TimedSys& sys = c.sys;
    // cdev: /dev/iommu + IOAS, then the cdev opened, bound and attached.
    auto cdev = [&]() -> absl::StatusOr<std::shared_ptr<void>> {
      return Attach(Iommufd::Create({"bench", -1, true}, &sys), dev, &VfioDevice::OpenWithIommufd,
                    &sys);
    };
    // legacy: container, group (set-container, set-iommu), device fd.
    auto legacy = [&]() -> absl::StatusOr<std::shared_ptr<void>> {
      return Attach(LegacyContainer::Create(-1, &sys), dev, &VfioDevice::OpenWithContainer, &sys);
    };
    struct Path {
      const char* method;
      std::function<absl::StatusOr<std::shared_ptr<void>>()> open;
      std::vector<double> setup, teardown;
      std::vector<std::map<std::string, TimedSys::Step>> setup_steps, teardown_steps;
      absl::Status error;
    } paths[] = {{kCdev, cdev, {}, {}, {}, {}, {}}, {kLegacy, legacy, {}, {}, {}, {}, {}}};
    if (dev.sysfs_path.empty()) {
      paths[1].error =
          absl::UnimplementedError("an fd names a cdev; the legacy path needs its group");
    }
    // Round -1 is a warm-up, not recorded: the first run of a code path
    // pays for its first touch (under TCG, translating every new block of
    // L1's code; on hardware, faulting in the binary), and the cdev path
    // ran first, so it alone paid it (the rig's 2-sample medians showed
    // 5.6 ms of passage's own time for cdev against 1.1 ms for legacy).
    for (int r = -1; r < c.flags.repetitions; ++r) {
      for (Path& p : paths) {  // alternating, so drift hits both alike
        if (!p.error.ok()) continue;
        absl::StatusOr<SetupSample> s = SampleSetup(p.open, sys);
        if (!s.ok()) {
          p.error = s.status();
          continue;
        }
        if (r < 0) continue;
        p.setup.push_back(s->setup_s);
        p.teardown.push_back(s->teardown_s);
        p.setup_steps.push_back(std::move(s->setup_steps));
        p.teardown_steps.push_back(std::move(s->teardown_steps));
      }
    }
    for (Path& p : paths) {
      const std::string what = absl::StrCat("setup ", p.method, " ", dev.text);
      if (absl::IsUnimplemented(p.error)) {
        c.Skip(what, std::string(p.error.message()));
      } else if (!p.error.ok()) {
        c.Fail(what, p.error);
      } else {
        nlohmann::json r = c.common;
        r.update({{"kind", "setup"},
                  {"method", p.method},
                  {"device", dev.text},
                  {"setup_s", SamplesJson(p.setup)},
                  {"teardown_s", SamplesJson(p.teardown)},
                  {"warmup_rounds", 1},
                  {"setup_steps", StepsJson(p.setup_steps, p.setup)},
                  {"teardown_steps", StepsJson(p.teardown_steps, p.teardown)}});
        c.records.push_back(r);
      }
    }
  }
}

nlohmann::json Machine() {
  utsname u{};
  uname(&u);
  std::string model;
  for (absl::string_view line : absl::StrSplit(ReadText("/proc/cpuinfo"), '\n')) {
    if (absl::StartsWith(line, "model name")) {
      model = std::string(line.substr(line.find(':') + 2));
      break;
    }
  }
  return {{"machine",
           {{"arch", u.machine},
            {"cpu", model},
            {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
            {"mem_total_kb", Field(ReadText("/proc/meminfo"), "MemTotal")},
            {"shmem_thp", Choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled")}}},
          {"kernel", {{"release", u.release}, {"version", u.version}}}};
}

int Main(int argc, char** argv) {
  absl::StatusOr<Flags> flags = ParseFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (absl::IsCancelled(flags.status())) {
    std::cout << flags.status().message();
    return 0;
  }
  if (!flags.ok()) {
    std::cerr << "passage-bench: " << flags.status().message() << "\n";
    return 2;
  }
  Context c;
  c.flags = *flags;
  if (c.flags.max_size == 0) {
    c.flags.max_size =
        DefaultMaxSize(Field(ReadText("/proc/meminfo"), "MemAvailable") * 1024, c.flags.min_size);
  }
  c.common = Machine();
  c.common["repetitions"] = c.flags.repetitions;
  const std::vector<uint64_t> sizes = Sizes(c.flags.min_size, c.flags.max_size);
  if (c.flags.run_setup) RunSetup(c);
  if (c.flags.run_map) RunMap(c, sizes);
  nlohmann::json report = {{"tool", "passage-bench"},
                           {"format", 1},
                           {"sizes", sizes},
                           {"records", c.records},
                           {"skipped", c.skipped}};
  report.update(c.common);
  report["ratios"] = Ratios(c.records);
  report["targets"] = Targets(report["ratios"]);
  report["failures"] = c.failures;
  std::cout << Table(report);
  if (!c.flags.json_path.empty()) {
    std::ofstream out(c.flags.json_path);
    out << report.dump(1) << "\n";
    if (!out.good()) {
      std::cerr << "passage-bench: --json: cannot write " << c.flags.json_path << "\n";
      return 1;
    }
  }
  return c.failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace passage::bench

int main(int argc, char** argv) { return passage::bench::Main(argc, argv); }
