// -dump-dtb's /pci@ECAM node: the bus, its windows, and each function with
// its BDF, IDs and BAR assignments (read back with libfdt).
#include <gtest/gtest.h>
#include <libfdt.h>

#include <string>
#include <vector>

#include "vmm/platform_fdt.h"

namespace passage {
namespace {

PlatformDescription WithPci() {
  PlatformDescription p;
  p.ram = {{0, 128 * kMiB}};
  p.pci.ecam_base = 0xe0000000;
  p.pci.ecam_size = 1 * kMiB;
  p.pci.config_port = 0xcf8;
  p.pci.io = {0xc000, 0x4000};
  p.pci.mmio32 = {0xc0000000, 0x20000000};
  p.pci.mmio64 = {0x100000000, 0x800000000};
  using Kind = PlatformPciFunction::Bar::Kind;
  p.pci.functions = {
      {"host-bridge", "host-bridge", 0, 0, 0x8086, 0x29c0, 0x060000, -1, {}},
      {"virtio-rng-pci", "virtio-rng-pci,id=rng0", 3, 0, 0x1af4, 0x1044, 0x00ff00, 19,
       {{1, Kind::kMem32, false, 0xc0000000, 0x1000}, {4, Kind::kMem64, false, 0x100000000, 0x4000}}},
      {"virtio-rng-pci", "virtio-rng-pci", 3, 1, 0x1af4, 0x1044, 0x00ff00, 20,
       {{0, Kind::kIo, false, 0xc000, 0x20}}},
  };
  return p;
}

class PlatformFdtPci : public ::testing::Test {
 protected:
  void Build(const PlatformDescription& p) {
    auto blob = BuildPlatformFdt(p);
    ASSERT_TRUE(blob.ok()) << blob.status();
    blob_ = std::move(*blob);
    ASSERT_EQ(fdt_check_header(blob_.data()), 0);
  }
  int Node(const char* path) const { return fdt_path_offset(blob_.data(), path); }
  std::string Str(const char* path, const char* prop) const {
    int len = 0;
    const void* v = fdt_getprop(blob_.data(), Node(path), prop, &len);
    if (v == nullptr || len < 1) return "<missing>";
    return std::string(static_cast<const char*>(v), len - 1);
  }
  std::vector<uint32_t> Cells(const char* path, const char* prop) const {
    int len = 0;
    const auto* v = static_cast<const fdt32_t*>(fdt_getprop(blob_.data(), Node(path), prop, &len));
    std::vector<uint32_t> out;
    for (int i = 0; v != nullptr && i < len / 4; ++i) out.push_back(fdt32_to_cpu(v[i]));
    return out;
  }
  std::vector<uint8_t> blob_;
};

TEST_F(PlatformFdtPci, BusNodeDescribesEcamAndWindows) {
  Build(WithPci());
  EXPECT_EQ(Str("/pci@e0000000", "compatible"), "pci-host-ecam-generic");
  EXPECT_EQ(Str("/pci@e0000000", "device_type"), "pci");
  EXPECT_EQ(Cells("/pci@e0000000", "reg"), (std::vector<uint32_t>{0, 0xe0000000, 0, 0x100000}));
  EXPECT_EQ(Cells("/pci@e0000000", "bus-range"), (std::vector<uint32_t>{0, 0}));
  EXPECT_EQ(Cells("/pci@e0000000", "#address-cells"), std::vector<uint32_t>{3});
  EXPECT_EQ(Cells("/pci@e0000000", "ranges"),
            (std::vector<uint32_t>{0x01000000, 0, 0xc000, 0, 0xc000, 0, 0x4000,
                                   0x02000000, 0, 0xc0000000, 0, 0xc0000000, 0, 0x20000000,
                                   0x43000000, 1, 0, 1, 0, 8, 0}));
  EXPECT_EQ(Cells("/pci@e0000000", "passage,config-ports"), (std::vector<uint32_t>{0xcf8, 8}));
}

TEST_F(PlatformFdtPci, FunctionsWithBdfIdsAndBars) {
  Build(WithPci());
  EXPECT_EQ(Str("/pci@e0000000/host-bridge@0", "passage,bdf"), "00:00.0");
  EXPECT_EQ(Cells("/pci@e0000000/host-bridge@0", "vendor-id"), std::vector<uint32_t>{0x8086});
  EXPECT_EQ(Cells("/pci@e0000000/host-bridge@0", "reg"), (std::vector<uint32_t>{0, 0, 0, 0, 0}));
  const char* rng = "/pci@e0000000/virtio-rng-pci@3";
  EXPECT_EQ(Str(rng, "passage,bdf"), "00:03.0");
  EXPECT_EQ(Str(rng, "passage,name"), "virtio-rng-pci,id=rng0");
  EXPECT_EQ(Cells(rng, "device-id"), std::vector<uint32_t>{0x1044});
  EXPECT_EQ(Cells(rng, "class-code"), std::vector<uint32_t>{0x00ff00});
  EXPECT_EQ(Cells(rng, "interrupts"), (std::vector<uint32_t>{19, 8}));
  EXPECT_EQ(Str(rng, "passage,bars"), "bar1=mem32 0xc0000000+0x1000 bar4=mem64 0x100000000+0x4000");
  // reg: config space, then each BAR's size; assigned-addresses: where it is.
  EXPECT_EQ(Cells(rng, "reg"), (std::vector<uint32_t>{0x1800, 0, 0, 0, 0,
                                                      0x02001814, 0, 0, 0, 0x1000,
                                                      0x03001820, 0, 0, 0, 0x4000}));
  EXPECT_EQ(Cells(rng, "assigned-addresses"), (std::vector<uint32_t>{0x82001814, 0, 0xc0000000, 0, 0x1000,
                                                                     0x83001820, 1, 0, 0, 0x4000}));
  const char* fn1 = "/pci@e0000000/virtio-rng-pci@3,1";
  EXPECT_EQ(Str(fn1, "passage,bdf"), "00:03.1");
  EXPECT_EQ(Str(fn1, "passage,bars"), "bar0=io 0xc000+0x20");
  EXPECT_EQ(Cells(fn1, "assigned-addresses"), (std::vector<uint32_t>{0x81001910, 0, 0xc000, 0, 0x20}));
}

TEST_F(PlatformFdtPci, ExpansionRomIsNamedAndAtConfigOffset0x30) {
  PlatformDescription p = WithPci();
  using Kind = PlatformPciFunction::Bar::Kind;
  p.pci.functions.push_back({"vfio-pci", "vfio-pci,id=edu0", 4, 0, 0x1234, 0x11e8, 0x00ff00, 21,
                             {{0, Kind::kMem32, false, 0xc0100000, 0x100000},
                              {6, Kind::kMem32, false, 0xc0200000, 0x2000}}});
  Build(p);
  const char* edu = "/pci@e0000000/vfio-pci@4";
  EXPECT_EQ(Str(edu, "passage,bars"), "bar0=mem32 0xc0100000+0x100000 rom=mem32 0xc0200000+0x2000");
  EXPECT_EQ(Cells(edu, "reg"), (std::vector<uint32_t>{0x2000, 0, 0, 0, 0,
                                                      0x02002010, 0, 0, 0, 0x100000,
                                                      0x02002030, 0, 0, 0, 0x2000}));
}

TEST_F(PlatformFdtPci, NoPciNoNode) {
  PlatformDescription p = WithPci();
  p.pci.ecam_base = 0;
  Build(p);
  EXPECT_LT(Node("/pci@e0000000"), 0);
}

}  // namespace
}  // namespace passage
