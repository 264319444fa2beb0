// Issue 13 on the real kernel: the same PasidSpace passage runs, driven
// against IOMMUFD_TEST mock devices (mock_pasid_device.h) on two iommufd
// objects (two /dev/iommu fds). Every verdict about what is attached comes
// from the kernel (IOMMU_TEST_OP_PASID_CHECK_HWPT on each device, and
// IOMMU_DESTROY's answer for the HWPTs), not from the space's own report;
// the table (Describe) only says which HWPT to ask about. Runs inside the
// rig's L1 (scenario tests/rig/scenarios/pasid-mock.sh); skips, with the
// reason, where /dev/iommu or IOMMUFD_TEST is missing (the rig fails a skip).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// Not exported uAPI (see mock_pasid_device.cc): MOCK_PASID_WIDTH.
#include "iommufd_test.h"

#include "iommu/iommufd.h"
#include "iommu/pasid_space.h"
#include "tests/rig/pasid/mock_pasid_device.h"

namespace passage {
namespace {

using Whole = MockPasidDevice::WholeDevice;

// Not 1024 (IOMMU_TEST_PASID_RESERVED: the mock fails its second attach on
// purpose); the largest PASID the mock's 20 bits hold.
constexpr uint32_t kPasid = 100;
constexpr uint32_t kTopPasid = (1u << MOCK_PASID_WIDTH) - 1;

// The kernel's answer as text, so a failed EXPECT shows the errno.
std::string Kernel(const MockPasidDevice& d, uint32_t pasid, uint32_t hwpt) {
  absl::Status s = d.CheckPasid(pasid, hwpt);
  return s.ok() ? "ok" : std::string(s.message());
}

bool Contains(const absl::Status& s, const std::string& part) {
  return std::string(s.message()).find(part) != std::string::npos;
}

class PasidMockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/dev/iommu", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/iommu here";
    io0_ = Open("io0");
    io1_ = Open("io1");
    ASSERT_NE(io0_, nullptr);
    ASSERT_NE(io1_, nullptr);
    absl::StatusOr<std::unique_ptr<MockPasidDevice>> probe =
        MockPasidDevice::Create(io0_.get(), {.id = "probe"});
    if (!probe.ok() && Contains(probe.status(), "Inappropriate ioctl")) {  // ENOTTY
      GTEST_SKIP() << "kernel without CONFIG_IOMMUFD_TEST: " << probe.status();
    }
    ASSERT_TRUE(probe.ok()) << probe.status();
  }

  static std::unique_ptr<Iommufd> Open(const std::string& id) {
    absl::StatusOr<std::unique_ptr<Iommufd>> o = Iommufd::Create({.id = id});
    EXPECT_TRUE(o.ok()) << o.status();
    return o.ok() ? std::move(*o) : nullptr;
  }

  static std::unique_ptr<MockPasidDevice> Mock(Iommufd* object, const std::string& id, bool pasid = true,
                                               Whole whole = Whole::kPasidHwpt) {
    absl::StatusOr<std::unique_ptr<MockPasidDevice>> d =
        MockPasidDevice::Create(object, {.id = id, .pasid = pasid, .whole = whole});
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }

  static std::unique_ptr<PasidSpace::Registration> Join(PasidSpace& space, MockPasidDevice* d) {
    absl::StatusOr<std::unique_ptr<PasidSpace::Registration>> r = space.AddDevice(d);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : nullptr;
  }

  // The HWPT the table recorded for `device` under `pasid` (0: none).
  static uint32_t Recorded(const PasidSpace& space, uint32_t pasid, const std::string& device) {
    for (const PasidSpace::BindingInfo& b : space.Describe().bindings) {
      if (b.pasid != pasid) continue;
      for (const PasidSpace::AttachmentInfo& a : b.attachments) {
        if (a.device == device) return a.hwpt_id;
      }
    }
    return 0;
  }

  // Declared before the devices the tests make, so it outlives them.
  PasidSpace space_;
  std::unique_ptr<Iommufd> io0_, io1_;
};

