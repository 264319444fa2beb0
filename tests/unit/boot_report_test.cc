// --report-timing: the marker rules, the UART tap, /proc/self/status parsing.
#include "vmm/boot_report.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "vmm/config.h"

namespace passage {
namespace {

void Feed(BootTimer& t, const std::string& text) {
  for (char c : text) t.OnOutput(static_cast<uint8_t>(c));
}

TEST(BootTimer, DefaultMarkerIsTheFirstUntimestampedLineAfterTheKernelLog) {
  BootTimer t("");
  EXPECT_FALSE(t.first_output_ns().has_value());
  Feed(t, "Decompressing Linux... Parsing ELF... done.\r\nBooting the kernel.\r\n");
  EXPECT_TRUE(t.first_output_ns().has_value());
  EXPECT_FALSE(t.marker_ns().has_value()) << "decompressor lines come before the log";
  Feed(t, "[    0.000000] Linux version 7.3.4\r\n\r\n[    1.2] Run /init as init process\r\n");
  EXPECT_FALSE(t.marker_ns().has_value());
  Feed(t, "hello from init");
  EXPECT_FALSE(t.marker_ns().has_value()) << "only a complete line counts";
  Feed(t, "\r\n[    2.0] later kernel line\nsecond init line\n");
  ASSERT_TRUE(t.marker_ns().has_value());
  EXPECT_EQ(t.marker_line(), "hello from init");
  EXPECT_GE(*t.marker_ns(), *t.first_output_ns());
}

TEST(BootTimer, ExplicitMarker) {
  BootTimer t("RIG-BOOT");
  Feed(t, "[ 0.1] kernel\nsome init line\n");
  EXPECT_FALSE(t.marker_ns().has_value());
  Feed(t, "RIG-BOOT {\"image\":\"l2\"}\n");
  ASSERT_TRUE(t.marker_ns().has_value());
  EXPECT_EQ(t.marker_line(), "RIG-BOOT {\"image\":\"l2\"}");
}

TEST(BootTimer, LongLinesAreBounded) {
  BootTimer t("NEEDLE");
  Feed(t, std::string(100000, 'x') + "NEEDLE\n");  // past the kept prefix: not seen
  EXPECT_FALSE(t.marker_ns().has_value());
  Feed(t, "NEEDLE" + std::string(100000, 'y') + "\n");
  ASSERT_TRUE(t.marker_ns().has_value());
  EXPECT_LE(t.marker_line().size(), 256u);
}

class RecordingUart : public IoHandler {
 public:
  void Read(uint64_t, std::span<uint8_t> data) override { data[0] = 0x60; }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    writes.push_back({offset, data[0]});
  }
  std::vector<std::pair<uint64_t, uint8_t>> writes;
};

TEST(SerialTap, SeesTransmittedBytesOnlyAndForwardsEverything) {
  auto uart = std::make_shared<RecordingUart>();
  auto timer = std::make_shared<BootTimer>("ab");
  SerialTap tap(uart, timer);
  auto w = [&](uint64_t off, uint8_t v) { tap.Write(off, {&v, 1}); };
  w(3, 0x80);  // DLAB on: offset 0 is the divisor latch
  w(0, 'a');
  w(3, 0x03);  // DLAB off
  w(4, 0x10);  // loopback: not transmitted
  w(0, 'a');
  w(4, 0x0b);
  w(0, 'a');
  w(0, 'b');
  w(0, '\n');
  EXPECT_EQ(uart->writes.size(), 9u);
  ASSERT_TRUE(timer->marker_ns().has_value());
  EXPECT_EQ(timer->marker_line(), "ab");  // the divisor and loopback bytes were not output
  uint8_t v = 0;
  tap.Read(5, {&v, 1});
  EXPECT_EQ(v, 0x60);
}

TEST(ProcStatus, ParsesTheFields) {
  auto m = ParseProcStatus(
      "Name:\tpassage\nVmPeak:\t  123 kB\nVmHWM:\t    5000 kB\nVmRSS:\t    4000 kB\n"
      "RssAnon:\t     600 kB\nRssFile:\t    1400 kB\nRssShmem:\t    2000 kB\nThreads:\t3\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->vm_rss_kib, 4000u);
  EXPECT_EQ(m->vm_hwm_kib, 5000u);
  EXPECT_EQ(m->rss_anon_kib, 600u);
  EXPECT_EQ(m->rss_file_kib, 1400u);
  EXPECT_EQ(m->rss_shmem_kib, 2000u);
  EXPECT_FALSE(ParseProcStatus("VmRSS:\t12 kB\n").ok());
  EXPECT_FALSE(ParseProcStatus("VmRSS:\tlots kB\nVmHWM:\t1 kB\nRssAnon:\t1 kB\n"
                               "RssFile:\t1 kB\nRssShmem:\t1 kB\n").ok());
  auto own = ReadOwnMemoryUsage();
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_GT(own->vm_rss_kib, 0u);
}

TEST(TimingReport, IsOneJsonLine) {
  BootTimer t("");
  Feed(t, "[ 0.1] k\n\"quoted\\\" init\n");
  MemoryUsage m{10, 20, 3, 4, 5, 6};
  const std::string json = TimingReportJson(t, m, "power-off (ACPI S5)");
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  EXPECT_NE(json.find("\"marker_line\":\"\\\"quoted\\\\\\\" init\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"guest_ram_kib\":6"), std::string::npos) << json;
  EXPECT_NE(json.find("\"own_rss_kib\":4"), std::string::npos) << json;  // VmRSS - guest RAM
  EXPECT_NE(json.find("\"stop\":\"power-off (ACPI S5)\""), std::string::npos) << json;
  BootTimer silent("");
  EXPECT_NE(TimingReportJson(silent, m, "x").find("\"first_output_ms\":null"), std::string::npos);
}

TEST(TimingReport, PhasesInOrderFirstMarkCounts) {
  // Other tests in this binary may have marked phases already; only ours are checked.
  MarkBootPhase("test-a");
  MarkBootPhase("test-b");
  MarkBootPhase("test-a");  // ignored: the first mark of a name counts
  std::vector<std::pair<std::string, int64_t>> phases = BootPhases();
  int a = -1, b = -1, count_a = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    if (phases[i].first == "test-a") a = static_cast<int>(i), ++count_a;
    if (phases[i].first == "test-b") b = static_cast<int>(i);
  }
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_LT(a, b);
  EXPECT_EQ(count_a, 1);
  EXPECT_LE(phases[a].second, phases[b].second);
  BootTimer t("");
  const std::string json = TimingReportJson(t, MemoryUsage{}, "x");
  const size_t pa = json.find("\"test-a\":"), pb = json.find("\"test-b\":");
  ASSERT_NE(json.find("\"phases\":{"), std::string::npos) << json;
  ASSERT_NE(pa, std::string::npos) << json;
  ASSERT_NE(pb, std::string::npos) << json;
  EXPECT_LT(pa, pb) << json;
}

TEST(ResidentKib, CountsTouchedPagesOnly) {
  const size_t len = 64 * 4096;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  EXPECT_EQ(ResidentKib(p, len), 0u);
  for (size_t i = 0; i < 10; ++i) static_cast<char*>(p)[i * 4096 * 2] = 1;
  EXPECT_EQ(ResidentKib(p, len), 40u);
  munmap(p, len);
  EXPECT_EQ(ResidentKib(p, 0), 0u);
}

TEST(TimingFlags, MarkerNeedsReportTiming) {
  auto cl = ParseCommandLine({"-kernel", "k", "-timing-marker", "X"});
  ASSERT_FALSE(cl.ok());
  EXPECT_EQ(cl.status().message(), "-timing-marker: only with --report-timing");
  cl = ParseCommandLine({"-kernel", "k", "--report-timing", "-timing-marker", "X"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->config.timing_marker, "X");
  EXPECT_TRUE(cl->config.report_timing);
}

TEST(CpuFlag, HostMinusFeatures) {
  auto cl = ParseCommandLine({"-kernel", "k", "-cpu", "host,-xsave,-x2apic"});
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->config.cpu_disabled, (std::vector<std::string>{"xsave", "x2apic"}));
  for (const char* bad : {"max", "host,+avx", "host,-nonsense", "host,"}) {
    auto r = ParseCommandLine({"-kernel", "k", "-cpu", bad});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().substr(0, 6), "-cpu: ") << r.status();
  }
}

}  // namespace
}  // namespace passage
