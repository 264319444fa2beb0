// bench-vmrun's pure parts (tests/bench/vm_meter.h): flags, a VMM's memory
// from /proc/PID/status and smaps, console lines.

#include "tests/bench/vm_meter.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace passage::bench {
namespace {

TEST(VmRunFlags, Parses) {
  absl::StatusOr<VmRunFlags> f =
      ParseVmRunFlags({"--ram", "512M", "--serial=/tmp/s", "--end-marker", "power-off", "--",
                       "qemu", "-m", "512M"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->ram_kib, 512u * 1024);
  EXPECT_EQ(f->serial_path, "/tmp/s");
  EXPECT_EQ(f->marker, "RIG-BOOT");
  EXPECT_EQ(f->end_marker, "power-off");
  EXPECT_EQ(f->command, (std::vector<std::string>{"qemu", "-m", "512M"}));
}

TEST(VmRunFlags, ErrorsNameTheFlag) {
  struct {
    std::vector<std::string> args;
    const char* flag;
  } cases[] = {
      {{"--serial", "s", "--", "vmm"}, "--ram"},
      {{"--ram", "512K", "--serial", "s", "--", "vmm"}, "--ram"},
      {{"--ram", "x", "--serial", "s", "--", "vmm"}, "--ram"},
      {{"--ram", "1G", "--", "vmm"}, "--serial"},
      {{"--ram", "1G", "--serial", "s"}, "--"},
      {{"--ram", "1G", "--serial", "s", "--"}, "--"},
      {{"--ram", "1G", "--serial", "s", "--bogus", "1", "--", "vmm"}, "--bogus"},
      {{"--ram", "1G", "--serial", "s", "--marker=", "--", "vmm"}, "--marker"},
      {{"--ram", "1G", "--serial", "s", "vmm"}, "vmm"},
      {{"--ram"}, "--ram"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<VmRunFlags> f = ParseVmRunFlags(c.args);
    ASSERT_FALSE(f.ok()) << c.flag;
    EXPECT_TRUE(absl::StartsWith(f.status().message(), std::string(c.flag) + ":"))
        << f.status().message();
    EXPECT_EQ(f.status().message().find('\n'), absl::string_view::npos);
  }
}

constexpr char kStatus[] =
    "Name:\tqemu-system-x86\nVmPeak:\t 1000000 kB\nVmHWM:\t  700000 kB\nVmRSS:\t  650000 kB\n"
    "RssAnon:\t  600000 kB\n";
// Guest RAM (512 MiB, 300 MiB of it resident), a small anonymous heap, a
// file mapping, and a mapping larger than RAM that still counts as RAM.
constexpr char kSmaps[] =
    "7f0000000000-7f0020000000 rw-p 00000000 00:00 0 \n"
    "Size:             524288 kB\nKernelPageSize:        4 kB\nRss:              307200 kB\n"
    "Pss:              307200 kB\nVmFlags: rd wr mr mw me ac sd\n"
    "55d4a0000000-55d4a0100000 rw-p 00000000 00:00 0                          [heap]\n"
    "Size:               1024 kB\nRss:                900 kB\n"
    "7f1000000000-7f1000200000 r-xp 00000000 08:01 1234                       /usr/bin/qemu\n"
    "Size:               2048 kB\nRss:               1500 kB\n";

TEST(VmMemory, GuestRamIsTheMappingsAtLeastRamLarge) {
  absl::StatusOr<VmMemory> m = ParseVmMemory(kStatus, kSmaps, 512 * 1024);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->vm_rss_kib, 650000u);
  EXPECT_EQ(m->vm_hwm_kib, 700000u);
  EXPECT_EQ(m->guest_ram_rss_kib, 307200u);
  EXPECT_EQ(m->guest_maps, 1);
  EXPECT_EQ(m->own_rss_kib(), 650000 - 307200);
  // With a smaller -m the 2 MiB text mapping would count too: the rule is by size.
  m = ParseVmMemory(kStatus, kSmaps, 2048);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->guest_maps, 2);
  EXPECT_EQ(m->guest_ram_rss_kib, 307200u + 1500u);
  nlohmann::json j = VmMemoryJson(*m);
  EXPECT_EQ(j["own_rss_kib"], 650000 - 307200 - 1500);
}

TEST(VmMemory, BadInput) {
  EXPECT_FALSE(ParseVmMemory("Name: x\n", kSmaps, 1024).ok());  // no VmRSS/VmHWM
  EXPECT_FALSE(ParseVmMemory(kStatus, "7f00-7f01 rw-p 0 0:0 0\nRss: 4 kB\n", 1024).ok());
  // No mappings at all (the process just exited): nothing counted as RAM.
  absl::StatusOr<VmMemory> m = ParseVmMemory(kStatus, "", 1024);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->guest_maps, 0);
}

TEST(LineSplitter, SplitsAcrossFeeds) {
  LineSplitter s;
  EXPECT_TRUE(s.Feed("RIG-").empty());
  EXPECT_EQ(s.Feed("BOOT {}\r\nnext"), (std::vector<std::string>{"RIG-BOOT {}"}));
  EXPECT_EQ(s.Feed(" line\n\n"), (std::vector<std::string>{"next line", ""}));
}

}  // namespace
}  // namespace passage::bench