TEST_F(PasidMockTest, BindAttachesOnEveryDeviceOfBothObjects) {
  auto a = Mock(io0_.get(), "mock-a");
  auto b = Mock(io1_.get(), "mock-b");
  ASSERT_TRUE(a && b);
  // The width comes from the kernel's GET_HW_INFO for each mock.
  EXPECT_EQ(a->pasid_info().max_pasid_log2, MOCK_PASID_WIDTH);
  EXPECT_EQ(b->pasid_info().max_pasid_log2, MOCK_PASID_WIDTH);
  auto ra = Join(space_, a.get());
  auto rb = Join(space_, b.get());
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(space_.width(), MOCK_PASID_WIDTH);
  EXPECT_EQ(Kernel(*a, kPasid, 0), "ok") << "attached before any bind";

  ASSERT_TRUE(space_.Bind(kPasid, io0_.get()).ok());
  ASSERT_TRUE(space_.Bind(kTopPasid, io1_.get()).ok());
  for (MockPasidDevice* d : {a.get(), b.get()}) {
    for (uint32_t pasid : {kPasid, kTopPasid}) {
      const uint32_t hwpt = Recorded(space_, pasid, d->id());
      ASSERT_NE(hwpt, 0u) << d->id() << " pasid " << pasid << " not in the table";
      EXPECT_EQ(Kernel(*d, pasid, hwpt), "ok") << d->id() << " pasid " << pasid;
      // The check can say no: the PASID is attached (not to nothing), and
      // to its own HWPT, not to the whole device's.
      EXPECT_NE(Kernel(*d, pasid, 0), "ok") << d->id() << " pasid " << pasid;
      EXPECT_NE(Kernel(*d, pasid, d->whole_device_hwpt()), "ok") << d->id() << " pasid " << pasid;
    }
    EXPECT_EQ(Kernel(*d, kPasid + 1, 0), "ok") << d->id() << ": a PASID nobody bound";
  }

  // Beyond 20 bits: the space refuses it, and so would the kernel.
  absl::Status wide = space_.Bind(kTopPasid + 1, io0_.get());
  EXPECT_TRUE(absl::IsOutOfRange(wide)) << wide;
  absl::Status direct = a->AttachPasid(kTopPasid + 1, Recorded(space_, kPasid, "mock-a"));
  EXPECT_FALSE(direct.ok()) << "the kernel took PASID " << kTopPasid + 1 << " on a 20-bit device";

  EXPECT_TRUE(space_.Unbind(kTopPasid, "io1").ok());
  EXPECT_TRUE(space_.Unbind(kPasid, "io0").ok());
}

TEST_F(PasidMockTest, FailureOnTheSecondDeviceRollsBackTheFirst) {
  auto a = Mock(io0_.get(), "mock-a");
  // b's whole device stays on its IOAS's auto domain, which is not
  // PASID-compatible: the kernel refuses any PASID attach on it (EINVAL).
  auto b = Mock(io1_.get(), "mock-b", true, Whole::kAutoDomain);
  ASSERT_TRUE(a && b);
  auto ra = Join(space_, a.get());
  auto rb = Join(space_, b.get());
  ASSERT_TRUE(ra && rb);

  absl::Status s = space_.Bind(kPasid, io0_.get());
  ASSERT_FALSE(s.ok()) << "the kernel attached a PASID under a domain without IOMMU_HWPT_ALLOC_PASID";
  EXPECT_TRUE(Contains(s, "mock-b")) << s;
  EXPECT_TRUE(Contains(s, "rolled back on mock-a")) << s;
  // mock-a had it attached first; the kernel now has nothing there.
  EXPECT_EQ(Kernel(*a, kPasid, 0), "ok");
  EXPECT_EQ(Kernel(*b, kPasid, 0), "ok");
  EXPECT_TRUE(space_.Describe().bindings.empty());

  // The same bind once b's whole device is PASID-compatible: the refusal
  // above was that, and the roll-back left nothing in the way.
  ASSERT_TRUE(b->AttachWholeDeviceToPasidHwpt().ok());
  ASSERT_TRUE(space_.Bind(kPasid, io0_.get()).ok());
  EXPECT_EQ(Kernel(*a, kPasid, Recorded(space_, kPasid, "mock-a")), "ok");
  EXPECT_EQ(Kernel(*b, kPasid, Recorded(space_, kPasid, "mock-b")), "ok");
  EXPECT_TRUE(space_.Unbind(kPasid, "io0").ok());
}

