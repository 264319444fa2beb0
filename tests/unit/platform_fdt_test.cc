// -dump-dtb: the platform description as a flattened device tree, read back
// with libfdt.
#include "vmm/platform_fdt.h"

#include <gtest/gtest.h>
#include <libfdt.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace passage {
namespace {

PlatformDescription Sample() {
  PlatformDescription p;
  p.cpus = 3;
  p.ram = {{0, 3 * kGiB}, {4 * kGiB, 1 * kGiB}};
  p.reserved = {{0xa0000, 0x40000, E820Type::kReserved},
                {0xe0000, 0x1000, E820Type::kAcpi},
                {0xfeffc000, 0x4000, E820Type::kReserved}};
  p.ioapic_addr = 0xfec00000;
  p.lapic_addr = 0xfee00000;
  using Bus = PlatformDevice::Bus;
  p.devices = {{"serial", "ns16550a", Bus::kPort, 0x3f8, 8, 4},
               {"debug-exit", "passage,debug-exit", Bus::kPort, 0x501, 1, -1},
               {"acpi-ged", "passage,acpi-ged", Bus::kPort, 0x610, 0x10, 9, /*irq_level_high=*/true},
               {"debug", "passage,debug-mmio", Bus::kMmio, 0xfef00000, 0x1000, -1}};
  p.stdout_device = "serial";
  p.acpi = {0xe0000, 0xe0000, 0x2b0};
  p.boot = {"/k/bzImage", "linux-64bit", 0x1000200, "console=ttyS0", "/k/initrd",
            0x3ff00000, 0x100000};
  return p;
}

class PlatformFdt : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blob = BuildPlatformFdt(Sample());
    ASSERT_TRUE(blob.ok()) << blob.status();
    blob_ = std::move(*blob);
    ASSERT_EQ(fdt_check_header(blob_.data()), 0);
    ASSERT_EQ(fdt_totalsize(blob_.data()), blob_.size());
  }
  const void* fdt() const { return blob_.data(); }
  int Node(const char* path) const { return fdt_path_offset(fdt(), path); }
  std::string Str(const char* path, const char* prop) const {
    int len = 0;
    const void* v = fdt_getprop(fdt(), Node(path), prop, &len);
    if (v == nullptr || len < 1) return "<missing>";
    return std::string(static_cast<const char*>(v), len - 1);
  }
  std::vector<uint32_t> Cells(const char* path, const char* prop) const {
    int len = 0;
    const auto* v = static_cast<const fdt32_t*>(fdt_getprop(fdt(), Node(path), prop, &len));
    std::vector<uint32_t> out;
    for (int i = 0; v != nullptr && i < len / 4; ++i) out.push_back(fdt32_to_cpu(v[i]));
    return out;
  }
  uint64_t U64(const char* path, const char* prop) const {
    int len = 0;
    const void* v = fdt_getprop(fdt(), Node(path), prop, &len);
    if (v == nullptr || len != 8) return ~0ull;
    fdt64_t be;  // property values are only 4-byte aligned
    std::memcpy(&be, v, 8);
    return fdt64_to_cpu(be);
  }
  std::vector<uint8_t> blob_;
};

TEST_F(PlatformFdt, RootAndChosen) {
  EXPECT_EQ(Str("/", "compatible"), "passage,x86-64-vm");
  EXPECT_EQ(Cells("/", "#address-cells"), std::vector<uint32_t>{2});
  EXPECT_EQ(Str("/chosen", "bootargs"), "console=ttyS0");
  EXPECT_EQ(Str("/chosen", "stdout-path"), "/isa/serial@i3f8");
  EXPECT_EQ(Str("/chosen", "passage,kernel"), "/k/bzImage");
  EXPECT_EQ(Str("/chosen", "passage,boot-protocol"), "linux-64bit");
  EXPECT_EQ(U64("/chosen", "passage,entry"), 0x1000200u);
  EXPECT_EQ(U64("/chosen", "linux,initrd-start"), 0x3ff00000u);
  EXPECT_EQ(U64("/chosen", "linux,initrd-end"), 0x40000000u);
}

