#include "vmm/device_config.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "vmm/config.h"
#include "vmm/device_registry.h"

namespace passage {
namespace {

absl::StatusOr<CommandLine> Parse(std::vector<absl::string_view> args) {
  args.insert(args.begin(), {"-kernel", "k"});
  return ParseCommandLine(args);
}

TEST(KeyValues, SplitsAndUnescapes) {
  auto kv = ParseKeyValues("virtio-rng-pci,id=a,filename=/tmp/x,,y", "driver");
  ASSERT_TRUE(kv.ok()) << kv.status();
  ASSERT_EQ(kv->pairs.size(), 3u);
  EXPECT_EQ(*kv->Find("driver"), "virtio-rng-pci");
  EXPECT_EQ(*kv->Find("filename"), "/tmp/x,y");
  EXPECT_EQ(kv->Find("addr"), nullptr);
  auto explicit_driver = ParseKeyValues("id=a,driver=virtio-rng-pci", "driver");
  ASSERT_TRUE(explicit_driver.ok());
  EXPECT_EQ(*explicit_driver->Find("driver"), "virtio-rng-pci");
  auto empty_value = ParseKeyValues("x,filename=", "driver");
  ASSERT_TRUE(empty_value.ok());
  EXPECT_EQ(*empty_value->Find("filename"), "");
}

TEST(KeyValues, Errors) {
  EXPECT_FALSE(ParseKeyValues("a,id=x,id=y", "driver").ok());  // duplicate key
  EXPECT_FALSE(ParseKeyValues("a,b", "driver").ok());          // not key=value
  EXPECT_FALSE(ParseKeyValues("a,=x", "driver").ok());         // no key
  EXPECT_FALSE(ParseKeyValues("a,,b,", "driver").ok());        // trailing empty element
  EXPECT_FALSE(ParseKeyValues("", "driver").ok());
}

TEST(PciSlotParse, QemuSpellings) {
  EXPECT_EQ(*ParsePciSlot("3"), (PciSlot{3, 0}));
  EXPECT_EQ(*ParsePciSlot("0x1f"), (PciSlot{31, 0}));
  EXPECT_EQ(*ParsePciSlot("1f.7"), (PciSlot{31, 7}));
  EXPECT_EQ(*ParsePciSlot("04.2"), (PciSlot{4, 2}));
  EXPECT_EQ(*ParsePciSlot("a"), (PciSlot{10, 0}));
  for (const char* bad : {"", "20", "0x20", "3.8", "3.", ".1", "g", "3.1.1", "-1", "100", "3.10", " 3", "3 ",
                          "3. 1", "+3", "0x"}) {
    EXPECT_FALSE(ParsePciSlot(bad).ok()) << bad;
  }
}

TEST(DeviceConfig, VirtioRng) {
  auto cl = Parse({"-device", "virtio-rng-pci,id=rng0,addr=3.0,filename=/dev/random", "-device", "virtio-rng-pci"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const auto& d = cl->config.device_configs;
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].driver, "virtio-rng-pci");
  EXPECT_EQ(d[0].id, "rng0");
  EXPECT_EQ(d[0].addr, (PciSlot{3, 0}));
  EXPECT_EQ(d[0].props.at("filename"), "/dev/random");
  EXPECT_FALSE(d[1].addr.has_value());
  EXPECT_EQ(d[1].Label(), "-device virtio-rng-pci");
  auto fd = Parse({"-device", "virtio-rng-pci,fd=7"});
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(fd->config.device_configs[0].props.at("fd"), "7");
}

// Every error is one line naming -device and what is wrong.
struct BadDevice {
  const char* name;  // the test's name: stable, readable
  std::vector<absl::string_view> args;
  const char* message;
};

// gtest prints a parameter it cannot format as raw bytes (pointers included).
void PrintTo(const BadDevice& c, std::ostream* os) { *os << c.name; }

class BadDeviceTest : public ::testing::TestWithParam<BadDevice> {};

TEST_P(BadDeviceTest, ErrorNamesDeviceAndProblem) {
  auto cl = Parse(GetParam().args);
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(cl.status().message());
  EXPECT_EQ(msg.rfind("-device", 0), 0u) << msg;
  EXPECT_NE(msg.find(GetParam().message), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, BadDeviceTest,
    ::testing::Values(
        BadDevice{"UnknownDevice", {"-device", "e1000"}, "unknown device 'e1000' (known: "},
        BadDevice{"Empty", {"-device", ""}, "missing device name"},
        // User text in messages is escaped: still one line.
        BadDevice{"NewlineAsName", {"-device", "\n"}, "unknown device '\\n'"},
        BadDevice{"NewlineInKey", {"-device", "virtio-rng-pci,fo\no=1"}, "unknown key 'fo\\no'"},
        BadDevice{"NewlineInAddr", {"-device", "virtio-rng-pci,addr=3\n"}, "addr='3\\n'"},
        BadDevice{"NewlineInFd", {"-device", "vfio-pci,fd=\n7"}, "-device vfio-pci: fd='\\n7'"},
        BadDevice{"NoName", {"-device", "id=x"}, "missing device name"},
        BadDevice{"RngUnknownKey", {"-device", "virtio-rng-pci,foo=1"},
                  "-device virtio-rng-pci: unknown key 'foo' (known: addr, id, filename, fd)"},
        BadDevice{"VfioUnknownKey", {"-device", "vfio-pci,host=00:04.0,foo=1"},
                  "-device vfio-pci: unknown key 'foo' (known: addr, id, host, sysfsdev, fd, iommufd)"},
        BadDevice{"NotKeyValue", {"-device", "virtio-rng-pci,id=r,bogus"}, "'bogus' is not key=value"},
        BadDevice{"KeyTwice", {"-device", "virtio-rng-pci,id=r,id=s"}, "key 'id' given twice"},
        BadDevice{"IdStartsWithDigit", {"-device", "virtio-rng-pci,id=9lives"}, "id='9lives' must start with a letter"},
        BadDevice{"IdWithBlank", {"-device", "virtio-rng-pci,id=a b"}, "must start with a letter"},
        BadDevice{"SlotTooHigh", {"-device", "virtio-rng-pci,id=r,addr=0x20"}, "-device virtio-rng-pci,id=r: addr='0x20'"},
        BadDevice{"SlotZero", {"-device", "virtio-rng-pci,addr=0"}, "slot 0 holds the host bridge"},
        BadDevice{"RngFileAndFd", {"-device", "virtio-rng-pci,filename=/a,fd=3"}, "filename= and fd= are exclusive"},
        BadDevice{"RngFdNegative", {"-device", "virtio-rng-pci,fd=-1"}, "fd='-1' is not a file descriptor number"},
        BadDevice{"RngFdWord", {"-device", "virtio-rng-pci,fd=x"}, "fd='x'"},
        BadDevice{"RngFdLeadingBlank", {"-device", "virtio-rng-pci,fd= 7"}, "fd=' 7'"},
        BadDevice{"RngFdPlus", {"-device", "virtio-rng-pci,fd=+7"}, "fd='+7'"},
        BadDevice{"RngFdEmpty", {"-device", "virtio-rng-pci,fd="}, "fd=''"},
        BadDevice{"RngFilenameEmpty", {"-device", "virtio-rng-pci,filename="}, "filename= is empty"},
        BadDevice{"VfioNoSource", {"-device", "vfio-pci,id=d"}, "exactly one of host=, sysfsdev= or fd="},
        BadDevice{"VfioHostAndFd", {"-device", "vfio-pci,host=00:04.0,fd=5,iommufd=i"}, "exactly one of"},
        BadDevice{"VfioHostAndSysfsdev", {"-device", "vfio-pci,host=00:04.0,sysfsdev=/s"}, "exactly one of"},
        BadDevice{"VfioFdWithoutIommufd", {"-device", "vfio-pci,fd=5"}, "fd= needs iommufd="},
        BadDevice{"VfioFdNegative", {"-device", "vfio-pci,fd=-2,iommufd=i"}, "fd='-2'"},
        BadDevice{"VfioBadHost", {"-device", "vfio-pci,host=nonsense"}, "-device vfio-pci: "},
        BadDevice{"VfioEmptyIommufd", {"-device", "vfio-pci,host=00:04.0,iommufd="}, "iommufd= is empty"},
        BadDevice{"VfioEmptySysfsdev", {"-device", "vfio-pci,sysfsdev="}, "sysfsdev= is empty"},
        BadDevice{"DuplicateId", {"-device", "virtio-rng-pci,id=a", "-device", "virtio-rng-pci,id=a"},
                  "-device virtio-rng-pci,id=a: duplicate id 'a'"},
        BadDevice{"DuplicateAddr", {"-device", "virtio-rng-pci,id=a,addr=3", "-device", "virtio-rng-pci,id=b,addr=03.0"},
                  "-device virtio-rng-pci,id=b: addr=03.0 is already used by -device virtio-rng-pci,id=a"},
        BadDevice{"FunctionWithoutZero", {"-device", "virtio-rng-pci,addr=5.1"},
                  "addr=05.1 needs a device at function 0 of slot 05"}),
    [](const ::testing::TestParamInfo<BadDevice>& info) { return std::string(info.param.name); });

TEST(DeviceConfig, VfioPciKeys) {
  auto cl = Parse({"-object", "iommufd,id=i0", "-device", "vfio-pci,host=00:04.0", "-device",
                   "vfio-pci,host=0000:00:05.0,iommufd=i0,id=b", "-device", "vfio-pci,fd=5,iommufd=i0,addr=7",
                   "-device", "vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:00:06.0"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const auto& d = cl->config.device_configs;
  ASSERT_EQ(d.size(), 4u);
  EXPECT_EQ(d[0].props.at("host"), "00:04.0");
  EXPECT_EQ(d[0].fd, -1);
  EXPECT_EQ(d[1].props.at("iommufd"), "i0");
  EXPECT_EQ(d[2].fd, 5);
  EXPECT_EQ(d[2].props.at("fd"), "5");
  EXPECT_EQ(d[3].props.at("sysfsdev"), "/sys/bus/pci/devices/0000:00:06.0");
}

TEST(ObjectConfig, Iommufd) {
  auto o = ParseObjectConfig("iommufd,id=iommufd0");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->type, "iommufd");
  EXPECT_EQ(o->id, "iommufd0");
  EXPECT_EQ(o->fd, -1);
  auto f = ParseObjectConfig("iommufd,id=x,fd=7");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->fd, 7);
}

TEST(ObjectConfig, BadInputNamesTheFlag) {
  for (const char* bad : {"", "memory-backend-ram,id=m", "iommufd", "iommufd,id=", "iommufd,id=1x",
                          "iommufd,id=a,fd=-1", "iommufd,id=a,fd=x", "iommufd,id=a,fd=+1", "iommufd,id=a,fd= 1",
                          "iommufd,id=a,bogus=1", "iommufd,id=a,id=b", "iommufd,id=\n"}) {
    auto o = ParseObjectConfig(bad);
    ASSERT_FALSE(o.ok()) << bad;
    const std::string msg(o.status().message());
    EXPECT_EQ(msg.rfind("-object", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NE(ParseObjectConfig("iommufd,id=a,bogus=1").status().message().find("(known: id, fd)"),
            absl::string_view::npos);
  auto a = ParseObjectConfig("iommufd,id=a,fd=3");
  auto b = ParseObjectConfig("iommufd,id=a");
  EXPECT_FALSE(ValidateObjectConfigs({*a, *b}).ok()) << "duplicate id";
}

TEST(DeviceConfig, MultifunctionWithFunctionZeroIsFine) {
  auto cl = Parse({"-device", "virtio-rng-pci,addr=5.1", "-device", "virtio-rng-pci,addr=5.0"});
  EXPECT_TRUE(cl.ok()) << cl.status();
}

TEST(DeviceConfig, KnownDevicesListed) {
  const std::vector<std::string> names = KnownDeviceNames();
  EXPECT_NE(std::find(names.begin(), names.end(), "virtio-rng-pci"), names.end());
  auto cl = Parse({"-device", "e1000"});
  EXPECT_NE(cl.status().message().find("virtio-rng-pci"), absl::string_view::npos) << cl.status();
  EXPECT_NE(UsageText().find("virtio-rng-pci"), std::string::npos);
}

}  // namespace
}  // namespace passage