TEST_F(PasidMockTest, ADeviceAddedLaterInheritsEveryBinding) {
  auto a = Mock(io0_.get(), "mock-a");
  auto b = Mock(io1_.get(), "mock-b");
  ASSERT_TRUE(a && b);
  auto ra = Join(space_, a.get());
  auto rb = Join(space_, b.get());
  ASSERT_TRUE(ra && rb);
  ASSERT_TRUE(space_.Bind(kPasid, io0_.get()).ok());
  ASSERT_TRUE(space_.Bind(kTopPasid, io1_.get()).ok());

  // A third device, on io1 beside mock-b: nothing attached until it joins.
  auto c = Mock(io1_.get(), "mock-c");
  ASSERT_TRUE(c);
  EXPECT_EQ(Kernel(*c, kPasid, 0), "ok");
  EXPECT_EQ(Kernel(*c, kTopPasid, 0), "ok");
  auto rc = Join(space_, c.get());
  ASSERT_TRUE(rc);
  for (uint32_t pasid : {kPasid, kTopPasid}) {
    const uint32_t hwpt = Recorded(space_, pasid, "mock-c");
    ASSERT_NE(hwpt, 0u) << "pasid " << pasid;
    EXPECT_EQ(Kernel(*c, pasid, hwpt), "ok") << "pasid " << pasid;
    EXPECT_EQ(Kernel(*a, pasid, Recorded(space_, pasid, "mock-a")), "ok") << "pasid " << pasid;
    EXPECT_EQ(Kernel(*b, pasid, Recorded(space_, pasid, "mock-b")), "ok") << "pasid " << pasid;
  }

  // A late device the kernel refuses (whole device not PASID-compatible) is
  // refused by the space with nothing left on it.
  auto d = Mock(io0_.get(), "mock-d", true, Whole::kAutoDomain);
  ASSERT_TRUE(d);
  absl::StatusOr<std::unique_ptr<PasidSpace::Registration>> rd = space_.AddDevice(d.get());
  ASSERT_FALSE(rd.ok());
  EXPECT_TRUE(Contains(rd.status(), "mock-d")) << rd.status();
  EXPECT_EQ(Kernel(*d, kPasid, 0), "ok");
  EXPECT_EQ(Kernel(*d, kTopPasid, 0), "ok");

  // mock-c leaves: its PASIDs go, the others keep theirs.
  rc.reset();
  EXPECT_EQ(Kernel(*c, kPasid, 0), "ok");
  EXPECT_EQ(Kernel(*c, kTopPasid, 0), "ok");
  EXPECT_EQ(Kernel(*a, kPasid, Recorded(space_, kPasid, "mock-a")), "ok");
  EXPECT_TRUE(c->Destroy().ok());

  EXPECT_TRUE(space_.Unbind(kTopPasid, "io1").ok());
  EXPECT_TRUE(space_.Unbind(kPasid, "io0").ok());
}

