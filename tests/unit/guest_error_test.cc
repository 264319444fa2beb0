// The guest-error log (devices/guest_error.h): the rate limit itself, and
// each place passage detects guest misbehaviour: it logs, drops the access,
// and the device keeps working for a later legal access.
#include "devices/guest_error.h"

#include <gtest/gtest.h>
#include <linux/pci_regs.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/io_bus.h"
#include "devices/pci/msi.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_bar_allocator.h"
#include "devices/pci/pci_bar_mapper.h"
#include "devices/pci/pci_device.h"
#include "tests/unit/fake_interrupt_controller.h"

namespace passage {
namespace {

class NullHandler : public IoHandler {
 public:
  void Read(uint64_t, std::span<uint8_t> data) override { std::memset(data.data(), 0, data.size()); }
  void Write(uint64_t, std::span<const uint8_t>) override {}
};

// --- The limiter, with an injected clock and sink ---

class LimiterTest : public ::testing::Test {
 protected:
  GuestErrorLog log_{[this](const std::string& line) { lines_.push_back(line); },
                     [this] { return now_; }};
  std::vector<std::string> lines_;
  int64_t now_ = 1'000'000;
};

TEST_F(LimiterTest, LetsABurstThroughThenCountsAndReportsTheRest) {
  for (int i = 0; i < 25; ++i) log_.Report("nvme0", "msix-table", "bad write");
  ASSERT_EQ(lines_.size(), static_cast<size_t>(GuestErrorLog::kBurst));
  EXPECT_EQ(lines_[0], "passage: guest error: nvme0: bad write");
  EXPECT_EQ(log_.count("nvme0", "msix-table"), 25u);
  // Still inside the window: nothing more.
  now_ += GuestErrorLog::kWindowNs - 1;
  log_.Report("nvme0", "msix-table", "bad write");
  EXPECT_EQ(lines_.size(), static_cast<size_t>(GuestErrorLog::kBurst));
  // The next window: first the count held back, then the line.
  now_ += 1;
  log_.Report("nvme0", "msix-table", "bad write");
  ASSERT_EQ(lines_.size(), GuestErrorLog::kBurst + 2u);
  EXPECT_EQ(lines_[GuestErrorLog::kBurst],
            "passage: guest error: nvme0: 16 similar messages suppressed (msix-table)");
  EXPECT_EQ(lines_.back(), "passage: guest error: nvme0: bad write");
  EXPECT_EQ(log_.count("nvme0", "msix-table"), 27u);
}

TEST_F(LimiterTest, DevicesAndKindsAreLimitedApart) {
  for (int i = 0; i < 100; ++i) log_.Report("nvme0", "msix-pba", "w");
  log_.Report("nvme0", "bar-placement", "b");
  log_.Report("edu0", "msix-pba", "e");
  EXPECT_EQ(lines_.size(), GuestErrorLog::kBurst + 2u);
  EXPECT_EQ(lines_[lines_.size() - 2], "passage: guest error: nvme0: b");
  EXPECT_EQ(lines_.back(), "passage: guest error: edu0: e");
}

TEST_F(LimiterTest, FlushReportsWhatIsStillHeldBackOnce) {
  for (int i = 0; i < GuestErrorLog::kBurst + 3; ++i) log_.Report("edu0", "config-hidden", "c");
  log_.Report("nvme0", "msi", "m");  // nothing held back: no line at flush
  lines_.clear();
  log_.Flush();
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0], "passage: guest error: edu0: 3 similar messages suppressed (config-hidden)");
  log_.Flush();
  EXPECT_EQ(lines_.size(), 1u);
}

// --- Detection paths, through the process's log ---

