#include "devices/virtio/virtio_pci.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include "devices/virtio/virtio_rng.h"
#include "tests/unit/fake_interrupt_controller.h"
#include "tests/unit/virtio_test_driver.h"

namespace passage {
namespace {

using testing::RingDriver;

// The fake behind a lock: the rng worker thread raises interrupts too.
class SyncInterruptController : public InterruptController {
 public:
  using Fake = testing::FakeInterruptController;
  template <typename F>
  auto With(F f) -> decltype(f(std::declval<Fake&>())) {
    absl::MutexLock lock(&mu_);
    return f(fake_);
  }
  absl::StatusOr<uint32_t> AllocateGsi() override { return With([](Fake& f) { return f.AllocateGsi(); }); }
  void ReleaseGsi(uint32_t gsi) override { With([&](Fake& f) { f.ReleaseGsi(gsi); }); }
  absl::Status SetMsiRoute(uint32_t gsi, const MsiMessage& m) override {
    return With([&](Fake& f) { return f.SetMsiRoute(gsi, m); });
  }
  absl::Status AttachIrqfd(uint32_t gsi, int fd, int rfd) override {
    return With([&](Fake& f) { return f.AttachIrqfd(gsi, fd, rfd); });
  }
  absl::Status DetachIrqfd(uint32_t gsi, int fd) override {
    return With([&](Fake& f) { return f.DetachIrqfd(gsi, fd); });
  }
  absl::Status SetLevel(uint32_t gsi, bool a) override {
    return With([&](Fake& f) { return f.SetLevel(gsi, a); });
  }

 private:
  absl::Mutex mu_;
  Fake fake_;
};

// Polls until `done` (the rng worker runs on its own thread); gives up after
// about 20 s so a broken device fails the test instead of hanging it.
bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 20000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

constexpr MsiMessage kConfigMsg{0xfee00000, 0x30};
constexpr MsiMessage kQueueMsg{0xfee00000, 0x31};
constexpr uint64_t kBuffer = 0x20000;

class VirtioRngTest : public ::testing::Test {
 protected:
  VirtioRngTest() : memory_(*GuestMemory::Create({16 * kMiB, false})), driver_(*memory_, 8) {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
    source_write_.reset(fds[1]);
    auto rng = VirtioRng::Create(UniqueFd(fds[0]));
    EXPECT_TRUE(rng.ok());
    rng_ = rng->get();
    auto dev = VirtioPciDevice::Create("virtio-rng-pci,id=rng0", std::move(*rng), *memory_, irq_);
    EXPECT_TRUE(dev.ok()) << dev.status();
    dev_ = *dev;
  }
  ~VirtioRngTest() override { dev_.reset(); }

