#include "tests/bench/vm_meter.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/bench/bench_core.h"

namespace passage::bench {
namespace {

absl::Status BadFlag(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

// "Name:   123 kB" -> 123 when the line's key is NAME.
std::optional<uint64_t> KibField(absl::string_view line, absl::string_view name) {
  if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, ":")) return std::nullopt;
  line = absl::StripAsciiWhitespace(line);
  if (!absl::ConsumeSuffix(&line, "kB")) return std::nullopt;
  uint64_t v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &v)) return std::nullopt;
  return v;
}

// A mapping's first line in smaps: "start-end perms offset dev inode [path]".
bool IsMappingHeader(absl::string_view line) {
  const size_t dash = line.find('-');
  if (dash == 0 || dash == line.npos) return false;
  for (size_t i = 0; i < dash; ++i) {
    if (!absl::ascii_isxdigit(line[i])) return false;
  }
  return true;
}

}  // namespace

std::string VmRunUsage() {
  return "usage: bench-vmrun --ram SIZE --serial FILE [--marker TEXT] [--end-marker TEXT] "
         "-- VMM ARGS...\n"
         "Runs VMM with its console on stdout, copies the console to FILE, and prints one JSON\n"
         "line: seconds from start to the first console line containing --marker (init_s), to\n"
         "the one containing --end-marker (end_s) and to the VMM's exit (exit_s); the VMM's\n"
         "memory at both lines (VmRSS, VmHWM, the guest RAM resident in mappings of at\n"
         "least --ram bytes, the rest as own_rss_kib) and its peak RSS (ru_maxrss).\n"
         "Exit status: the VMM's (128+N when signal N ended it); 2 on a usage error.\n";
}

absl::StatusOr<VmRunFlags> ParseVmRunFlags(const std::vector<std::string>& args) {
  VmRunFlags f;
  size_t i = 0;
  for (; i < args.size() && args[i] != "--"; ++i) {
    std::string flag = args[i], value;
    if (flag == "--help" || flag == "-h") return absl::CancelledError(VmRunUsage());
    const size_t eq = flag.find('=');
    if (absl::StartsWith(flag, "--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (absl::StartsWith(flag, "--")) {
      if (i + 1 >= args.size()) return BadFlag(flag, "needs a value");
      value = args[++i];
    } else {
      return BadFlag(flag, "unexpected argument (the VMM goes after --)");
    }
    if (flag == "--marker" || flag == "--end-marker") {
      if (value.empty()) return BadFlag(flag, "empty text");
      (flag == "--marker" ? f.marker : f.end_marker) = value;
    } else if (flag == "--ram") {
      std::optional<uint64_t> size = ParseSize(value);
      if (!size || *size < (1u << 20))
        return BadFlag(flag, "'" + value + "' is not a size of at least 1M");
      f.ram_kib = *size >> 10;
    } else if (flag == "--serial") {
      if (value.empty()) return BadFlag(flag, "empty path");
      f.serial_path = value;
    } else {
      return BadFlag(flag, "unknown flag");
    }
  }
  if (f.ram_kib == 0) return BadFlag("--ram", "required (the VMM's guest RAM size)");
  if (f.serial_path.empty()) return BadFlag("--serial", "required");
  if (i + 1 >= args.size()) return BadFlag("--", "no VMM command after --");
  f.command.assign(args.begin() + i + 1, args.end());
  return f;
}

absl::StatusOr<VmMemory> ParseVmMemory(absl::string_view status, absl::string_view smaps,
                                       uint64_t ram_kib) {
  VmMemory m;
  bool rss = false, hwm = false;
  for (absl::string_view line : absl::StrSplit(status, '\n')) {
    if (auto v = KibField(line, "VmRSS")) m.vm_rss_kib = *v, rss = true;
    if (auto v = KibField(line, "VmHWM")) m.vm_hwm_kib = *v, hwm = true;
  }
  if (!rss || !hwm) return absl::InvalidArgumentError("status: no VmRSS or VmHWM line");
  // Each mapping: its header, then "Size:", "Rss:", ... lines.
  uint64_t size = 0;
  bool in_mapping = false, have_size = false;
  for (absl::string_view line : absl::StrSplit(smaps, '\n')) {
    if (IsMappingHeader(line)) {
      in_mapping = true;
      have_size = false;
      continue;
    }
    if (!in_mapping) continue;
    if (auto v = KibField(line, "Size")) {
      size = *v;
      have_size = true;
    } else if (auto v = KibField(line, "Rss")) {
      if (!have_size) return absl::InvalidArgumentError("smaps: an Rss line before its Size line");
      if (size >= ram_kib) {
        m.guest_ram_rss_kib += *v;
        ++m.guest_maps;
      }
    }
  }
  return m;
}

nlohmann::json VmMemoryJson(const VmMemory& m) {
  return {{"vm_rss_kib", m.vm_rss_kib},
          {"vm_hwm_kib", m.vm_hwm_kib},
          {"guest_ram_rss_kib", m.guest_ram_rss_kib},
          {"guest_maps", m.guest_maps},
          {"own_rss_kib", m.own_rss_kib()}};
}

std::vector<std::string> LineSplitter::Feed(absl::string_view bytes) {
  std::vector<std::string> lines;
  for (char c : bytes) {
    if (c == '\n') {
      lines.push_back(std::move(partial_));
      partial_.clear();
    } else if (c != '\r') {
      partial_.push_back(c);
    }
  }
  return lines;
}

}  // namespace passage::bench
