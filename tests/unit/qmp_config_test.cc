// -qmp, -chardev and -mon: the monitors a command line asks for.
#include <gtest/gtest.h>

#include <initializer_list>

#include "tests/unit/bad_command_line.h"
#include "vmm/config.h"

namespace passage {
namespace {

absl::StatusOr<CommandLine> Parse(std::initializer_list<absl::string_view> args) {
  return ParseCommandLine(std::vector<absl::string_view>(args));
}

TEST(QmpCommandLine, QmpAndLibvirtSpellings) {
  auto cl = Parse({"-kernel", "k", "-qmp", "unix:/run/a.qmp,server=on,wait=off", "-chardev",
                   "socket,id=charmonitor,path=/run/b.qmp,server=on,wait=off", "-mon",
                   "chardev=charmonitor,id=monitor,mode=control", "-qmp", "unix:/run/c,,d=e.qmp,server=on"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  const std::vector<MonitorConfig>& m = cl->config.monitors;
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].path, "/run/a.qmp");
  EXPECT_EQ(m[0].label, "-qmp unix:/run/a.qmp");
  EXPECT_EQ(m[1].path, "/run/c,d=e.qmp");  // ",," is a comma; '=' is part of the path
  EXPECT_EQ(m[2].path, "/run/b.qmp");
  EXPECT_EQ(m[2].label, "-chardev socket,id=charmonitor");
}

TEST(QmpCommandLine, NoMonitorsByDefault) {
  auto cl = Parse({"-kernel", "k"});
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->config.monitors.empty());
}

TEST(QmpCommandLine, WaitOffIsTheDefaultAndOnOffSpellings) {
  auto cl = Parse({"-kernel", "k", "-qmp", "unix:/a,server=yes", "-qmp", "unix:/b,wait=no,server=true"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->config.monitors.size(), 2u);
}

TEST(QmpCommandLine, HelpListsTheMonitorFlags) {
  const std::string help = UsageText();
  for (const char* text : {"-qmp unix:PATH,server=on", "-chardev socket,id=ID,path=PATH", "-mon chardev=ID,mode=control"}) {
    EXPECT_NE(help.find(text), std::string::npos) << text << " missing from:\n" << help;
  }
}

using testing::BadCase;
using testing::BadCommandLine;

// The test itself (TEST_P ErrorNamesFlag) is in config_test.cc.
INSTANTIATE_TEST_SUITE_P(
    Qmp, BadCommandLine,
    ::testing::Values(
        BadCase{"QmpTcp", {"-qmp", "tcp:localhost:4444,server=on", "-kernel", "k"}, "-qmp", "only unix sockets"},
        BadCase{"QmpNoPath", {"-qmp", "unix:,server=on", "-kernel", "k"}, "-qmp", "socket path"},
        BadCase{"QmpNoServer", {"-qmp", "unix:/a", "-kernel", "k"}, "-qmp unix:/a", "server=on is required"},
        BadCase{"QmpServerOff", {"-qmp", "unix:/a,server=off", "-kernel", "k"}, "-qmp unix:/a", "server=on"},
        BadCase{"QmpWaitOn", {"-qmp", "unix:/a,server=on,wait=on", "-kernel", "k"}, "-qmp unix:/a", "wait=on"},
        BadCase{"QmpWaitBad", {"-qmp", "unix:/a,server=on,wait=maybe", "-kernel", "k"}, "-qmp unix:/a", "wait='maybe'"},
        BadCase{"QmpUnknownKey", {"-qmp", "unix:/a,server=on,telnet=on", "-kernel", "k"}, "-qmp unix:/a",
                "unknown key 'telnet'"},
        BadCase{"QmpBareServer", {"-qmp", "unix:/a,server,nowait", "-kernel", "k"}, "-qmp", "'server' is not key=value"},
        BadCase{"QmpMissingValue", {"-kernel", "k", "-qmp"}, "-qmp", "missing value"},
        BadCase{"QmpSamePathTwice", {"-qmp", "unix:/a,server=on", "-qmp", "unix:/a,server=on", "-kernel", "k"},
                "-qmp unix:/a", "already used by -qmp unix:/a"},
        BadCase{"ChardevNotSocket", {"-chardev", "stdio,id=c", "-mon", "chardev=c,mode=control", "-kernel", "k"},
                "-chardev", "only socket chardevs"},
        BadCase{"ChardevNoId", {"-chardev", "socket,path=/a,server=on", "-kernel", "k"}, "-chardev socket",
                "id= is required"},
        BadCase{"ChardevNoPath", {"-chardev", "socket,id=c,server=on", "-mon", "chardev=c,mode=control", "-kernel", "k"},
                "-chardev socket,id=c", "path= is required"},
        BadCase{"ChardevTcp", {"-chardev", "socket,id=c,host=::1,port=4444,server=on", "-kernel", "k"},
                "-chardev socket,id=c", "only unix sockets"},
        BadCase{"ChardevNoServer", {"-chardev", "socket,id=c,path=/a", "-mon", "chardev=c,mode=control", "-kernel", "k"},
                "-chardev socket,id=c", "server=on is required"},
        BadCase{"ChardevWaitOn",
                {"-chardev", "socket,id=c,path=/a,server=on,wait=on", "-mon", "chardev=c,mode=control", "-kernel", "k"},
                "-chardev socket,id=c", "wait=on"},
        BadCase{"ChardevDuplicateId",
                {"-chardev", "socket,id=c,path=/a,server=on", "-chardev", "socket,id=c,path=/b,server=on", "-kernel", "k"},
                "-chardev socket,id=c", "duplicate id"},
        BadCase{"ChardevUnused", {"-chardev", "socket,id=c,path=/a,server=on", "-kernel", "k"}, "-chardev socket,id=c",
                "not used by any -mon"},
        BadCase{"MonNoChardev", {"-mon", "mode=control", "-kernel", "k"}, "-mon", "chardev= is required"},
        BadCase{"MonUnknownChardev", {"-mon", "chardev=x,mode=control", "-kernel", "k"}, "-mon chardev=x",
                "no -chardev with id 'x'"},
        BadCase{"MonReadline",
                {"-chardev", "socket,id=c,path=/a,server=on", "-mon", "chardev=c,mode=readline", "-kernel", "k"},
                "-mon chardev=c", "mode=control is required"},
        BadCase{"MonNoMode", {"-chardev", "socket,id=c,path=/a,server=on", "-mon", "chardev=c", "-kernel", "k"},
                "-mon chardev=c", "mode=control is required"},
        BadCase{"MonTwice",
                {"-chardev", "socket,id=c,path=/a,server=on", "-mon", "chardev=c,mode=control", "-mon",
                 "chardev=c,mode=control", "-kernel", "k"},
                "-mon chardev=c", "already has a monitor"},
        BadCase{"MonPretty",
                {"-chardev", "socket,id=c,path=/a,server=on", "-mon", "chardev=c,mode=control,pretty=on", "-kernel", "k"},
                "-mon chardev=c", "unknown key 'pretty'"},
        BadCase{"ChardevAndQmpSamePath",
                {"-qmp", "unix:/a,server=on", "-chardev", "socket,id=c,path=/a,server=on", "-mon",
                 "chardev=c,mode=control", "-kernel", "k"},
                "-chardev socket,id=c", "already used by -qmp unix:/a"},
        // Usage errors before "-kernel is required".
        BadCase{"QmpWithoutKernel", {"-qmp", "unix:/a"}, "-qmp unix:/a", "server=on"}),
    testing::BadCaseName);

}  // namespace
}  // namespace passage