  void W(uint64_t offset, size_t size, uint64_t v) {
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    dev_->BarWrite(offset, std::span<const uint8_t>(b, size));
  }
  uint64_t R(uint64_t offset, size_t size) {
    uint8_t b[8] = {};
    dev_->BarRead(offset, std::span<uint8_t>(b, size));
    uint64_t v = 0;
    std::memcpy(&v, b, size);
    return v;
  }
  void MsixEntry(uint16_t vector, MsiMessage m) {
    uint8_t b[16] = {};
    std::memcpy(b, &m.address, 8);
    std::memcpy(b + 8, &m.data, 4);  // vector control 0: unmasked
    dev_->msix().TableWrite(16u * vector, std::span<const uint8_t>(b, 8));
    dev_->msix().TableWrite(16u * vector + 8, std::span<const uint8_t>(b + 8, 8));
  }
  void EnableMsix() {
    const uint32_t cap = *FindCap(PCI_CAP_ID_MSIX);
    dev_->ConfigWrite(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
    MsixEntry(0, kConfigMsg);
    MsixEntry(1, kQueueMsg);
  }
  std::optional<uint32_t> FindCap(uint8_t id, uint8_t virtio_type = 0) {
    uint32_t at = dev_->ConfigRead(PCI_CAPABILITY_LIST, 1);
    for (int i = 0; i < 48 && at != 0; ++i) {
      if (dev_->ConfigRead(at, 1) == id &&
          (virtio_type == 0 || dev_->ConfigRead(at + VIRTIO_PCI_CAP_CFG_TYPE, 1) == virtio_type)) {
        return at;
      }
      at = dev_->ConfigRead(at + 1, 1);
    }
    return std::nullopt;
  }
  // The driver's side of 3.1.1, up to (not including) DRIVER_OK.
  void Negotiate(uint64_t features = 1ull << VIRTIO_F_VERSION_1) {
    W(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    W(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    W(VIRTIO_PCI_COMMON_GF, 4, static_cast<uint32_t>(features));
    W(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    W(VIRTIO_PCI_COMMON_GF, 4, static_cast<uint32_t>(features >> 32));
    W(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  }
  void SetUpQueue(uint64_t desc = RingDriver::kDesc) {
    W(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    W(VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
    W(VIRTIO_PCI_COMMON_Q_DESCLO, 4, static_cast<uint32_t>(desc));
    W(VIRTIO_PCI_COMMON_Q_DESCHI, 4, static_cast<uint32_t>(desc >> 32));
    W(VIRTIO_PCI_COMMON_Q_AVAILLO, 8, RingDriver::kAvail);  // a qword works too
    W(VIRTIO_PCI_COMMON_Q_USEDLO, 4, RingDriver::kUsed);
    W(VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    W(VIRTIO_PCI_COMMON_MSIX, 2, 0);
    W(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    W(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
  }
  void DriverOk() {
    W(VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
  }
  void Kick() { W(VirtioPciDevice::kNotifyOffset + 0 * VirtioPciDevice::kNotifyMultiplier, 2, 0); }
  void Feed(const std::vector<uint8_t>& bytes) {
    ASSERT_EQ(write(source_write_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  uint64_t Delivered(const MsiMessage& m) {
    return irq_.With([&](SyncInterruptController::Fake& f) {
      const uint32_t gsi = f.GsiFor(m);
      return gsi == 0 ? uint64_t{0} : f.TakeDeliveries(gsi);
    });
  }

  std::unique_ptr<GuestMemory> memory_;
  RingDriver driver_;
  SyncInterruptController irq_;
  UniqueFd source_write_;
  VirtioRng* rng_ = nullptr;
  std::shared_ptr<VirtioPciDevice> dev_;
};

TEST_F(VirtioRngTest, PciIdentityAndCapabilities) {
  EXPECT_EQ(dev_->ConfigRead(PCI_VENDOR_ID, 4), 0x10441af4u);
  EXPECT_EQ(dev_->ConfigRead(PCI_REVISION_ID, 1), 1u);
  EXPECT_EQ(dev_->ConfigRead(PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4u);
  EXPECT_EQ(dev_->ConfigRead(PCI_CLASS_REVISION, 4) >> 8, 0x00ff00u);
  EXPECT_EQ(dev_->ConfigRead(PCI_INTERRUPT_PIN, 1), 1u);
  ASSERT_NE(dev_->bar_spec(1), nullptr);
  EXPECT_EQ(dev_->bar_spec(1)->kind, PciBarKind::kMem32);
  ASSERT_NE(dev_->bar_spec(4), nullptr);
  EXPECT_EQ(dev_->bar_spec(4)->kind, PciBarKind::kMem64);
  EXPECT_EQ(dev_->bar_spec(4)->size, 0x4000u);
  for (uint8_t type : {VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_ISR_CFG,
                       VIRTIO_PCI_CAP_PCI_CFG}) {
    auto cap = FindCap(PCI_CAP_ID_VNDR, type);
    ASSERT_TRUE(cap.has_value()) << int(type);
    if (type != VIRTIO_PCI_CAP_PCI_CFG) {
      EXPECT_EQ(dev_->ConfigRead(*cap + VIRTIO_PCI_CAP_BAR, 1), 4u);
    }
  }
  EXPECT_FALSE(FindCap(PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG).has_value());  // rng has no config
  auto notify = FindCap(PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
  EXPECT_EQ(dev_->ConfigRead(*notify + VIRTIO_PCI_CAP_OFFSET, 4), 0x3000u);
  EXPECT_EQ(dev_->ConfigRead(*notify + 16, 4), 4u);  // notify_off_multiplier
  auto msix = FindCap(PCI_CAP_ID_MSIX);
  ASSERT_TRUE(msix.has_value());
  EXPECT_EQ(dev_->ConfigRead(*msix + PCI_MSIX_FLAGS, 2), 1u);  // 2 vectors
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_NUMQ, 2), 1u);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_SIZE, 2), 256u);
}

TEST_F(VirtioRngTest, FeatureNegotiation) {
  W(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_DF, 4), 0u);
  W(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_DF, 4), 1u);  // VERSION_1
  W(VIRTIO_PCI_COMMON_DFSELECT, 4, 7);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_DF, 4), 0u);
  // Without VERSION_1 (a legacy driver) FEATURES_OK does not stick.
  Negotiate(0);
  EXPECT_FALSE(R(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
  W(VIRTIO_PCI_COMMON_STATUS, 1, 0);
  // Nor with a feature we never offered.
  Negotiate((1ull << VIRTIO_F_VERSION_1) | (1ull << 28));
  EXPECT_FALSE(R(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
  W(VIRTIO_PCI_COMMON_STATUS, 1, 0);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_STATUS, 1), 0u);
  Negotiate();
  EXPECT_TRUE(R(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK);
  EXPECT_EQ(dev_->driver_features(), 1ull << VIRTIO_F_VERSION_1);
  // Features are frozen after FEATURES_OK.
  W(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
  W(VIRTIO_PCI_COMMON_GF, 4, 0xffffffff);
  EXPECT_EQ(dev_->driver_features(), 1ull << VIRTIO_F_VERSION_1);
}

TEST_F(VirtioRngTest, FillsBuffersWithSourceBytesAndSignalsMsix) {
  EnableMsix();
  Negotiate();
  SetUpQueue();
  DriverOk();
  std::vector<uint8_t> pattern(64);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(0xa0 + i);
  Feed(pattern);
  driver_.SetDesc(0, kBuffer, 16, RingDriver::kWrite);
  driver_.Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return driver_.UsedIdx() == 1; }));
  EXPECT_EQ(driver_.UsedId(0), 0u);
  EXPECT_EQ(driver_.UsedLen(0), 16u);
  uint8_t got[16];
  ASSERT_TRUE(memory_->Read(kBuffer, got).ok());
  EXPECT_EQ(0, std::memcmp(got, pattern.data(), 16));
  EXPECT_TRUE(WaitFor([&] { return Delivered(kQueueMsg) == 1; }));
  // A two-buffer chain continues from where the source left off; the
  // driver-readable buffer is skipped.
  driver_.SetDesc(1, kBuffer + 0x100, 4, RingDriver::kNext, 2);
  driver_.SetDesc(2, kBuffer + 0x200, 8, RingDriver::kWrite | RingDriver::kNext, 3);
  driver_.SetDesc(3, kBuffer + 0x300, 8, RingDriver::kWrite);
  driver_.Offer(1);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return driver_.UsedIdx() == 2; }));
  EXPECT_EQ(driver_.UsedLen(1), 16u);
  ASSERT_TRUE(memory_->Read(kBuffer + 0x300, std::span<uint8_t>(got, 8)).ok());
  EXPECT_EQ(0, std::memcmp(got, pattern.data() + 24, 8));
  EXPECT_EQ(rng_->bytes_served(), 32u);
  EXPECT_TRUE(WaitFor([&] { return Delivered(kQueueMsg) == 1; }));
  EXPECT_EQ(R(VirtioPciDevice::kIsrOffset, 1), 0u);  // MSI-X: the ISR stays clear
}

TEST_F(VirtioRngTest, IntxWhenMsixIsOff) {
  Negotiate();
  SetUpQueue();
  DriverOk();
  Feed(std::vector<uint8_t>(8, 0x11));
  driver_.SetDesc(0, kBuffer, 8, RingDriver::kWrite);
  driver_.Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return driver_.UsedIdx() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return dev_->ConfigRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT; }));
  EXPECT_EQ(R(VirtioPciDevice::kIsrOffset, 1), 1u);  // queue interrupt; reading clears it
  EXPECT_EQ(R(VirtioPciDevice::kIsrOffset, 1), 0u);
  EXPECT_FALSE(dev_->ConfigRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
}

TEST_F(VirtioRngTest, VectorsOutOfRangeReadBackAsNoVector) {
  W(VIRTIO_PCI_COMMON_MSIX, 2, 2);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_MSIX, 2), 0xffffu);
  W(VIRTIO_PCI_COMMON_Q_MSIX, 2, 0x7fff);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_MSIX, 2), 0xffffu);
  W(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_MSIX, 2), 1u);
  // A queue that does not exist reads size 0 and takes no writes.
  W(VIRTIO_PCI_COMMON_Q_SELECT, 2, 3);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_SIZE, 2), 0u);
  W(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0u);
}