TEST_F(PasidMockTest, ANonPasidDeviceIsRefused) {
  // Without MOCK_FLAGS_DEVICE_PASID; its whole device on a PASID-compatible
  // HWPT all the same, so what is refused below is the device, not its
  // domain. (The IOMMU core itself skips its width check for a device with
  // no PASID bits: keeping PASIDs off it is the space's job.)
  auto n = Mock(io1_.get(), "mock-nopasid", false);
  auto a = Mock(io0_.get(), "mock-a");
  ASSERT_TRUE(n && a);
  EXPECT_EQ(n->pasid_info().max_pasid_log2, 0) << "the kernel's GET_HW_INFO";

  {
    // Alone in a VM: no bind at all.
    PasidSpace alone;
    auto rn = Join(alone, n.get());
    ASSERT_TRUE(rn);
    EXPECT_EQ(alone.width(), 0);
    absl::Status s = alone.Bind(kPasid, io1_.get());
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_TRUE(Contains(s, "no device in this VM supports PASID (mock-nopasid: width 0)")) << s;
    EXPECT_EQ(Kernel(*n, kPasid, 0), "ok");
  }

  auto rn = Join(space_, n.get());
  auto ra = Join(space_, a.get());
  ASSERT_TRUE(rn && ra);
  EXPECT_EQ(space_.width(), MOCK_PASID_WIDTH) << "a device without PASID does not narrow the space";
  // Its object has no PASID-capable device: refused, naming it.
  absl::Status s = space_.Bind(kPasid, io1_.get());
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(Contains(s, "'io1' has no PASID-capable device (mock-nopasid: width 0)")) << s;
  EXPECT_EQ(Kernel(*n, kPasid, 0), "ok");
  EXPECT_EQ(Kernel(*a, kPasid, 0), "ok");

  // Bound on io0: mock-a has it, the non-PASID device is left alone.
  ASSERT_TRUE(space_.Bind(kPasid, io0_.get()).ok());
  EXPECT_EQ(Kernel(*a, kPasid, Recorded(space_, kPasid, "mock-a")), "ok");
  EXPECT_EQ(Recorded(space_, kPasid, "mock-nopasid"), 0u);
  EXPECT_EQ(Kernel(*n, kPasid, 0), "ok");
  EXPECT_TRUE(space_.Unbind(kPasid, "io0").ok());
}

TEST_F(PasidMockTest, UnbindLeavesNothing) {
  auto a = Mock(io0_.get(), "mock-a");
  auto b = Mock(io1_.get(), "mock-b");
  auto c = Mock(io1_.get(), "mock-c");
  ASSERT_TRUE(a && b && c);
  std::vector<MockPasidDevice*> devices = {a.get(), b.get(), c.get()};
  std::vector<std::unique_ptr<PasidSpace::Registration>> regs;
  for (MockPasidDevice* d : devices) regs.push_back(Join(space_, d));
  ASSERT_TRUE(regs[0] && regs[1] && regs[2]);
  ASSERT_TRUE(space_.Bind(kPasid, io0_.get()).ok());
  ASSERT_TRUE(space_.Bind(kTopPasid, io1_.get()).ok());

  struct Held {
    MockPasidDevice* device;
    uint32_t pasid;
    uint32_t hwpt;
  };
  std::vector<Held> held;
  for (MockPasidDevice* d : devices) {
    for (uint32_t pasid : {kPasid, kTopPasid}) {
      held.push_back({d, pasid, Recorded(space_, pasid, d->id())});
      ASSERT_EQ(Kernel(*d, pasid, held.back().hwpt), "ok") << d->id() << " pasid " << pasid;
    }
  }
  // While attached, the kernel will not destroy a PASID's HWPT.
  absl::Status busy = a->iommufd()->DestroyObject(held[0].hwpt);
  EXPECT_FALSE(busy.ok()) << "HWPT " << held[0].hwpt << " destroyed while attached";

  EXPECT_TRUE(space_.Unbind(kPasid, "io0").ok());
  EXPECT_TRUE(space_.Unbind(kTopPasid, "io1").ok());
  for (const Held& h : held) {
    EXPECT_EQ(Kernel(*h.device, h.pasid, 0), "ok") << h.device->id() << " pasid " << h.pasid;
    // The space destroyed each HWPT it made: the kernel no longer knows it.
    absl::Status gone = h.device->iommufd()->DestroyObject(h.hwpt);
    EXPECT_TRUE(absl::IsNotFound(gone)) << h.device->id() << " HWPT " << h.hwpt << ": " << gone;
  }
  EXPECT_TRUE(space_.Describe().bindings.empty());

  // Leaving the space, then destroying each mock and its whole-device HWPT:
  // the kernel holds nothing that stops either.
  regs.clear();
  for (MockPasidDevice* d : devices) {
    absl::Status s = d->Destroy();
    EXPECT_TRUE(s.ok()) << s;
  }
}

}  // namespace
}  // namespace passage
