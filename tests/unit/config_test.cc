#include "vmm/config.h"

#include <gtest/gtest.h>

#include <initializer_list>

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

// Every error is one line and names the flag it is about.
struct BadCase {
  std::vector<absl::string_view> args;
  const char* flag;
};

class BadCommandLine : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadCommandLine, ErrorNamesFlag) {
  auto cl = ParseCommandLine(GetParam().args);
  ASSERT_FALSE(cl.ok());
  const std::string msg(cl.status().message());
  EXPECT_NE(msg.find(GetParam().flag), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, BadCommandLine,
    ::testing::Values(BadCase{{"-m", "1X", "-kernel", "k"}, "-m"},
                      BadCase{{"-m", "8K", "-kernel", "k"}, "-m"},
                      BadCase{{"-m", "size=", "-kernel", "k"}, "-m"},
                      BadCase{{"-smp", "0", "-kernel", "k"}, "-smp"},
                      BadCase{{"-smp", "256", "-kernel", "k"}, "-smp"},
                      BadCase{{"-smp", "two", "-kernel", "k"}, "-smp"},
                      BadCase{{"-smp", "cpus=2,sockets=2", "-kernel", "k"}, "-smp"},
                      BadCase{{"-serial", "tcp:1", "-kernel", "k"}, "-serial"},
                      BadCase{{"-entry", "protected", "-kernel", "k"}, "-entry"},
                      BadCase{{"-kernel"}, "-kernel"},
                      BadCase{{"-m", "1G"}, "-kernel"},
                      BadCase{{"-kernel", ""}, "-kernel"},
                      BadCase{{"-bogus", "-kernel", "k"}, "-bogus"},
                      BadCase{{"--nographic=1", "-kernel", "k"}, "-nographic"},
                      BadCase{{"stray", "-kernel", "k"}, "stray"},
                      BadCase{{"-device", "nosuch,id=x", "-kernel", "k"}, "-device"},
                      BadCase{{"-object", "nosuch,id=x", "-kernel", "k"}, "-object"},
                      BadCase{{"-kernel", "k", "-entry", "long", "-initrd", "r"}, "-initrd"}));

}  // namespace
}  // namespace passage