// Captures the global log for one test and forgets its windows around it.
class GuestErrorCapture : public ::testing::Test {
 protected:
  GuestErrorCapture() {
    GuestErrorLog::Global().Reset();
    old_ = GuestErrorLog::Global().SetSink([this](const std::string& l) { lines_.push_back(l); });
  }
  ~GuestErrorCapture() override {
    GuestErrorLog::Global().SetSink(std::move(old_));
    GuestErrorLog::Global().Reset();
  }
  uint64_t Count(const std::string& device, const std::string& kind) {
    return GuestErrorLog::Global().count(device, kind);
  }
  bool Logged(const std::string& needle) {
    for (const std::string& l : lines_) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<std::string> lines_;

 private:
  GuestErrorLog::Sink old_;
};

// A function with MSI-X (4 vectors: table at BAR 2 + 0x100, PBA at + 0x800),
// MSI (2 vectors) and a 64 KiB memory BAR 0.
class HostileTarget : public PciDevice {
 public:
  explicit HostileTarget(InterruptController& irq)
      : PciDevice("hostile-test", {.vendor = 0x1234, .device = 1}),
        msix(std::make_shared<MsixCapability>(irq, "hostile-test",
                                              MsixCapability::Layout{4, 2, 0x100, 2, 0x800})),
        msi(irq, "hostile-test", 1) {
    msix_cap = *AddCapability(msix.get());
    msi_cap = *AddCapability(&msi);
  }
  std::shared_ptr<MsixCapability> msix;
  MsiCapability msi;
  uint32_t msix_cap = 0;
  uint32_t msi_cap = 0;
};

constexpr PciWindows kWindows{{0xc000, 0x4000}, {0xc0000000, 0x20000000},
                              {0x100000000, 0x10000000}};

class DetectionTest : public GuestErrorCapture {
 protected:
  DetectionTest() : dev_(irq_), table_(dev_.msix), mapper_(kWindows, pio_, mmio_, nullptr) {}

  void BarWrite(uint64_t offset, uint64_t value, size_t size) {
    uint8_t b[8];
    std::memcpy(b, &value, 8);
    table_.Write(offset, std::span<const uint8_t>(b, size));
  }
  uint64_t BarRead(uint64_t offset, size_t size) {
    uint8_t b[8] = {};
    table_.Read(offset, std::span<uint8_t>(b, size));
    uint64_t v = 0;
    std::memcpy(&v, b, size);
    return v;
  }

  // A 64 KiB memory BAR 0 placed by "firmware" at `base`, decoding on,
  // the device attached to the mapper.
  void AttachBar0At(uint64_t base) {
    PciBarSpec bar;
    bar.kind = PciBarKind::kMem32;
    bar.size = 0x10000;
    ASSERT_TRUE(dev_.DeclareBar(0, bar).ok());
    dev_.SetBarAddress(0, base);
    dev_.EnableDecoding(false, true);
    ASSERT_TRUE(dev_.Attach(&mapper_, {}).ok());
  }

