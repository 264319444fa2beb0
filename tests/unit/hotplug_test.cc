// The hotplug state machine (vmm/vm_hotplug.h) over the PCI platform, the
// passthrough side and the fake kernel: device_add / device_del / the
// guest's eject / DEVICE_DELETED, object-add / object-del, and what each
// leaves behind (fds, mappings, BAR ranges, memslots, irqfds, bus entries).
#include "vmm/vm_hotplug.h"

#include <gtest/gtest.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <atomic>
#include <functional>
#include <cstring>
#include <span>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/unit/fake_device_memory.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/fake_kernel.h"
#include "tests/unit/pci_ports.h"

namespace passage {
namespace {

using testing::FakeInterruptController;
using testing::FakeMapper;
using testing::FakeKernel;
using testing::FakeVfioPci;

class FakeSignaller : public HotplugSignaller {
 public:
  void DeviceAdded(uint8_t slot) override {
    if (on_added) on_added();
    absl::MutexLock lock(&mu);
    calls.push_back(absl::StrCat("added ", slot));
  }
  std::function<void()> on_added;  // runs when the guest is told
  void EjectRequest(uint8_t slot) override {
    absl::MutexLock lock(&mu);
    calls.push_back(absl::StrCat("eject ", slot));
  }
  std::vector<std::string> Calls() {
    absl::MutexLock lock(&mu);
    return calls;
  }
  absl::Mutex mu;
  std::vector<std::string> calls;
};

class FakeSink : public EventSink {
 public:
  void Emit(std::string_view event, nlohmann::json data) override {
    absl::MutexLock lock(&mu);
    events.push_back({{"event", std::string(event)}, {"data", std::move(data)}});
  }
  // Waits until `n` events arrived; returns them.
  std::vector<nlohmann::json> WaitFor(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return events.size() >= n; };
    mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return events;
  }
  std::vector<nlohmann::json> Events() {
    absl::MutexLock lock(&mu);
    return events;
  }
  absl::Mutex mu;
  std::vector<nlohmann::json> events ABSL_GUARDED_BY(mu);
};

DeviceConfig Device(const char* spec) {
  absl::StatusOr<DeviceConfig> d = ParseDeviceConfig(spec);
  EXPECT_TRUE(d.ok()) << d.status();
  return *d;
}

ObjectConfig Object(const char* spec) {
  absl::StatusOr<ObjectConfig> o = ParseObjectConfig(spec);
  EXPECT_TRUE(o.ok()) << o.status();
  return *o;
}

class HotplugTest : public ::testing::Test {
 protected:
  void SetUp() override {
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
      d->config[PCI_INTERRUPT_PIN] = 1;  // INTx: an irqfd to wire and release
      d->irq_counts[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    }
    kernel_.AddVfioPciSysfs("0000:00:03.0", "vfio0", "3", &edu_);
    kernel_.AddVfioPciSysfs("0000:00:04.0", "vfio1", "4", &nvme_);
    memory_ = *GuestMemory::Create({64 * kMiB, false});
    vm_fd_ = kernel_.AddFd(FakeKernel::Kind::kKvmVm);
    VmConfig config;
    config.ram_size = 64 * kMiB;
    auto pci = PciPlatform::Create(config, {memory_.get(), &pio_, &mmio_, &irq_, &mapper_, nullptr, nullptr});
    ASSERT_TRUE(pci.ok()) << pci.status();
    pci_ = std::move(*pci);
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
    deps.events = [this] { return &sink_; };
    deps.signaller = [this]() -> HotplugSignaller* { return signaller_present_ ? &signaller_ : nullptr; };
    auto h = HotplugController::Create(std::move(deps));
    ASSERT_TRUE(h.ok()) << h.status();
    hotplug_ = std::move(*h);
  }
  void TearDown() override {
    hotplug_.reset();
    pci_.reset();
    passthrough_.reset();
    kernel_.Close(vm_fd_);
    EXPECT_EQ(kernel_.open_fds(), 0u) << "the fake kernel has an fd open after teardown";
  }
  uint32_t ConfigRead(uint8_t slot, uint8_t reg) { return PortConfigRead(pio_, slot, reg); }
  void ConfigWrite(uint8_t slot, uint8_t reg, uint32_t value) {
    const uint32_t address = 0x80000000u | slot << 11 | reg;
    uint8_t b[4];
    std::memcpy(b, &address, 4);
    pio_.Write(0xcf8, b);
    std::memcpy(b, &value, 4);
    pio_.Write(0xcfc, b);
  }
  // device_del `id`, the guest ejects its slot, DEVICE_DELETED arrives.
  void Unplug(const std::string& id, uint8_t slot) {
    const size_t before = sink_.Events().size();
    ASSERT_TRUE(hotplug_->DeviceDel(id).ok());
    hotplug_->OnGuestEject(slot);
    ASSERT_EQ(sink_.WaitFor(before + 1).size(), before + 1) << "no DEVICE_DELETED for " << id;
  }
  // What a device left behind: nothing, besides the VM's own fds.
  void ExpectNothingLeft(size_t fds) {
    EXPECT_EQ(kernel_.open_fds(), fds);
    EXPECT_EQ(mapper_.size(), 0u) << "a BAR memslot is left";
    EXPECT_TRUE(irq_.irqfds.empty()) << "an irqfd is left";
    EXPECT_TRUE(irq_.allocated.empty()) << "a GSI is left";
    EXPECT_TRUE(kernel_.kvm_vfio_files.empty()) << "KVM-VFIO still holds a file";
    EXPECT_EQ(edu_.bound_iommufd, -1);
    EXPECT_EQ(edu_.attached_pt, 0u);
    EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0xffffffffu) << "slot 1 still answers";
    EXPECT_EQ(pci_->Describe().size(), 1u) << "only the host bridge";
  }

