// Fault injection (issue 15): every fallible call passage makes while it
// sets up passthrough, from the command line (Passthrough::Create then
// PciPlatform::Create, as Vm::CreatePci does) and by hotplug (object-add,
// device_add through HotplugController, as QMP does), fails in turn. Each
// failure must give one line naming the object or device, and leave
// nothing of that step in the fakes: no fd, IOAS, mapping (pinned page),
// attachment, KVM-VFIO file, mmap, memslot, GSI or irqfd. Afterwards the
// whole VM goes and the fakes must be empty.
//
// The steps are not typed in: each scenario runs once without a fault when
// the tests are listed, and every call the fakes saw becomes a test named
// for its scenario, phase and call (`Hotplug_edu0_attach_iommufd_pt`).
// A new call in passage's set-up thus becomes a new test by itself.
#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "tests/unit/fake_device_memory.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"
#include "vmm/passed_fds.h"
#include "vmm/passthrough.h"
#include "vmm/pci_platform.h"
#include "vmm/vm_hotplug.h"

namespace passage {
namespace {

using testing::FakeInterruptController;
using testing::FakeKernel;
using testing::FakeMapper;
using testing::FakeVfioPci;

// Calls whose failure passage survives by design, and why. A fault in one
// of these must not fail the scenario; a fault anywhere else must.
const std::map<std::string, std::string>& Tolerated() {
  static const auto* const kTolerated = new std::map<std::string, std::string>{
      {"mmap_bar", "the BAR is trapped instead of mapped (one warning line)"},
  };
  return *kTolerated;
}

struct Phase {
  std::string name;   // for test names: "i0", "edu0", "devices"
  std::string names;  // the error must contain this
  std::function<absl::Status()> run;
};

// One VM's passthrough side over the fakes, with the scenario's phases.
class Machine {
 public:
  enum class Scenario { kSetupIommufd, kSetupLegacy, kHotplug };