TEST_F(PlatformFdt, CpusAndMemory) {
  int cpus = 0;
  int node;
  fdt_for_each_subnode(node, fdt(), Node("/cpus")) {
    int len;
    const auto* reg = static_cast<const fdt32_t*>(fdt_getprop(fdt(), node, "reg", &len));
    ASSERT_NE(reg, nullptr);
    EXPECT_EQ(fdt32_to_cpu(*reg), static_cast<uint32_t>(cpus));
    ++cpus;
  }
  EXPECT_EQ(cpus, 3);
  EXPECT_EQ(Str("/memory@0", "device_type"), "memory");
  EXPECT_EQ(Cells("/memory@0", "reg"), (std::vector<uint32_t>{0, 0, 0, 0xc0000000}));
  EXPECT_EQ(Cells("/memory@100000000", "reg"), (std::vector<uint32_t>{1, 0, 0, 0x40000000}));
}

TEST_F(PlatformFdt, ReservedMemoryAcpiAndInterruptControllers) {
  EXPECT_GE(Node("/reserved-memory/reserved@a0000"), 0);
  EXPECT_EQ(Str("/reserved-memory/acpi@e0000", "passage,e820-type"), "ACPI");
  EXPECT_EQ(Cells("/reserved-memory/reserved@feffc000", "reg"),
            (std::vector<uint32_t>{0, 0xfeffc000, 0, 0x4000}));
  EXPECT_EQ(U64("/acpi", "passage,rsdp"), 0xe0000u);
  EXPECT_EQ(Cells("/acpi", "reg"), (std::vector<uint32_t>{0, 0xe0000, 0, 0x2b0}));
  const int ioapic = Node("/interrupt-controller@fec00000");
  ASSERT_GE(ioapic, 0);
  EXPECT_NE(fdt_getprop(fdt(), ioapic, "interrupt-controller", nullptr), nullptr);
  EXPECT_EQ(Cells("/", "interrupt-parent"), Cells("/interrupt-controller@fec00000", "phandle"));
  EXPECT_GE(Node("/local-apic@fee00000"), 0);
}

TEST_F(PlatformFdt, Devices) {
  EXPECT_EQ(Str("/isa/serial@i3f8", "compatible"), "ns16550a");
  EXPECT_EQ(Cells("/isa/serial@i3f8", "reg"), (std::vector<uint32_t>{1, 0x3f8, 8}));
  EXPECT_EQ(Cells("/isa/serial@i3f8", "interrupts"), (std::vector<uint32_t>{4, 0}));
  EXPECT_EQ(Cells("/isa/debug-exit@i501", "reg"), (std::vector<uint32_t>{1, 0x501, 1}));
  EXPECT_EQ(fdt_getprop(fdt(), Node("/isa/debug-exit@i501"), "interrupts", nullptr), nullptr);
  // A level-triggered, active-high line (intel,ce4100-ioapic cell 2).
  EXPECT_EQ(Cells("/isa/acpi-ged@i610", "interrupts"), (std::vector<uint32_t>{9, 2}));
  EXPECT_EQ(Str("/debug@fef00000", "compatible"), "passage,debug-mmio");
  EXPECT_EQ(Cells("/debug@fef00000", "reg"), (std::vector<uint32_t>{0, 0xfef00000, 0, 0x1000}));
}

TEST(PlatformFdtWrite, WritesTheFileAndNamesTheFlagOnError) {
  char path[] = "/tmp/passage-dtb-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_TRUE(WritePlatformFdt(Sample(), path).ok());
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  const std::string data = s.str();
  unlink(path);
  ASSERT_GE(data.size(), 40u);
  EXPECT_EQ(fdt_check_header(data.data()), 0);
  EXPECT_EQ(fdt_totalsize(data.data()), data.size());

  absl::Status bad = WritePlatformFdt(Sample(), "/nonexistent-dir/x.dtb");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message().substr(0, 11), "-dump-dtb: ");
}

TEST(PlatformFdtWrite, ManyCpusStillFit) {
  PlatformDescription p = Sample();
  p.cpus = 255;  // grows the blob past the first buffer size
  auto blob = BuildPlatformFdt(p);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(fdt_check_header(blob->data()), 0);
  EXPECT_GE(fdt_path_offset(blob->data(), "/cpus/cpu@fe"), 0);
}

}  // namespace
}  // namespace passage
