#include "vmm/device_config.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "vmm/config.h"
#include "vmm/device_registry.h"
#include "tests/unit/bad_command_line.h"

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

// Every error is one line starting with -device and saying what is wrong
// (the test is config_test.cc's). No -kernel: a device's error comes first.
using testing::BadCase;
using testing::BadCommandLine;

INSTANTIATE_TEST_SUITE_P(
    Device, BadCommandLine,
    ::testing::Values(
        BadCase{"UnknownDevice", {"-device", "e1000"}, "-device", "unknown device 'e1000' (known: "},
        BadCase{"Empty", {"-device", ""}, "-device", "missing device name"},
        // User text in messages is escaped: still one line.
        BadCase{"NewlineAsName", {"-device", "\n"}, "-device", "unknown device '\\n'"},
        BadCase{"NewlineInKey", {"-device", "virtio-rng-pci,fo\no=1"}, "-device virtio-rng-pci", "unknown key 'fo\\no'"},
        BadCase{"NewlineInAddr", {"-device", "virtio-rng-pci,addr=3\n"}, "-device virtio-rng-pci", "addr='3\\n'"},
        BadCase{"NewlineInFd", {"-device", "vfio-pci,fd=\n7"}, "-device vfio-pci", "fd='\\n7'"},
        BadCase{"NoName", {"-device", "id=x"}, "-device", "missing device name"},
        BadCase{"RngUnknownKey", {"-device", "virtio-rng-pci,foo=1"}, "-device virtio-rng-pci",
                ": unknown key 'foo' (known: addr, id, filename, fd)"},
        BadCase{"VfioUnknownKey", {"-device", "vfio-pci,host=00:04.0,foo=1"}, "-device vfio-pci",
                ": unknown key 'foo' (known: addr, id, host, sysfsdev, fd, iommufd)"},
        BadCase{"NotKeyValue", {"-device", "virtio-rng-pci,id=r,bogus"}, "-device", "'bogus' is not key=value"},
        BadCase{"KeyTwice", {"-device", "virtio-rng-pci,id=r,id=s"}, "-device", "key 'id' given twice"},
        BadCase{"IdStartsWithDigit", {"-device", "virtio-rng-pci,id=9lives"}, "-device virtio-rng-pci", "id='9lives' must start with a letter"},
        BadCase{"IdWithBlank", {"-device", "virtio-rng-pci,id=a b"}, "-device virtio-rng-pci", "must start with a letter"},
        BadCase{"SlotTooHigh", {"-device", "virtio-rng-pci,id=r,addr=0x20"}, "-device virtio-rng-pci,id=r: addr='0x20'"},
        BadCase{"SlotZero", {"-device", "virtio-rng-pci,addr=0"}, "-device virtio-rng-pci", "slot 0 holds the host bridge"},
        BadCase{"RngFileAndFd", {"-device", "virtio-rng-pci,filename=/a,fd=3"}, "-device virtio-rng-pci", "filename= and fd= are exclusive"},
        BadCase{"RngFdNegative", {"-device", "virtio-rng-pci,fd=-1"}, "-device virtio-rng-pci", "fd='-1' is not a file descriptor number"},
        BadCase{"RngFdWord", {"-device", "virtio-rng-pci,fd=x"}, "-device virtio-rng-pci", "fd='x'"},
        BadCase{"RngFdLeadingBlank", {"-device", "virtio-rng-pci,fd= 7"}, "-device virtio-rng-pci", "fd=' 7'"},
        BadCase{"RngFdPlus", {"-device", "virtio-rng-pci,fd=+7"}, "-device virtio-rng-pci", "fd='+7'"},
        BadCase{"RngFdEmpty", {"-device", "virtio-rng-pci,fd="}, "-device virtio-rng-pci", "fd=''"},
        BadCase{"RngFilenameEmpty", {"-device", "virtio-rng-pci,filename="}, "-device virtio-rng-pci", "filename= is empty"},
        BadCase{"VfioNoSource", {"-device", "vfio-pci,id=d"}, "-device vfio-pci,id=d", "exactly one of host=, sysfsdev= or fd="},
        BadCase{"VfioHostAndFd", {"-device", "vfio-pci,host=00:04.0,fd=5,iommufd=i"}, "-device vfio-pci", "exactly one of"},
        BadCase{"VfioHostAndSysfsdev", {"-device", "vfio-pci,host=00:04.0,sysfsdev=/s"}, "-device vfio-pci", "exactly one of"},
        BadCase{"VfioFdWithoutIommufd", {"-device", "vfio-pci,fd=5"}, "-device vfio-pci", "fd= needs iommufd="},
        BadCase{"VfioFdNegative", {"-device", "vfio-pci,fd=-2,iommufd=i"}, "-device vfio-pci", "fd='-2'"},
        BadCase{"VfioBadHost", {"-device", "vfio-pci,host=nonsense"}, "-device vfio-pci", "nonsense"},
        BadCase{"VfioEmptyIommufd", {"-device", "vfio-pci,host=00:04.0,iommufd="}, "-device vfio-pci", "iommufd= is empty"},
        BadCase{"VfioEmptySysfsdev", {"-device", "vfio-pci,sysfsdev="}, "-device vfio-pci", "sysfsdev= is empty"},
        BadCase{"DuplicateId", {"-device", "virtio-rng-pci,id=a", "-device", "virtio-rng-pci,id=a"},
                "-device virtio-rng-pci,id=a", ": duplicate id 'a'"},
        BadCase{"DuplicateAddr", {"-device", "virtio-rng-pci,id=a,addr=3", "-device", "virtio-rng-pci,id=b,addr=03.0"},
                "-device virtio-rng-pci,id=b", ": addr=03.0 is already used by -device virtio-rng-pci,id=a"},
        BadCase{"FunctionWithoutZero", {"-device", "virtio-rng-pci,addr=5.1"}, "-device virtio-rng-pci",
                "addr=05.1 needs a device at function 0 of slot 05"}),
    testing::BadCaseName);

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