  FakeKernel kernel_;
  FakeVfioPci edu_, nvme_;
  FakeInterruptController irq_;
  FakeMapper mapper_;
  FakeSignaller signaller_;
  bool signaller_present_ = true;
  FakeSink sink_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  std::unique_ptr<GuestMemory> memory_;
  int vm_fd_ = -1;
  // Declared so that it outlives what uses it (destroyed in TearDown first).
  EventLoop loop_;
  std::unique_ptr<Passthrough> passthrough_;
  std::unique_ptr<PciPlatform> pci_;
  std::unique_ptr<HotplugController> hotplug_;
  PassedFds fds_;
};

TEST_F(HotplugTest, AddAndRemoveOnAnIommufdObjectLeavesNothingAndAddsAgainTheSame) {
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  const auto ram = kernel_.mapped;
  ASSERT_EQ(ram.size(), 1u) << "object-add maps all guest RAM";
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_).ok());
  const size_t with_object = kernel_.open_fds() - 2;  // the device fd, KVM-VFIO's device
  EXPECT_EQ(signaller_.Calls(), std::vector<std::string>{"added 1"}) << "the guest is told last";
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0x11e81234u);
  const uint32_t bar0 = ConfigRead(1, PCI_BASE_ADDRESS_0);
  EXPECT_EQ(mapper_.size(), 1u) << "BAR 0's mmap is a memslot";
  EXPECT_EQ(irq_.irqfds.size(), 1u) << "INTx wired";
  EXPECT_NE(edu_.attached_pt, 0u);
  nlohmann::json q = hotplug_->QueryIommufd();
  ASSERT_EQ(q["objects"].size(), 1u) << q;
  EXPECT_EQ(q["objects"][0]["devices"], nlohmann::json::array({"edu0"})) << q;
  EXPECT_EQ(q["objects"][0]["mappings"].size(), 1u) << q;
  EXPECT_TRUE(q["legacy-container"].is_null());

  absl::Status refused = hotplug_->ObjectDel("i0");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("'i0' is in use by device edu0"), absl::string_view::npos) << refused;
  EXPECT_EQ(kernel_.mapped, ram) << "a refused object-del unmaps nothing";

  Unplug("edu0", 1);
  EXPECT_EQ(sink_.Events().back(),
            (nlohmann::json{{"event", "DEVICE_DELETED"},
                            {"data", {{"device", "edu0"}, {"path", "/machine/peripheral/edu0"}}}}));
  ExpectNothingLeft(with_object + 1);  // + KVM-VFIO's device, kept for the VM
  EXPECT_EQ(kernel_.mapped, ram) << "the object keeps its mappings";

  // The BAR range went back: the same slot and address again.
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_).ok());
  EXPECT_EQ(ConfigRead(1, PCI_BASE_ADDRESS_0), bar0);
  Unplug("edu0", 1);
  ASSERT_TRUE(hotplug_->ObjectDel("i0").ok());
  EXPECT_TRUE(kernel_.mapped.empty()) << "object-del unmaps guest RAM";
  EXPECT_EQ(kernel_.destroy_calls, 1);
  ExpectNothingLeft(2);  // the VM fd, KVM-VFIO's device
  EXPECT_EQ(hotplug_->QueryIommufd()["objects"].size(), 0u);
}