  testing::FakeInterruptController irq_;
  HostileTarget dev_;
  MsixBarHandler table_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  PciBarMapper mapper_;
};

TEST_F(DetectionTest, AWellBehavedDriverLogsNothing) {
  // Firmware placement, then what Linux does: size BARs with decoding off,
  // program and unmask MSI-X vectors, enable MSI.
  ASSERT_NO_FATAL_FAILURE(AttachBar0At(0xc0000000));
  dev_.ConfigWrite(PCI_COMMAND, 2, 0);
  for (uint32_t reg = PCI_BASE_ADDRESS_0; reg <= PCI_BASE_ADDRESS_5; reg += 4) {
    dev_.ConfigWrite(reg, 4, 0xffffffff);
    dev_.ConfigWrite(reg, 4, reg == PCI_BASE_ADDRESS_0 ? 0xc0000000 : 0);
  }
  dev_.ConfigWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  BarWrite(0x100, 0xfee00000, 4);
  BarWrite(0x108, 0x41, 4);
  BarWrite(0x100 + 16, 0xfee00000ull, 8);
  BarWrite(0x10c, 0, 4);
  dev_.ConfigWrite(dev_.msix_cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
  dev_.ConfigWrite(dev_.msi_cap + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (1 << 4));
  EXPECT_TRUE(dev_.BarMapped(0));
  EXPECT_TRUE(lines_.empty()) << lines_[0];
}

TEST_F(DetectionTest, MalformedMsixTableAccessesAreLoggedAndTheTableStillWorks) {
  BarWrite(0x100 + 12, 0, 1);                // a byte into vector 0's control
  BarWrite(0x100 + 2, 0xffff, 2);            // a word
  BarWrite(0x100 + 4, ~0ull, 8);             // a misaligned qword
  BarWrite(0x100 + 4 * 16, 0x1234, 4);       // just past the table (MsixBarHandler: a gap)
  BarWrite(0x100 + 4 * 16 - 4, ~0ull, 8);    // a qword straddling its end
  // A qword starting before the table (a BAR handler that traps the whole
  // page hands on the wrapped offset).
  const uint8_t zeros[8] = {};
  dev_.msix->TableWrite(static_cast<uint64_t>(-4), zeros);
  EXPECT_EQ(BarRead(0x100 + 1, 1), 0xffu);   // a malformed read reads ones
  EXPECT_EQ(Count("hostile-test", "msix-table"), 6u);
  EXPECT_TRUE(Logged("MSI-X table write: 1-byte access at 0x"));
  EXPECT_TRUE(Logged("8-byte access at -0x4 is outside its 0x40 bytes"));
  EXPECT_TRUE(Logged("MSI-X table read: 1-byte access"));
  // Nothing changed: vector 0 is still masked with a zero message; a legal
  // write still lands.
  EXPECT_EQ(BarRead(0x100 + 12, 4), PCI_MSIX_ENTRY_CTRL_MASKBIT);
  EXPECT_EQ(BarRead(0x100, 4), 0u);
  BarWrite(0x100 + 8, 0x4321, 4);
  EXPECT_EQ(BarRead(0x100 + 8, 4), 0x4321u);
}

TEST_F(DetectionTest, PbaWritesAreLoggedAndTheStormIsRateLimited) {
  for (int i = 0; i < 100000; ++i) BarWrite(0x800, ~0ull, 8);
  EXPECT_EQ(Count("hostile-test", "msix-pba"), 100000u);
  EXPECT_LE(lines_.size(), 2u * (GuestErrorLog::kBurst + 1)) << "the test ran over one window";
  EXPECT_GE(lines_.size(), static_cast<size_t>(GuestErrorLog::kBurst));
  EXPECT_TRUE(Logged("MSI-X PBA write of 8 bytes at 0x0: the PBA is read-only; ignored"));
  EXPECT_EQ(BarRead(0x800, 8), 0u) << "no pending bit came from the writes";
}

TEST_F(DetectionTest, BarPlacedOverRamOrAnotherBarIsLoggedAndLeftUndecoded) {
  auto other = std::make_shared<NullHandler>();
  ASSERT_TRUE(mmio_.Register(0xc0100000, 0x1000, other, "other BAR").ok());
  ASSERT_NO_FATAL_FAILURE(AttachBar0At(0xc0000000));
  ASSERT_TRUE(lines_.empty());
  dev_.ConfigWrite(PCI_BASE_ADDRESS_0, 4, 0x100000);  // onto RAM
  EXPECT_FALSE(dev_.BarMapped(0));
  EXPECT_TRUE(Logged("BAR0 placed at 0x100000+0x10000, not decoded: "));
  EXPECT_TRUE(Logged("outside the PCI windows"));
  dev_.ConfigWrite(PCI_BASE_ADDRESS_0, 4, 0xc0100000);  // onto the other BAR
  EXPECT_FALSE(dev_.BarMapped(0));
  EXPECT_TRUE(Logged("overlaps other BAR"));
  EXPECT_EQ(Count("hostile-test", "bar-placement"), 2u);
  uint8_t b[4];
  EXPECT_TRUE(mmio_.Read(0xc0100000, b)) << "the other BAR is still there";
  // Restored: decodes again, and that logs nothing.
  dev_.ConfigWrite(PCI_BASE_ADDRESS_0, 4, 0xc0000000);
  EXPECT_TRUE(dev_.BarMapped(0));
  EXPECT_TRUE(mmio_.Read(0xc0000000, b));
  EXPECT_EQ(Count("hostile-test", "bar-placement"), 2u);
}

TEST_F(DetectionTest, ConfigWritesOutsideEveryCapabilityAreLoggedAndDropped) {
  const uint32_t end_of_caps = dev_.msi_cap + MsiCapability::kCapabilitySize;
  dev_.ConfigWrite(0xfc, 4, 0xdeadbeef);     // legacy space past the list
  dev_.ConfigWrite(0x100, 4, 0x12345678);    // extended space (none shown)
  dev_.ConfigWrite(0xffe, 2, 0xffff);
  EXPECT_EQ(Count("hostile-test", "config-hidden"), 3u);
  EXPECT_TRUE(Logged("config write of 0xdeadbeef (4 bytes) at 0xfc, outside every capability shown; ignored"));
  EXPECT_EQ(dev_.ConfigRead(0xfc, 4), 0u);
  EXPECT_EQ(dev_.ConfigRead(0x100, 4), 0u);
  // Writes inside the header or a capability are not this error, and work.
  dev_.ConfigWrite(PCI_INTERRUPT_LINE, 1, 0x0b);
  dev_.ConfigWrite(end_of_caps - 4, 4, 1);  // MSI mask bits
  EXPECT_EQ(dev_.ConfigRead(PCI_INTERRUPT_LINE, 1), 0x0bu);
  EXPECT_EQ(Count("hostile-test", "config-hidden"), 3u);
}

TEST_F(DetectionTest, MsiAskingForMoreVectorsThanOfferedIsClampedAndLogged) {
  dev_.ConfigWrite(dev_.msi_cap + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | (5 << 4));
  EXPECT_EQ(dev_.msi.enabled_vectors(), 2u);
  EXPECT_TRUE(Logged("MSI multiple message enable asks for 32 vectors, the function has 2; clamped"));
  // Another write to the capability (not to its control word) logs nothing new.
  dev_.ConfigWrite(dev_.msi_cap + PCI_MSI_DATA_64, 2, 0x41);
  EXPECT_EQ(Count("hostile-test", "msi"), 1u);
  EXPECT_TRUE(dev_.msi.enabled());
}

// A BAR the host fails to map (a memslot) is not the guest's doing: no
// guest-error line (PciBus::Add reports it, as one line of its own).
class FailingMemory : public DeviceMemoryMapper {
 public:
  absl::StatusOr<uint32_t> Map(uint64_t, uint64_t, void*) override {
    return absl::InternalError("KVM_SET_USER_MEMORY_REGION: injected");
  }
  void Unmap(uint32_t) override {}
};

TEST_F(GuestErrorCapture, AHostFailureToMapABarIsNotAGuestError) {
  FailingMemory memory;
  IoBus pio("pio"), mmio("mmio");
  PciBarMapper mapper(kWindows, pio, mmio, &memory);
  PciDevice dev("host-fail", {.vendor = 0x1234, .device = 2});
  static uint8_t page[4096];
  PciBarSpec bar;
  bar.kind = PciBarKind::kMem32;
  bar.size = 0x1000;
  bar.mmaps.push_back({0, 0x1000, page});
  ASSERT_TRUE(dev.DeclareBar(0, bar).ok());
  dev.SetBarAddress(0, 0xc0000000);
  dev.EnableDecoding(false, true);
  ASSERT_TRUE(dev.Attach(&mapper, {}).ok());
  EXPECT_FALSE(dev.BarMapped(0));
  EXPECT_TRUE(lines_.empty()) << lines_[0];
  dev.Detach();
}

}  // namespace
}  // namespace passage
