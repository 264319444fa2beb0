#include "vmm/boot_report.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "vmm/proc_self.h"

namespace passage {
namespace {

constexpr size_t kMaxLine = 256;  // bytes of a line kept for matching and the report

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::atomic<int64_t> g_start{0};

ABSL_CONST_INIT absl::Mutex g_phase_mu(absl::kConstInit);
std::vector<std::pair<std::string, int64_t>>* g_phases ABSL_GUARDED_BY(g_phase_mu) = nullptr;

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Millis(const std::optional<int64_t>& ns) {
  if (!ns) return "null";
  return absl::StrCat(*ns / 1000000, ".", absl::Dec((*ns / 1000) % 1000, absl::kZeroPad3));
}

}  // namespace

void RecordProcessStart() {
  int64_t expected = 0;
  g_start.compare_exchange_strong(expected, MonotonicNanos());
}

int64_t NanosSinceStart() {
  RecordProcessStart();
  return MonotonicNanos() - g_start.load();
}

void MarkBootPhase(absl::string_view name) {
  const int64_t now = NanosSinceStart();
  absl::MutexLock lock(&g_phase_mu);
  if (g_phases == nullptr) g_phases = new std::vector<std::pair<std::string, int64_t>>();
  for (const auto& p : *g_phases) {
    if (p.first == name) return;
  }
  g_phases->emplace_back(std::string(name), now);
}

std::vector<std::pair<std::string, int64_t>> BootPhases() {
  absl::MutexLock lock(&g_phase_mu);
  if (g_phases == nullptr) return {};
  return *g_phases;
}

void BootTimer::OnOutput(uint8_t byte) {
  const int64_t now = NanosSinceStart();
  absl::MutexLock lock(&mu_);
  if (!first_output_ns_) first_output_ns_ = now;
  if (marker_ns_) return;  // nothing more to find
  if (byte == '\n') {
    if (EndLine()) marker_ns_ = now;
    return;
  }
  if (byte == '\r') return;
  if (line_.size() < kMaxLine) line_ += static_cast<char>(byte);
}

bool BootTimer::EndLine() {
  const std::string line = std::move(line_);
  line_.clear();
  if (line.empty()) return false;
  bool match;
  if (!marker_.empty()) {
    match = line.find(marker_) != std::string::npos;
  } else if (line[0] == '[') {
    saw_log_line_ = true;
    match = false;
  } else {
    match = saw_log_line_;
  }
  if (match) marker_line_ = line;
  return match;
}

std::optional<int64_t> BootTimer::first_output_ns() const {
  absl::MutexLock lock(&mu_);
  return first_output_ns_;
}

std::optional<int64_t> BootTimer::marker_ns() const {
  absl::MutexLock lock(&mu_);
  return marker_ns_;
}

std::string BootTimer::marker_line() const {
  absl::MutexLock lock(&mu_);
  return marker_line_;
}

void SerialTap::Write(uint64_t offset, std::span<const uint8_t> data) {
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < data.size(); ++i) {
      const uint64_t reg = offset + i;
      if (reg == 3) {
        lcr_ = data[i];
      } else if (reg == 4) {
        mcr_ = data[i];
      } else if (reg == 0 && !(lcr_ & 0x80) && !(mcr_ & 0x10)) {
        timer_->OnOutput(data[i]);
      }
    }
  }
  uart_->Write(offset, data);
}

absl::StatusOr<MemoryUsage> ParseProcStatus(absl::string_view text) {
  MemoryUsage m;
  int found = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    const size_t colon = line.find(':');
    if (colon == line.npos) continue;
    const absl::string_view key = line.substr(0, colon);
    uint64_t* field = key == "VmRSS"      ? &m.vm_rss_kib
                      : key == "VmHWM"    ? &m.vm_hwm_kib
                      : key == "RssAnon"  ? &m.rss_anon_kib
                      : key == "RssFile"  ? &m.rss_file_kib
                      : key == "RssShmem" ? &m.rss_shmem_kib
                                          : nullptr;
    if (field == nullptr) continue;
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (!absl::ConsumeSuffix(&value, "kB")) {
      return absl::InvalidArgumentError(absl::StrCat("/proc/self/status: bad ", key, " line"));
    }
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(value), field)) {
      return absl::InvalidArgumentError(absl::StrCat("/proc/self/status: bad ", key, " value"));
    }
    ++found;
  }
  if (found != 5) {
    return absl::InvalidArgumentError(
        "/proc/self/status: missing VmRSS, VmHWM, RssAnon, RssFile or RssShmem");
  }
  return m;
}

uint64_t ResidentKib(const void* addr, size_t len) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(addr) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(addr) + len;
  if (len == 0 || end < start) return 0;
  // In chunks, to keep the vector small for large guests.
  constexpr size_t kChunkPages = 1 << 18;  // 1 GiB of 4 KiB pages
  std::vector<unsigned char> vec(kChunkPages);
  uint64_t pages = 0;
  for (uintptr_t p = start; p < end; p += kChunkPages * page) {
    const size_t n = std::min<uintptr_t>(kChunkPages, (end - p + page - 1) / page);
    if (mincore(reinterpret_cast<void*>(p), n * page, vec.data()) != 0) return 0;
    for (size_t i = 0; i < n; ++i) pages += vec[i] & 1;
  }
  return pages * (page / 1024);
}

absl::StatusOr<MemoryUsage> ReadOwnMemoryUsage() {
  absl::StatusOr<std::string> text = ReadProcSelfStatus();
  if (!text.ok()) return absl::UnavailableError("cannot read /proc/self/status");
  return ParseProcStatus(*text);
}

std::string TimingReportJson(const BootTimer& timer, const MemoryUsage& m,
                             absl::string_view stop) {
  std::string phases = "{";
  for (const auto& [name, ns] : BootPhases()) {
    absl::StrAppend(&phases, phases.size() > 1 ? "," : "", JsonString(name), ":", Millis(ns));
  }
  phases += "}";
  return absl::StrCat(
      "{\"first_output_ms\":", Millis(timer.first_output_ns()),
      ",\"marker_ms\":", Millis(timer.marker_ns()),
      ",\"marker_line\":", JsonString(timer.marker_line()),
      ",\"exit_ms\":", Millis(NanosSinceStart()), ",\"phases\":", phases,
      ",\"vm_rss_kib\":", m.vm_rss_kib,
      ",\"vm_hwm_kib\":", m.vm_hwm_kib, ",\"rss_anon_kib\":", m.rss_anon_kib,
      ",\"rss_file_kib\":", m.rss_file_kib, ",\"rss_shmem_kib\":", m.rss_shmem_kib,
      ",\"guest_ram_kib\":", m.guest_ram_kib, ",\"own_rss_kib\":", m.own_rss_kib(),
      ",\"stop\":", JsonString(stop), "}");
}

}  // namespace passage