TEST_F(HotplugTest, LegacyContainerComesWithTheFirstDeviceAndGoesWithTheLast) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=a,host=00:03.0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=b,host=00:04.0"), fds_).ok());
  EXPECT_TRUE(kernel_.iommu_set);
  EXPECT_EQ(kernel_.mapped.size(), 1u);
  nlohmann::json q = hotplug_->QueryIommufd();
  EXPECT_EQ(q["legacy-container"]["devices"], nlohmann::json::array({"a", "b"})) << q;
  Unplug("a", 1);
  EXPECT_TRUE(kernel_.iommu_set) << "b still uses the container";
  EXPECT_EQ(kernel_.mapped.size(), 1u);
  Unplug("b", 2);
  EXPECT_FALSE(kernel_.iommu_set);
  EXPECT_TRUE(kernel_.mapped.empty());
  EXPECT_TRUE(hotplug_->QueryIommufd()["legacy-container"].is_null());
  ExpectNothingLeft(2);  // the VM fd, KVM-VFIO's device: no container, no group
  // And a new one comes with the next device.
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=a,host=00:03.0"), fds_).ok());
  EXPECT_EQ(kernel_.mapped.size(), 1u);
  Unplug("a", 1);
  ExpectNothingLeft(2);
}

TEST_F(HotplugTest, EveryFailingStepIsUndone) {
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  const DeviceConfig edu = Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0");
  // A reference add to learn where its BAR goes, then the baseline.
  ASSERT_TRUE(hotplug_->DeviceAdd(edu, fds_).ok());
  const uint32_t bar0 = ConfigRead(1, PCI_BASE_ADDRESS_0);
  Unplug("edu0", 1);
  const size_t fds = kernel_.open_fds();
  const auto ram = kernel_.mapped;

  struct Step {
    const char* name;
    std::function<void()> inject, undo;
  };
  std::vector<Step> steps = {
      {"open", [&] { kernel_.busy.insert("/dev/vfio/devices/vfio0"); },
       [&] { kernel_.busy.clear(); }},
      {"bind", [&] { edu_.bound_iommufd = 12345; }, [&] { edu_.bound_iommufd = -1; }},
      {"attach", [&] { edu_.reserved = {{0, 0xfff}}; }, [&] { edu_.reserved.clear(); }},
      {"irq", [&] { edu_.failing_irq_indexes = {VFIO_PCI_INTX_IRQ_INDEX}; },
       [&] { edu_.failing_irq_indexes.clear(); }},
      {"bar mmap", [&] { mapper_.fail = true; }, [&] { mapper_.fail = false; }},
  };
  for (const Step& step : steps) {
    step.inject();
    absl::Status s = hotplug_->DeviceAdd(edu, fds_);
    EXPECT_FALSE(s.ok()) << step.name;
    EXPECT_NE(s.message().find("edu0"), absl::string_view::npos) << step.name << ": " << s;
    step.undo();
    if (std::string(step.name) == "bind") edu_.bound_iommufd = -1;  // the fake's own state
    EXPECT_EQ(kernel_.open_fds(), fds) << step.name;
    EXPECT_EQ(mapper_.size(), 0u) << step.name;
    EXPECT_TRUE(irq_.irqfds.empty()) << step.name;
    EXPECT_TRUE(kernel_.kvm_vfio_files.empty()) << step.name;
    EXPECT_EQ(edu_.attached_pt, 0u) << step.name;
    EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0xffffffffu) << step.name;
    EXPECT_EQ(kernel_.mapped, ram) << step.name;
    EXPECT_EQ(hotplug_->QueryIommufd()["objects"][0]["devices"].size(), 0u) << step.name;
  }
  EXPECT_EQ(signaller_.Calls(), (std::vector<std::string>{"added 1", "eject 1"}))
      << "a failed device_add does not signal the guest";
  // Nothing held on to a slot or a BAR range.
  ASSERT_TRUE(hotplug_->DeviceAdd(edu, fds_).ok());
  EXPECT_EQ(ConfigRead(1, PCI_BASE_ADDRESS_0), bar0);
  Unplug("edu0", 1);
}