  explicit Machine(Scenario scenario) : scenario_(scenario) {
    for (FakeVfioPci* d : {&edu_, &nvme_}) {
      d->regions[VFIO_PCI_CONFIG_REGION_INDEX] = {
          VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, 256, {}, false};
      d->regions[VFIO_PCI_BAR0_REGION_INDEX] = {
          VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP,
          0x100000, {}, false};
      d->config[PCI_VENDOR_ID] = 0x34;
      d->config[PCI_VENDOR_ID + 1] = 0x12;
      d->config[PCI_DEVICE_ID] = 0xe8;
      d->config[PCI_DEVICE_ID + 1] = 0x11;
      d->config[PCI_INTERRUPT_PIN] = 1;  // INTx: an irqfd to wire
      d->irq_counts[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    }
    kernel_.AddVfioPciSysfs("0000:00:03.0", "vfio0", "3", &edu_);
    kernel_.AddVfioPciSysfs("0000:00:04.0", "vfio1", "4", &nvme_);
    irq_.faults = &kernel_.faults;
    mapper_.faults = &kernel_.faults;
    memory_ = *GuestMemory::Create({64 * kMiB, false});
    vm_fd_ = kernel_.AddFd(FakeKernel::Kind::kKvmVm);
  }
  ~Machine() { TearDown(); }

  // The VM goes as Vm does it: hotplug, PCI side (devices), passthrough.
  void TearDown() {
    hotplug_.reset();
    pci_.reset();
    passthrough_.reset();
  }

  std::vector<Phase> Phases() {
    switch (scenario_) {
      case Scenario::kSetupIommufd:
        return {{"i0", "i0", [this] { return CreatePassthrough({"iommufd,id=i0"}); }},
                {"edu0", "edu0",
                 [this] { return CreatePci({"vfio-pci,id=edu0,host=00:03.0,iommufd=i0"}); }}};
      case Scenario::kSetupLegacy:
        return {{"objects", "", [this] { return CreatePassthrough({}); }},
                {"nvme0", "nvme0", [this] { return CreatePci({"vfio-pci,id=nvme0,host=00:04.0"}); }}};
      case Scenario::kHotplug:
        return {{"platform", "",
                 [this] {
                   if (absl::Status s = CreatePci({}); !s.ok()) return s;
                   return CreateHotplug();
                 }},
                {"i0", "i0", [this] { return hotplug_->ObjectAdd(*ParseObjectConfig("iommufd,id=i0"), fds_); }},
                {"edu0", "edu0",
                 [this] {
                   return hotplug_->DeviceAdd(*ParseDeviceConfig("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_);
                 }},
                {"nvme0", "nvme0",
                 [this] { return hotplug_->DeviceAdd(*ParseDeviceConfig("vfio-pci,id=nvme0,host=00:04.0"), fds_); }}};
    }
    return {};
  }

  // What the fakes hold, one item a line. KVM's VFIO pseudo device is made
  // with the first device and kept for the VM's life (vmm/passthrough.h),
  // so it is not counted here; Empty() checks it went at teardown.
  std::string Held() {
    std::string out;
    for (absl::string_view line : absl::StrSplit(kernel_.Describe(), '\n', absl::SkipEmpty())) {
      if (!absl::StartsWith(line, "fd ") || !absl::EndsWith(line, " kvm-vfio")) {
        absl::StrAppend(&out, line, "\n");
      }
    }
    absl::StrAppend(&out, "pinned pages ", kernel_.pinned_pages(), "\n");
    absl::StrAppend(&out, "memslots ", mapper_.size(), "\n");
    absl::StrAppend(&out, "gsis ", irq_.allocated.size(), ", irqfds ", irq_.irqfds.size(), "\n");
    return out;
  }
  FakeKernel& kernel() { return kernel_; }
  FakeMapper& mapper() { return mapper_; }
  FakeInterruptController& irq() { return irq_; }
  size_t vm_fds() const { return 1; }  // the VM fd: the test's, not passage's

 private:
  absl::Status CreatePassthrough(std::vector<const char*> objects) {
    std::vector<ObjectConfig> configs;
    for (const char* o : objects) configs.push_back(*ParseObjectConfig(o));
    absl::StatusOr<std::unique_ptr<Passthrough>> p =
        Passthrough::Create(configs, *memory_, loop_, vm_fd_, &kernel_);
    if (!p.ok()) return p.status();
    passthrough_ = std::move(*p);
    return absl::OkStatus();
  }
  absl::Status CreatePci(std::vector<const char*> devices) {
    VmConfig config;
    config.ram_size = 64 * kMiB;
    for (const char* d : devices) config.device_configs.push_back(*ParseDeviceConfig(d));
    absl::StatusOr<std::unique_ptr<PciPlatform>> pci = PciPlatform::Create(
        config, {memory_.get(), &pio_, &mmio_, &irq_, &mapper_, passthrough_.get(), &fds_});
    if (!pci.ok()) return pci.status();
    pci_ = std::move(*pci);
    return absl::OkStatus();
  }
  absl::Status CreateHotplug() {
    HotplugController::Deps deps;
    deps.pci = pci_.get();
    deps.loop = &loop_;
    deps.passthrough = [this](bool create) -> absl::StatusOr<Passthrough*> {
      if (passthrough_ == nullptr && create) {
        auto p = Passthrough::Create({}, *memory_, loop_, vm_fd_, &kernel_);
        if (!p.ok()) return p.status();
        passthrough_ = std::move(*p);
        pci_->set_passthrough(passthrough_.get());
      }
      return passthrough_.get();
    };
    deps.events = [] { return nullptr; };
    deps.signaller = [] { return nullptr; };
    absl::StatusOr<std::unique_ptr<HotplugController>> h = HotplugController::Create(std::move(deps));
    if (!h.ok()) return h.status();
    hotplug_ = std::move(*h);
    return absl::OkStatus();
  }

  const Scenario scenario_;
  FakeKernel kernel_;
  FakeVfioPci edu_, nvme_;
  FakeInterruptController irq_;
  FakeMapper mapper_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  std::unique_ptr<GuestMemory> memory_;
  int vm_fd_ = -1;
  PassedFds fds_;
  EventLoop loop_;  // outlives what uses it
  std::unique_ptr<Passthrough> passthrough_;
  std::unique_ptr<PciPlatform> pci_;
  std::unique_ptr<HotplugController> hotplug_;
};

struct Step {
  Machine::Scenario scenario;
  std::string name;  // the test's
  std::string call;  // FaultPlan's name for it
  int nth;           // among the scenario's calls of that name
  size_t phase;
};

void PrintTo(const Step& s, std::ostream* os) { *os << s.name; }

const char* ScenarioName(Machine::Scenario s) {
  switch (s) {
    case Machine::Scenario::kSetupIommufd: return "SetupIommufd";
    case Machine::Scenario::kSetupLegacy: return "SetupLegacy";
    case Machine::Scenario::kHotplug: return "Hotplug";
  }
  return "?";
}

// "VFIO_DEVICE_ATTACH_IOMMUFD_PT" -> "attach_iommufd_pt".
std::string ShortCall(std::string call) {
  for (const char* prefix : {"VFIO_DEVICE_", "IOMMU_"}) {
    if (call.rfind(prefix, 0) == 0) call = call.substr(std::strlen(prefix));
  }
  for (char& c : call) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return call;
}

// Every call of each scenario's fault-free run, named.
std::vector<Step> AllSteps() {
  std::vector<Step> steps;
  for (Machine::Scenario scenario :
       {Machine::Scenario::kSetupIommufd, Machine::Scenario::kSetupLegacy, Machine::Scenario::kHotplug}) {
    Machine m(scenario);
    std::vector<Phase> phases = m.Phases();
    std::vector<size_t> starts;
    for (const Phase& p : phases) {
      starts.push_back(m.kernel().faults.trace().size());
      if (absl::Status s = p.run(); !s.ok()) {
        // Shows as a failing test rather than as missing ones.
        steps.push_back({scenario, absl::StrCat(ScenarioName(scenario), "_baseline_fails"), "", -1, 0});
        break;
      }
    }
    const auto trace = m.kernel().faults.trace();
    std::map<std::string, int> seen;  // per phase and call, for the name
    for (size_t i = 0; i < trace.size(); ++i) {
      size_t phase = 0;
      while (phase + 1 < starts.size() && starts[phase + 1] <= i) ++phase;
      const std::string base = absl::StrCat(ScenarioName(scenario), "_", phases[phase].name, "_",
                                            ShortCall(trace[i].first));
      const int n = seen[base]++;
      steps.push_back({scenario, n == 0 ? base : absl::StrCat(base, "_", n + 1), trace[i].first,
                       trace[i].second, phase});
    }
  }
  return steps;
}

class FaultStep : public ::testing::TestWithParam<Step> {};

TEST_P(FaultStep, FailsWithOneLineAndLeavesNothing) {
  const Step& step = GetParam();
  ASSERT_GE(step.nth, 0) << "the scenario fails without a fault";
  Machine m(step.scenario);
  std::vector<Phase> phases = m.Phases();
  m.kernel().faults.FailNth(step.call, step.nth, EIO);
  bool failed = false;
  for (size_t i = 0; i < phases.size() && !failed; ++i) {
    const std::string before = m.Held();
    absl::Status s = phases[i].run();
    if (s.ok()) continue;
    failed = true;
    EXPECT_TRUE(m.kernel().faults.fired()) << "failed without the fault: " << s;
    EXPECT_EQ(i, step.phase) << s;
    const std::string msg(s.message());
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    EXPECT_NE(msg.find(phases[i].names), std::string::npos) << "does not name '" << phases[i].names << "': " << msg;
    // Everything the failed step made is gone; what came before stays.
    EXPECT_EQ(m.Held(), before) << "the failed step left this behind (before: above, after: below); error: " << msg;
  }
  EXPECT_TRUE(m.kernel().faults.fired()) << step.call << " #" << step.nth << " was never made";
  if (!failed) {
    EXPECT_TRUE(Tolerated().count(step.call))
        << step.call << " failed and the scenario went on; passage must report it or "
        << "Tolerated() must say why it may ignore it";
  } else {
    EXPECT_FALSE(Tolerated().count(step.call))
        << step.call << " is listed as tolerated but failed the scenario";
  }
  m.TearDown();
  EXPECT_EQ(m.kernel().open_fds(), m.vm_fds()) << m.kernel().Describe();
  EXPECT_EQ(m.kernel().pinned_pages(), 0u);
  EXPECT_EQ(m.kernel().live_mmaps(), 0u);
  EXPECT_TRUE(m.kernel().kvm_vfio_files.empty());
  EXPECT_EQ(m.mapper().size(), 0u);
  EXPECT_TRUE(m.irq().allocated.empty());
  EXPECT_TRUE(m.irq().irqfds.empty());
}

INSTANTIATE_TEST_SUITE_P(Faults, FaultStep, ::testing::ValuesIn(AllSteps()),
                         [](const ::testing::TestParamInfo<Step>& info) { return info.param.name; });

// The steps the issue names are among those walked, so a change that
// stopped making one (or renamed it in the fake) is seen.
TEST(FaultSteps, CoverTheNamedKinds) {
  std::set<std::string> calls;
  for (const Step& s : AllSteps()) calls.insert(s.call);
  for (const char* kind :
       {"open_iommu", "open_cdev", "open_container", "open_group", "IOMMU_IOAS_ALLOC", "IOMMU_IOAS_MAP_FILE",
        "VFIO_IOMMU_MAP_DMA", "VFIO_DEVICE_BIND_IOMMUFD", "VFIO_DEVICE_ATTACH_IOMMUFD_PT", "KVM_CREATE_DEVICE",
        "KVM_SET_DEVICE_ATTR", "VFIO_DEVICE_SET_IRQS", "mmap_bar", "memslot", "irqfd"}) {
    EXPECT_TRUE(calls.count(kind)) << kind << " is not among the steps";
  }
}

}  // namespace
}  // namespace passage
