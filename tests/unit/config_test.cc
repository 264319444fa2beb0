#include "vmm/config.h"

#include <gtest/gtest.h>

#include <initializer_list>

#include "tests/unit/bad_command_line.h"

namespace passage {
namespace {

absl::StatusOr<CommandLine> Parse(std::initializer_list<absl::string_view> args) {
  return ParseCommandLine(std::vector<absl::string_view>(args));
}

TEST(CommandLine, Defaults) {
  auto cl = Parse({"-kernel", "k"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->action, CommandLine::Action::kRun);
  EXPECT_EQ(cl->config.ram_size, 128ull << 20);
  EXPECT_EQ(cl->config.cpus, 1);
  EXPECT_EQ(cl->config.serial.kind, SerialConfig::Kind::kStdio);
  EXPECT_EQ(cl->config.entry, EntryMode::kAuto);
}

TEST(CommandLine, QemuSpellings) {
  auto cl = Parse({"-m", "2G", "-smp", "4", "-kernel", "bz", "-initrd", "rd", "-append",
                   "console=ttyS0 quiet", "-nographic", "-serial", "file:/tmp/x", "--enable-kvm"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->config.ram_size, 2ull << 30);
  EXPECT_EQ(cl->config.cpus, 4);
  EXPECT_EQ(cl->config.kernel, "bz");
  EXPECT_EQ(cl->config.initrd, "rd");
  EXPECT_EQ(cl->config.append, "console=ttyS0 quiet");
  EXPECT_EQ(cl->config.serial.kind, SerialConfig::Kind::kFile);
  EXPECT_EQ(cl->config.serial.path, "/tmp/x");
}

TEST(CommandLine, DoubleDashAndEqualsForms) {
  auto cl = Parse({"--m=512M", "--smp", "cpus=2", "--kernel=k", "-serial", "none"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->config.ram_size, 512ull << 20);
  EXPECT_EQ(cl->config.cpus, 2);
  EXPECT_EQ(cl->config.serial.kind, SerialConfig::Kind::kNone);
  auto m = Parse({"-m", "size=1G", "-kernel", "k"});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->config.ram_size, 1ull << 30);
}

TEST(CommandLine, HelpAndVersionWinWithoutKernel) {
  EXPECT_EQ(Parse({"--help"})->action, CommandLine::Action::kHelp);
  EXPECT_EQ(Parse({"-h"})->action, CommandLine::Action::kHelp);
  EXPECT_EQ(Parse({"--version"})->action, CommandLine::Action::kVersion);
  EXPECT_NE(UsageText().find("-kernel"), std::string::npos);
}

TEST(CommandLine, HelpListsDevicesAndObjectsWithTheirKeys) {
  const std::string help = UsageText();
  for (const char* text : {"vfio-pci", ",host=BDF", ",sysfsdev=PATH", ",iommufd=ID", ",fd=N", "virtio-rng-pci",
                           ",filename=PATH", "iommufd,id=ID", "an open /dev/iommu", "an open VFIO cdev"}) {
    EXPECT_NE(help.find(text), std::string::npos) << text << " missing from:\n" << help;
  }
}

TEST(CommandLine, SandboxOnOffAndOpen) {
  auto off = Parse({"-kernel", "k"});
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->config.sandbox);
  auto on = Parse({"-kernel", "k", "-sandbox", "on"});
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->config.sandbox);
  EXPECT_EQ(on->config.sandbox_open, SandboxOpen::kAuto);
  auto deny = Parse({"-kernel", "k", "-sandbox", "on,open=deny"});
  ASSERT_TRUE(deny.ok()) << deny.status();
  EXPECT_EQ(deny->config.sandbox_open, SandboxOpen::kDeny);
  auto allow = Parse({"-kernel", "k", "--sandbox=on,open=allow"});
  ASSERT_TRUE(allow.ok()) << allow.status();
  EXPECT_EQ(allow->config.sandbox_open, SandboxOpen::kAllow);
  auto explicit_off = Parse({"-kernel", "k", "-sandbox", "off"});
  ASSERT_TRUE(explicit_off.ok());
  EXPECT_FALSE(explicit_off->config.sandbox);
}

TEST(CommandLine, PassedFdsAreListedWithTheirPlaces) {
  auto cl = Parse({"-kernel", "k", "-accel", "kvm,fd=5", "-object", "iommufd,id=i0,fd=3", "-device",
                   "vfio-pci,fd=4,iommufd=i0,id=d0", "-device", "virtio-rng-pci,fd=0"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const std::vector<FdUse> uses = PassedFdUses(cl->config);
  ASSERT_EQ(uses.size(), 4u);
  EXPECT_EQ(uses[0].fd, 5);
  EXPECT_EQ(uses[0].where, "-accel kvm");
  EXPECT_EQ(uses[1].fd, 3);
  EXPECT_EQ(uses[1].where, "-object iommufd,id=i0");
  EXPECT_EQ(uses[2].fd, 4);
  EXPECT_EQ(uses[2].where, "-device vfio-pci,id=d0");
  EXPECT_EQ(uses[3].fd, 0);
  EXPECT_EQ(uses[3].where, "-device virtio-rng-pci");
  EXPECT_TRUE(PassedFdUses(Parse({"-kernel", "k"})->config).empty());
}

using testing::BadCase;
using testing::BadCommandLine;

TEST_P(BadCommandLine, ErrorNamesFlag) {
  auto cl = ParseCommandLine(GetParam().args);
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(cl.status().message());
  EXPECT_EQ(msg.rfind(GetParam().flag, 0), 0u) << msg;
  EXPECT_NE(msg.find(GetParam().message), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, BadCommandLine,
    ::testing::Values(BadCase{"MemoryUnit", {"-m", "1X", "-kernel", "k"}, "-m"},
                      BadCase{"MemoryTooSmall", {"-m", "8K", "-kernel", "k"}, "-m"},
                      BadCase{"MemoryEmptySize", {"-m", "size=", "-kernel", "k"}, "-m"},
                      BadCase{"SmpZero", {"-smp", "0", "-kernel", "k"}, "-smp"},
                      BadCase{"SmpTooMany", {"-smp", "256", "-kernel", "k"}, "-smp"},
                      BadCase{"SmpWord", {"-smp", "two", "-kernel", "k"}, "-smp"},
                      BadCase{"SmpTopology", {"-smp", "cpus=2,sockets=2", "-kernel", "k"}, "-smp"},
                      BadCase{"SerialBackend", {"-serial", "tcp:1", "-kernel", "k"}, "-serial"},
                      BadCase{"EntryMode", {"-entry", "protected", "-kernel", "k"}, "-entry"},
                      BadCase{"KernelMissingValue", {"-kernel"}, "-kernel"},
                      BadCase{"KernelMissing", {"-m", "1G"}, "-kernel", "required"},
                      BadCase{"KernelEmpty", {"-kernel", ""}, "-kernel"},
                      BadCase{"UnknownOption", {"-bogus", "-kernel", "k"}, "-bogus"},
                      BadCase{"FlagWithValue", {"--nographic=1", "-kernel", "k"}, "-nographic"},
                      BadCase{"StrayArgument", {"stray", "-kernel", "k"}, "unexpected argument 'stray'"},
                      // Found by fuzz_cmdline: user text with a newline made a two-line
                      // error; it is escaped now.
                      BadCase{"StrayArgumentNewline", {"a\nb", "-kernel", "k"}, "unexpected argument 'a\\nb'"},
                      BadCase{"UnknownOptionNewline", {"-x\n", "-kernel", "k"}, "-x\\n", "unknown option"},
                      BadCase{"MemoryNewline", {"-m", "1\n", "-kernel", "k"}, "-m", "'1\\n'"},
                      BadCase{"SmpNewline", {"-smp", "two\n", "-kernel", "k"}, "-smp", "'two\\n'"},
                      BadCase{"SmpTrailingNewline", {"-smp", "2\n", "-kernel", "k"}, "-smp", "'2\\n'"},
                      BadCase{"SmpPlus", {"-smp", "+2", "-kernel", "k"}, "-smp"},
                      BadCase{"CpuModelNewline", {"-cpu", "a\nb", "-kernel", "k"}, "-cpu", "'a\\nb'"},
                      BadCase{"CpuFeatureNewline", {"-cpu", "host,-a\nb", "-kernel", "k"}, "-cpu", "'a\\nb'"},
                      BadCase{"SerialNewline", {"-serial", "a\nb", "-kernel", "k"}, "-serial", "'a\\nb'"},
                      BadCase{"EntryNewline", {"-entry", "a\nb", "-kernel", "k"}, "-entry", "'a\\nb'"},
                      BadCase{"AccelNewline", {"-accel", "k\nvm", "-kernel", "k"}, "-accel", "'k\\nvm'"},
                      BadCase{"AccelKeyNewline", {"-accel", "kvm,a\nb=1", "-kernel", "k"}, "-accel", "'a\\nb'"},
                      BadCase{"UnknownDevice", {"-device", "nosuch,id=x", "-kernel", "k"}, "-device"},
                      BadCase{"UnknownObject", {"-object", "nosuch,id=x", "-kernel", "k"}, "-object"},
                      // Found by fuzz_cmdline: an -object id was only checked for its first
                      // letter and went into messages raw (a newline made them two lines).
                      // Object ids follow the -device rule now.
                      BadCase{"ObjectIdNewline", {"-object", "iommufd,id=a\nb,hot=1", "-kernel", "k"},
                              "-object iommufd", "id='a\\nb' must start with a letter and use only"},
                      BadCase{"ObjectIdBlank", {"-object", "iommufd,id=a b", "-kernel", "k"}, "-object iommufd",
                              "id='a b' must start with a letter"},
                      BadCase{"ObjectIdDigitFirst", {"-object", "iommufd,id=0a", "-kernel", "k"}, "-object iommufd",
                              "id='0a' must start with a letter"},
                      BadCase{"InitrdWithEntry", {"-kernel", "k", "-entry", "long", "-initrd", "r"}, "-initrd"},
                      // Usage errors come before "-kernel is required".
                      BadCase{"UnknownDeviceWithoutKernel", {"-device", "foo"}, "-device", "unknown device 'foo'"},
                      BadCase{"UnknownObjectWithoutKernel", {"-object", "foo,id=x"}, "-object", "unknown object type 'foo'"},
                      BadCase{"VfioFdWithoutIommufdWithoutKernel", {"-device", "vfio-pci,fd=3"}, "-device vfio-pci",
                              "fd= needs iommufd="},
                      BadCase{"AccelBadFdWithoutKernel", {"-accel", "kvm,fd=x"}, "-accel kvm", "fd='x'"},
                      // One strict fd= parser for -accel, -object and -device.
                      BadCase{"AccelFdPlus", {"-accel", "kvm,fd=+3", "-kernel", "k"}, "-accel kvm", "fd='+3'"},
                      BadCase{"AccelFdBlank", {"-accel", "kvm,fd= 3", "-kernel", "k"}, "-accel kvm", "fd=' 3'"},
                      BadCase{"AccelFdNegative", {"-accel", "kvm,fd=-1", "-kernel", "k"}, "-accel kvm", "fd='-1'"},
                      BadCase{"AccelFdHuge", {"-accel", "kvm,fd=99999999999", "-kernel", "k"}, "-accel kvm",
                              "not a file descriptor number"},
                      BadCase{"ObjectFdPlus", {"-object", "iommufd,id=i,fd=+3", "-kernel", "k"}, "-object iommufd,id=i",
                              "fd='+3' is not a file descriptor number"},
                      BadCase{"ObjectFdBlank", {"-object", "iommufd,id=i,fd=3 ", "-kernel", "k"}, "-object iommufd,id=i",
                              "fd='3 '"},
                      BadCase{"DeviceFdPlus", {"-device", "vfio-pci,fd=+3,iommufd=i", "-kernel", "k"},
                              "-device vfio-pci", "fd='+3'"},
                      BadCase{"SandboxNotOnOff", {"-sandbox", "maybe", "-kernel", "k"}, "-sandbox", "'maybe' is not on or off"},
                      BadCase{"SandboxOpenBad", {"-sandbox", "on,open=sometimes", "-kernel", "k"}, "-sandbox",
                              "open='sometimes': use auto, allow or deny"},
                      BadCase{"SandboxOpenWhenOff", {"-sandbox", "off,open=deny", "-kernel", "k"}, "-sandbox",
                              "open= needs on"},
                      BadCase{"SandboxUnknownKey", {"-sandbox", "on,spawn=deny", "-kernel", "k"}, "-sandbox",
                              "unknown key 'spawn' (known: open)"},
                      // The same fd named twice, across -accel, -object and -device.
                      BadCase{"FdAccelAndObject", {"-accel", "kvm,fd=3", "-object", "iommufd,id=i0,fd=3", "-kernel", "k"},
                              "-object iommufd,id=i0", "fd=3 is already used by -accel kvm"},
                      BadCase{"FdObjectAndDevice",
                              {"-object", "iommufd,id=i0,fd=4", "-device", "vfio-pci,fd=4,iommufd=i0,id=d0", "-kernel", "k"},
                              "-device vfio-pci,id=d0", "fd=4 is already used by -object iommufd,id=i0"},
                      BadCase{"FdTwoObjects",
                              {"-object", "iommufd,id=a,fd=3", "-object", "iommufd,id=b,fd=3", "-kernel", "k"},
                              "-object iommufd,id=b", "fd=3 is already used by -object iommufd,id=a"},
                      BadCase{"FdTwoDevices",
                              {"-device", "virtio-rng-pci,fd=0", "-device", "virtio-rng-pci,id=r,fd=0", "-kernel", "k"},
                              "-device virtio-rng-pci,id=r", "fd=0 is already used by -device virtio-rng-pci"},
                      BadCase{"FdAccelAndDevice", {"-accel", "kvm,fd=7", "-device", "virtio-rng-pci,fd=7"},
                              "-device virtio-rng-pci", "fd=7 is already used by -accel kvm"}),
    testing::BadCaseName);

}  // namespace
}  // namespace passage