TEST_F(HotplugTest, AFailingLegacyDeviceClosesTheContainerItMade) {
  kernel_.group_viable = false;
  absl::Status s = hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0"), fds_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not viable"), absl::string_view::npos) << s;
  EXPECT_TRUE(hotplug_->QueryIommufd()["legacy-container"].is_null());
  EXPECT_EQ(kernel_.open_fds(), 1u) << "only the VM fd";
}

TEST_F(HotplugTest, DeviceDelOfAnUnknownIdIsDeviceNotFound) {
  absl::Status s = hotplug_->DeviceDel("nope");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "Device 'nope' not found");
  EXPECT_TRUE(signaller_.Calls().empty());
}

TEST_F(HotplugTest, SecondDeviceDelWhilePendingIsAcceptedAndAsksAgain) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=rng0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceDel("rng0").ok());
  ASSERT_TRUE(hotplug_->DeviceDel("rng0").ok());
  EXPECT_EQ(signaller_.Calls(), (std::vector<std::string>{"added 1", "eject 1", "eject 1"}));
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0x10441af4u) << "still there until the guest ejects";
  hotplug_->OnGuestEject(1);
  ASSERT_EQ(sink_.WaitFor(1).size(), 1u);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(sink_.Events().size(), 1u) << "one DEVICE_DELETED";
  EXPECT_EQ(hotplug_->DeviceDel("rng0").code(), absl::StatusCode::kNotFound) << "gone";
}

TEST_F(HotplugTest, AGuestThatNeverEjectsKeepsTheDevicePending) {
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceDel("edu0").ok());
  nlohmann::json q = hotplug_->QueryIommufd();
  EXPECT_EQ(q["objects"][0]["devices"], nlohmann::json::array({"edu0"})) << q;
  EXPECT_EQ(q["objects"][0]["pending-removal"], nlohmann::json::array({"edu0"})) << q;
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0x11e81234u);
  EXPECT_FALSE(hotplug_->ObjectDel("i0").ok()) << "still attached";
  // The VM goes with it still there: teardown closes it (TearDown checks).
}

TEST_F(HotplugTest, EjectsTheGuestWasNotAskedForAreIgnored) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=keep"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=go"), fds_).ok());
  hotplug_->OnGuestEject(1);    // never requested
  hotplug_->OnGuestEject(0);    // the host bridge
  hotplug_->OnGuestEject(7);    // empty
  hotplug_->OnGuestEject(200);  // no such slot
  for (int i = 0; i < 1000; ++i) {  // a flood, of every slot but the one asked for below
    if (i % 256 != 2) hotplug_->OnGuestEject(static_cast<uint8_t>(i));
  }
  Unplug("go", 2);
  ASSERT_EQ(sink_.Events().size(), 1u);
  EXPECT_EQ(sink_.Events()[0]["data"]["device"], "go");
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0x10441af4u) << "'keep' stays";
  EXPECT_EQ(ConfigRead(0, PCI_VENDOR_ID), 0x29c08086u) << "the host bridge stays";
}