TEST_F(VirtioRngTest, BadRingAddressesRefuseEnableAndAskForReset) {
  EnableMsix();
  Negotiate();
  SetUpQueue(/*desc=*/0x100000000ull);  // beyond the 16 MiB of RAM
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0u);
  EXPECT_TRUE(R(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
  EXPECT_EQ(Delivered(kConfigMsg), 1u);
  W(VIRTIO_PCI_COMMON_STATUS, 1, 0);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_STATUS, 1), 0u);
}

TEST_F(VirtioRngTest, MalformedChainBreaksTheQueueNotTheVmm) {
  EnableMsix();
  Negotiate();
  SetUpQueue();
  DriverOk();
  driver_.SetDesc(0, kBuffer, 8, RingDriver::kWrite | RingDriver::kNext, 0);  // loops on itself
  driver_.Offer(0);
  Kick();
  ASSERT_TRUE(WaitFor([&] { return R(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_CONFIG_S_NEEDS_RESET; }));
  EXPECT_TRUE(WaitFor([&] { return Delivered(kConfigMsg) == 1; }));
  EXPECT_EQ(driver_.UsedIdx(), 0);
}

TEST_F(VirtioRngTest, ResetInterruptsABlockedRead) {
  EnableMsix();
  Negotiate();
  SetUpQueue();
  DriverOk();
  driver_.SetDesc(0, kBuffer, 16, RingDriver::kWrite);
  driver_.Offer(0);
  Kick();  // the pipe is empty: the worker waits in poll()
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Returns at all: the reset cancels the worker's poll() (a hang here is
  // the failure, caught by the test timeout).
  W(VIRTIO_PCI_COMMON_STATUS, 1, 0);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_STATUS, 1), 0u);
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0u);
  EXPECT_EQ(driver_.UsedIdx(), 0);
  // Kicks after the reset do nothing until the driver sets the device up again.
  Feed(std::vector<uint8_t>(16, 1));
  Kick();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(driver_.UsedIdx(), 0);
}