TEST_F(HotplugTest, DeviceWithoutIdIsNamedByItsPath) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci"), fds_).ok());
  std::optional<PciFunctionInfo> f = pci_->Find("/machine/peripheral-anon/device[0]");
  ASSERT_TRUE(f.has_value());
  Unplug("/machine/peripheral-anon/device[0]", 1);
  EXPECT_EQ(sink_.Events()[0]["data"], (nlohmann::json{{"path", "/machine/peripheral-anon/device[0]"}}))
      << "no \"device\" member, as QEMU";
}

TEST_F(HotplugTest, AddrIsHonouredAndChecked) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=r,addr=5"), fds_).ok());
  EXPECT_EQ(ConfigRead(5, PCI_VENDOR_ID), 0x10441af4u);
  EXPECT_EQ(signaller_.Calls(), std::vector<std::string>{"added 5"});
  absl::Status taken = hotplug_->DeviceAdd(Device("virtio-rng-pci,id=s,addr=5"), fds_);
  EXPECT_NE(taken.message().find("slot 05 is taken"), absl::string_view::npos) << taken;
  absl::Status function = hotplug_->DeviceAdd(Device("virtio-rng-pci,id=s,addr=6.1"), fds_);
  EXPECT_NE(function.message().find("addr=6.1"), absl::string_view::npos) << function;
  DeviceConfig bridge_slot = Device("virtio-rng-pci,id=s");
  bridge_slot.addr = PciSlot{0, 0};  // the parser refuses it; the QMP layer might not
  absl::Status bridge = hotplug_->DeviceAdd(bridge_slot, fds_);
  EXPECT_NE(bridge.message().find("addr=0.0"), absl::string_view::npos) << bridge;
  absl::Status dup = hotplug_->DeviceAdd(Device("virtio-rng-pci,id=r"), fds_);
  EXPECT_EQ(dup.message(), "device_add: id 'r' is already in use");
  EXPECT_EQ(pci_->Describe().size(), 2u);
}

TEST_F(HotplugTest, NewBarsAvoidWhereTheGuestMovedTheOldOnes) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=a"), fds_).ok());
  const uint32_t a_bar1 = ConfigRead(1, PCI_BASE_ADDRESS_1);
  // The guest moves a's BAR 1 to the next page: where the allocator would
  // put the next device's BAR 1.
  ConfigWrite(1, PCI_BASE_ADDRESS_1, a_bar1 + 0x1000);
  ASSERT_EQ(ConfigRead(1, PCI_BASE_ADDRESS_1), a_bar1 + 0x1000);
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=b"), fds_).ok()) << "no overlap";
  std::vector<PciFunctionInfo> all = pci_->Describe();
  ASSERT_EQ(all.size(), 3u);
  for (const PciFunctionInfo::Bar& bar : all[2].bars) {
    EXPECT_TRUE(bar.decoding) << "b's BAR " << bar.index;
  }
  EXPECT_NE(all[2].bars[0].address, a_bar1 + 0x1000);
}

TEST_F(HotplugTest, QueryPciHasQemusShape) {
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_).ok());
  nlohmann::json q = hotplug_->QueryPci();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]["bus"], 0);
  ASSERT_EQ(q[0]["devices"].size(), 2u) << q;
  const nlohmann::json& edu = q[0]["devices"][1];
  EXPECT_EQ(edu["slot"], 1);
  EXPECT_EQ(edu["function"], 0);
  EXPECT_EQ(edu["qdev_id"], "edu0");
  EXPECT_EQ(edu["id"]["vendor"], 0x1234);
  EXPECT_EQ(edu["id"]["device"], 0x11e8);
  EXPECT_EQ(edu["irq_pin"], 1);
  EXPECT_EQ(edu["irq"], PciBus::IntxGsi(1, 1));
  ASSERT_EQ(edu["regions"].size(), 1u) << edu;
  EXPECT_EQ(edu["regions"][0]["bar"], 0);
  EXPECT_EQ(edu["regions"][0]["type"], "memory");
  EXPECT_EQ(edu["regions"][0]["size"], 0x100000);
  EXPECT_EQ(edu["regions"][0]["address"], ConfigRead(1, PCI_BASE_ADDRESS_0) & ~0xfu);
  EXPECT_EQ(edu["regions"][0]["mem_type_64"], false);
  EXPECT_EQ(q[0]["devices"][0]["qdev_id"], "") << "the host bridge";
  // Memory decoding off: QEMU reports the address as -1.
  ConfigWrite(1, PCI_COMMAND, 0);
  EXPECT_EQ(hotplug_->QueryPci()[0]["devices"][1]["regions"][0]["address"], -1);
}

TEST_F(HotplugTest, ObjectAddAndDelErrorsNameTheArgument) {
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  absl::Status dup = hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_);
  EXPECT_EQ(dup.message(), "object-add: id 'i0' is already in use");
  absl::Status unknown = hotplug_->ObjectDel("i9");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument) << "GenericError, as QEMU";
  EXPECT_EQ(unknown.message(), "object-del: id 'i9': no such object");
  ObjectConfig bad_fd = Object("iommufd,id=i1");
  bad_fd.fd = 77;  // never passed
  absl::Status s = hotplug_->ObjectAdd(bad_fd, fds_);
  EXPECT_NE(s.message().find("object-add: "), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("77"), absl::string_view::npos) << s;
  EXPECT_EQ(hotplug_->QueryIommufd()["objects"].size(), 1u);
}

TEST_F(HotplugTest, DeviceDelWithoutAGuestMechanismIsRefused) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=r"), fds_).ok());
  signaller_present_ = false;
  absl::Status s = hotplug_->DeviceDel("r");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("'r'"), absl::string_view::npos) << s;
}

TEST_F(HotplugTest, AfterShutdownNothingComesOrGoes) {
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=r"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceDel("r").ok());
  hotplug_->Shutdown();
  hotplug_->OnGuestEject(1);  // a vCPU still running: ignored, no crash
  EXPECT_FALSE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=s"), fds_).ok());
  EXPECT_FALSE(hotplug_->DeviceDel("r").ok());
  EXPECT_FALSE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(sink_.Events().empty());
  EXPECT_EQ(ConfigRead(1, PCI_VENDOR_ID), 0x10441af4u) << "left for the VM's teardown";
}

// A vCPU reading the slot (config space by ECAM, the BARs on the MMIO bus)
// while the device comes and goes under it: every access either reaches the
// device or reads all-ones, and nothing is used after it is freed (the
// sanitizer build checks that).
TEST_F(HotplugTest, VcpuAccessesWhileTheDeviceComesAndGoes) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> seen{0}, absent{0};
  const uint64_t bar1 = 0xc0000000;  // where the first rng's BAR 1 goes (DevicesGetSlotsAndBarsInOrder)
  std::thread vcpu([&] {
    while (!stop.load()) {
      uint8_t b[4];
      mmio_.Read(kEcamStart + (uint64_t{1} << 15) + PCI_VENDOR_ID, b);
      uint32_t v;
      std::memcpy(&v, b, 4);
      (v == 0x10441af4u ? seen : absent)++;
      if (v != 0x10441af4u && v != 0xffffffffu) ADD_FAILURE() << "config read 0x" << std::hex << v;
      mmio_.Read(bar1, b);
      mmio_.Write(kEcamStart + (uint64_t{1} << 15) + PCI_COMMAND, std::span<const uint8_t>(b, 2));
    }
  });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(hotplug_->DeviceAdd(Device("virtio-rng-pci,id=r"), fds_).ok()) << i;
    Unplug("r", 1);
  }
  stop = true;
  vcpu.join();
  EXPECT_EQ(sink_.Events().size(), 50u);
  EXPECT_GT(seen.load() + absent.load(), 0u);
}