// This process's threads (/proc/self/task).
int ThreadCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

TEST_F(VirtioRngTest, WorkerThreadStartsWithTheDriverNotTheDevice) {
  // The fixture's device exists, a driver negotiated and set up a queue:
  // no worker yet. DRIVER_OK starts one; a reset and a second DRIVER_OK
  // keep that one.
  const int before = ThreadCount();
  ASSERT_GT(before, 0);
  EnableMsix();
  Negotiate();
  SetUpQueue();
  EXPECT_EQ(ThreadCount(), before);
  DriverOk();
  EXPECT_EQ(ThreadCount(), before + 1);
  W(VIRTIO_PCI_COMMON_STATUS, 1, 0);
  Negotiate();
  SetUpQueue();
  DriverOk();
  EXPECT_EQ(ThreadCount(), before + 1);
  // And it still serves.
  Feed(std::vector<uint8_t>(16, 7));
  driver_.SetDesc(0, kBuffer, 16, RingDriver::kWrite);
  driver_.Offer(0);
  Kick();
  EXPECT_TRUE(WaitFor([&] { return driver_.UsedIdx() == 1; }));
  dev_.reset();
  EXPECT_TRUE(WaitFor([&] { return ThreadCount() == before; }));  // joined (gone from /proc a moment later)
}

TEST(VirtioRngAlone, NeverStartedGoesWithoutAThread) {
  const int before = ThreadCount();
  auto rng = VirtioRng::Create(UniqueFd(open("/dev/zero", O_RDONLY | O_CLOEXEC)));
  ASSERT_TRUE(rng.ok()) << rng.status();
  EXPECT_EQ(ThreadCount(), before);
  rng->reset();  // returns: nothing to join
  EXPECT_EQ(ThreadCount(), before);
}

TEST_F(VirtioRngTest, PciConfigAccessCapabilityReachesTheBar) {
  const uint32_t cap = *FindCap(PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_BAR, 1, 4);
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_DFSELECT);
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_LENGTH, 4, 4);
  dev_->ConfigWrite(cap + 16, 4, 1);  // device_feature_select = 1
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_DF);
  EXPECT_EQ(dev_->ConfigRead(cap + 16, 4), 1u);  // VERSION_1 is bit 0 of the high word
  EXPECT_EQ(dev_->ConfigRead(cap + 16, 1), 1u);
  // A window outside the BAR, or on another BAR, reads zero and writes nothing.
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_OFFSET, 4, 0x3ffe);
  EXPECT_EQ(dev_->ConfigRead(cap + 16, 4), 0u);
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_BAR, 1, 1);
  dev_->ConfigWrite(cap + VIRTIO_PCI_CAP_OFFSET, 4, 0);
  EXPECT_EQ(dev_->ConfigRead(cap + 16, 4), 0u);
}

TEST_F(VirtioRngTest, OddBarAccessesAreHarmless) {
  for (uint64_t off : {0x0ull, 0x14ull, 0x1001ull, 0x2000ull, 0x3ffcull, 0x3fffull, 0x4000ull, ~0ull - 3}) {
    W(off, 4, 0xffffffff);
    (void)R(off, 4);
  }
  W(VIRTIO_PCI_COMMON_STATUS, 2, 0xffff);  // wrong width: ignored
  EXPECT_EQ(R(VIRTIO_PCI_COMMON_STATUS, 1), 0u);
  W(VirtioPciDevice::kNotifyOffset + 4 * 900, 2, 0);  // a queue that does not exist
}

}  // namespace
}  // namespace passage