// MSI-X on a hot-added device: the guest enables it and unmasks a vector
// (a GSI routed, VFIO's eventfd attached as the irqfd); removal releases
// all of it.
TEST_F(HotplugTest, RemovalReleasesMsixRoutesAndIrqfds) {
  auto& c = nvme_.config;
  c[PCI_STATUS] = PCI_STATUS_CAP_LIST;
  c[PCI_CAPABILITY_LIST] = 0x40;
  c[0x40] = PCI_CAP_ID_MSIX;
  c[0x41] = 0;
  c[0x42] = 3;      // 4 vectors
  c[0x44] = 0x00;   // table: BAR 0, offset 0x2000
  c[0x45] = 0x20;
  c[0x48] = 0x00;   // PBA: BAR 0, offset 0x3000
  c[0x49] = 0x30;
  nvme_.irq_counts[VFIO_PCI_MSIX_IRQ_INDEX] = 4;
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=nvme0,host=00:04.0,iommufd=i0"), fds_).ok());
  const uint64_t ecam = kEcamStart + (uint64_t{1} << 15);
  const uint64_t table = (ConfigRead(1, PCI_BASE_ADDRESS_0) & ~0xfu) + 0x2000;
  auto write = [this](uint64_t at, uint32_t v, size_t size) {
    uint8_t b[4];
    std::memcpy(b, &v, 4);
    mmio_.Write(at, std::span<const uint8_t>(b, size));
  };
  write(ecam + 0x42, PCI_MSIX_FLAGS_ENABLE, 2);
  write(table + 0, 0xfee00000, 4);
  write(table + 4, 0, 4);
  write(table + 8, 0x41, 4);
  write(table + 12, 0, 4);  // unmask vector 0
  ASSERT_EQ(irq_.routes.size(), 1u) << "vector 0 routed";
  EXPECT_EQ(irq_.routes.begin()->second, (MsiMessage{0xfee00000, 0x41}));
  EXPECT_FALSE(nvme_.irq_eventfds.empty());
  EXPECT_EQ(irq_.irqfds.size(), 1u) << "vector 0's irqfd (INTx is off under MSI-X)";
  Unplug("nvme0", 1);
  EXPECT_TRUE(irq_.routes.empty());
  EXPECT_TRUE(irq_.allocated.empty());
  EXPECT_TRUE(irq_.irqfds.empty());
  EXPECT_TRUE(nvme_.irq_eventfds.empty()) << "VFIO's interrupts disabled";
  EXPECT_EQ(nvme_.bound_iommufd, -1);
}

// Linux may reassign a hot-added device's BARs: the memslot follows, and
// removal unmaps it from where the guest left it.
TEST_F(HotplugTest, TheGuestMovesAHotAddedBar) {
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_).ok());
  const uint32_t placed = ConfigRead(1, PCI_BASE_ADDRESS_0) & ~0xfu;
  const uint32_t moved = placed + 0x1000000;
  ConfigWrite(1, PCI_COMMAND, 0);  // as Linux does around sizing
  ConfigWrite(1, PCI_BASE_ADDRESS_0, moved);
  ConfigWrite(1, PCI_COMMAND, PCI_COMMAND_MEMORY);
  ASSERT_EQ(mapper_.size(), 1u);
  {
    absl::MutexLock lock(&mapper_.mu);
    EXPECT_EQ(mapper_.maps.begin()->second.first, moved) << "the memslot moved with the BAR";
  }
  uint8_t b[4];
  EXPECT_FALSE(mmio_.Read(placed, b)) << "nothing decodes at the old address";
  Unplug("edu0", 1);
  EXPECT_EQ(mapper_.size(), 0u);
  EXPECT_FALSE(mmio_.Read(moved, b)) << "nothing decodes at the new address after removal";
}

// Issue 13 end to end over the hotplug controller: a PASID bound through
// it, a device hot-added later that takes it before the guest is told, a
// narrower one refused, and object-del refused while the binding lives.
TEST_F(HotplugTest, PasidBindingsFollowHotplugAndHoldTheirObject) {
  edu_.max_pasid_log2 = 8;
  edu_.hw_caps = IOMMU_HW_CAP_PCI_PASID_EXEC;
  nvme_.max_pasid_log2 = 6;
  ASSERT_TRUE(hotplug_->ObjectAdd(Object("iommufd,id=i0"), fds_).ok());
  absl::Status s = hotplug_->PasidBind(5, "i0");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("no device in this VM supports PASID"), absl::string_view::npos) << s;
  s = hotplug_->PasidBind(5, "nope");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("'object' 'nope': no such iommufd object"), absl::string_view::npos) << s;

  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=edu0,host=00:03.0,iommufd=i0"), fds_).ok());
  ASSERT_TRUE(hotplug_->PasidBind(40, "i0").ok());
  ASSERT_EQ(edu_.pasids.count(40), 1u);
  // nvme (6 bits: up to 63) hot-added: it has PASID 40 before the guest hears of it.
  size_t nvme_pasids_when_told = 0;
  signaller_.on_added = [&] { nvme_pasids_when_told = nvme_.pasids.size(); };
  ASSERT_TRUE(hotplug_->DeviceAdd(Device("vfio-pci,id=nvme0,host=00:04.0,iommufd=i0"), fds_).ok());
  signaller_.on_added = nullptr;
  EXPECT_EQ(nvme_pasids_when_told, 1u) << "the binding came before the guest was told";
  EXPECT_EQ(nvme_.pasids.count(40), 1u);

  nlohmann::json q = hotplug_->QueryPasid();
  EXPECT_EQ(q["width"], 6) << q;
  ASSERT_EQ(q["devices"].size(), 2u) << q;
  EXPECT_EQ(q["devices"][0], (nlohmann::json{{"id", "edu0"}, {"object", "i0"}, {"max-pasid-log2", 8},
                                             {"exec", true}, {"priv", false}, {"state", "pasid"},
                                             {"pasids", {40}}}));
  ASSERT_EQ(q["bindings"].size(), 1u) << q;
  EXPECT_EQ(q["bindings"][0]["pasid"], 40);
  EXPECT_EQ(q["bindings"][0]["object"], "i0");
  EXPECT_EQ(q["bindings"][0]["attachments"].size(), 2u);
  EXPECT_EQ(q["bindings"][0]["attachments"][1]["device"], "nvme0");
  EXPECT_EQ(q["bindings"][0]["attachments"][1]["hwpt-id"], nvme_.pasids.at(40));

  // Both go; the binding stays (the guest PASID keeps its meaning), so the
  // object cannot go either.
  Unplug("nvme0", 2);
  Unplug("edu0", 1);
  EXPECT_TRUE(edu_.pasids.empty());
  EXPECT_EQ(kernel_.hwpts.size(), 0u) << "every HWPT went with its device";
  s = hotplug_->ObjectDel("i0");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("iommufd 'i0' has live PASID binding(s) (pasid 40)"), absl::string_view::npos) << s;
  EXPECT_EQ(hotplug_->QueryPasid()["bindings"][0]["attachments"].size(), 0u);

  // A device narrower than the live PASID is refused, the guest not told.
  nvme_.max_pasid_log2 = 5;
  const auto calls = signaller_.Calls().size();
  s = hotplug_->DeviceAdd(Device("vfio-pci,id=nvme0,host=00:04.0,iommufd=i0"), fds_);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("below live PASID 40"), absl::string_view::npos) << s;
  EXPECT_EQ(signaller_.Calls().size(), calls);
  EXPECT_EQ(nvme_.bound_iommufd, -1);

  s = hotplug_->PasidUnbind(40, "i0");
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(hotplug_->ObjectDel("i0").ok());
  ExpectNothingLeft(2);
}

}  // namespace
}  // namespace passage
