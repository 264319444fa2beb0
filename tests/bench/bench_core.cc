#include "tests/bench/bench_core.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace passage::bench {
namespace {

absl::Status BadFlag(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

bool IsBdf(const std::string& s) {
  unsigned d, b, sl, f;
  char tail;
  return s.size() == 12 && std::sscanf(s.c_str(), "%4x:%2x:%2x.%1x%c", &d, &b, &sl, &f, &tail) == 4;
}

}  // namespace

std::optional<uint64_t> ParseSize(std::string text) {
  uint64_t unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
      case 'k':
        unit = 1ull << 10;
        break;
      case 'M':
      case 'm':
        unit = 1ull << 20;
        break;
      case 'G':
      case 'g':
        unit = 1ull << 30;
        break;
      default:
        break;
    }
    if (unit != 1) text.pop_back();
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(text, &n) || n == 0 || n > (UINT64_MAX / unit)) return std::nullopt;
  return n * unit;
}

std::string Usage() {
  return "usage: passage-bench [--device BDF|sysfsdev=PATH|fd=N]... "
         "[--min-size SIZE]\n"
         "                     [--max-size SIZE] [--reps N] [--json FILE] "
         "[--only map|setup]\n";
}

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  Flags f;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    const size_t eq = flag.find('=');
    if (absl::StartsWith(flag, "--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (flag == "--help" || flag == "-h") {
      return absl::CancelledError(Usage());
    } else if (absl::StartsWith(flag, "--")) {
      if (i + 1 >= args.size()) return BadFlag(flag, "needs a value");
      value = args[++i];
    } else {
      return BadFlag(flag, "unexpected argument (flags start with --)");
    }
    if (flag == "--device") {
      DeviceArg d{value, "", -1};
      if (absl::StartsWith(value, "sysfsdev=")) {
        d.sysfs_path = value.substr(9);
        if (d.sysfs_path.empty()) return BadFlag(flag, "sysfsdev= needs a path");
      } else if (absl::StartsWith(value, "fd=")) {
        if (!absl::SimpleAtoi(value.substr(3), &d.fd) || d.fd < 0) {
          return BadFlag(flag, absl::StrCat("'", value, "': fd= needs a number >= 0"));
        }
      } else if (IsBdf(value)) {
        d.sysfs_path = "/sys/bus/pci/devices/" + value;
      } else {
        return BadFlag(
            flag, absl::StrCat("'", value, "' is not a BDF (0000:00:03.0), sysfsdev=PATH or fd=N"));
      }
      f.devices.push_back(d);
    } else if (flag == "--min-size" || flag == "--max-size") {
      std::optional<uint64_t> size = ParseSize(value);
      if (!size || *size % 4096 != 0) {
        return BadFlag(flag, absl::StrCat("'", value, "' is not a size in whole pages (64M, 1G)"));
      }
      (flag == "--min-size" ? f.min_size : f.max_size) = *size;
    } else if (flag == "--reps") {
      if (!absl::SimpleAtoi(value, &f.repetitions) || f.repetitions < 1 || f.repetitions > 1000) {
        return BadFlag(flag, absl::StrCat("'", value, "' is not a count from 1 to 1000"));
      }
    } else if (flag == "--json") {
      if (value.empty()) return BadFlag(flag, "needs a file name");
      f.json_path = value;
    } else if (flag == "--only") {
      if (value != "map" && value != "setup") return BadFlag(flag, "is map or setup");
      f.run_map = value == "map";
      f.run_setup = value == "setup";
    } else {
      return BadFlag(flag, "unknown flag");
    }
  }
  if (f.max_size != 0 && f.max_size < f.min_size) {
    return BadFlag("--max-size", "is below --min-size");
  }
  return f;
}

uint64_t DefaultMaxSize(uint64_t mem_available, uint64_t min_size) {
  uint64_t cap = std::min<uint64_t>(mem_available / 2, 4ull << 30);
  uint64_t size = min_size;
  while (size * 2 <= cap) size *= 2;
  return size;
}

std::vector<uint64_t> Sizes(uint64_t min_size, uint64_t max_size) {
  std::vector<uint64_t> out;
  for (uint64_t s = min_size; s != 0 && s <= max_size; s *= 2) out.push_back(s);
  return out;
}

Summary Summarize(std::vector<double> samples) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  s.median = n % 2 ? samples[n / 2] : (samples[n / 2 - 1] + samples[n / 2]) / 2;
  s.min = samples.front();
  s.max = samples.back();
  return s;
}

nlohmann::json SamplesJson(const std::vector<double>& samples) {
  const Summary s = Summarize(samples);
  return {{"samples", samples}, {"median", s.median}, {"min", s.min}, {"max", s.max}};
}

namespace {

double Median(const nlohmann::json& record, const char* field) {
  return record.at(field).at("median").get<double>();
}

nlohmann::json Ratio(const std::string& name, double num, double den, nlohmann::json where) {
  where["name"] = name;
  where["value"] = den > 0 ? nlohmann::json(num / den) : nlohmann::json(nullptr);
  return where;
}

}  // namespace

nlohmann::json Ratios(const nlohmann::json& records) {
  // (page, size) -> method -> map median; device -> method -> setup median.
  std::map<std::pair<std::string, uint64_t>, std::map<std::string, double>> map;
  std::map<std::string, std::map<std::string, double>> setup;
  std::set<std::tuple<std::string, uint64_t, std::string>> huge;  // (page, size, method)
  for (const nlohmann::json& r : records) {
    const std::string kind = r.at("kind");
    if (kind == "map") {
      map[{r.at("page"), r.at("size")}][r.at("method")] = Median(r, "map_s");
      // Huge pages asked for are not always given (shmem THP on "advise"
      // gives a memfd mapped by fd only 4 KiB pages): believe /proc/meminfo.
      if (r.contains("huge_kb_after_map") && Median(r, "huge_kb_after_map") > 0) {
        huge.insert({r.at("page").get<std::string>(), r.at("size").get<uint64_t>(),
                     r.at("method").get<std::string>()});
      }
    } else if (kind == "setup") {
      setup[r.at("device")][r.at("method")] = Median(r, "setup_s");
    }
  }
  const std::vector<std::pair<std::string, std::string>> map_pairs = {
      {kIommufdMap, kType1},    {kIommufdMapFile, kType1},    {kIommufdMapFile, kIommufdMap},
      {kIommufdMap, kPopulate}, {kIommufdMapFile, kPopulate}, {kType1, kPopulate}};
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [key, methods] : map) {
    for (const auto& [num, den] : map_pairs) {
      if (methods.count(num) && methods.count(den)) {
        nlohmann::json r = Ratio(absl::StrCat(num, "/", den), methods.at(num), methods.at(den),
                                 {{"kind", "map"}, {"page", key.first}, {"size", key.second}});
        r["huge"] = huge.count({key.first, key.second, num}) > 0 &&
                    huge.count({key.first, key.second, den}) > 0;
        out.push_back(r);
      }
    }
  }
  for (const auto& [device, methods] : setup) {
    if (methods.count(kCdev) && methods.count(kLegacy)) {
      out.push_back(Ratio(absl::StrCat(kCdev, "/", kLegacy), methods.at(kCdev), methods.at(kLegacy),
                          {{"kind", "setup"}, {"device", device}}));
    }
  }
  return out;
}

nlohmann::json Targets(const nlohmann::json& ratios) {
  struct Target {
    const char* name;
    const char* ratio;
    double limit;
    bool huge_only;
  };
  const Target targets[] = {
      {"iommufd map <= 1.0x type1 at every size", "iommufd_map/type1", 1.0, false},
      {"MAP_FILE with huge pages within 2x populate", "iommufd_map_file/populate", 2.0, true},
      {"cdev setup <= 0.5x legacy", "cdev/legacy", 0.5, false},
  };
  nlohmann::json out = nlohmann::json::array();
  for (const Target& t : targets) {
    int seen = 0, missed = 0, not_huge = 0;
    std::string worst;
    double worst_value = -1;
    for (const nlohmann::json& r : ratios) {
      if (r.at("name") != t.ratio || r.at("value").is_null()) continue;
      if (t.huge_only && !r.value("huge", false)) {
        if (r.contains("page") && r.at("page") != "4k") ++not_huge;
        continue;
      }
      ++seen;
      const double v = r.at("value");
      if (v > t.limit) ++missed;
      if (v > worst_value) {
        worst_value = v;
        worst = r.contains("size") ? absl::StrCat(r.at("page").get<std::string>(), " ",
                                                  r.at("size").get<uint64_t>() >> 20, " MiB")
                                   : r.value("device", "");
      }
    }
    nlohmann::json j = {{"name", t.name}, {"ratio", t.ratio}, {"limit", t.limit}};
    if (seen == 0) {
      j["met"] = nullptr;
      j["detail"] = not_huge == 0 ? "not measured"
                                  : absl::StrCat("not measured: ", not_huge,
                                                 " huge-page record(s) got 4 KiB pages");
    } else {
      j["met"] = missed == 0;
      j["detail"] = absl::StrFormat("%d of %d within; worst %.2fx (%s)", seen - missed, seen,
                                    worst_value, worst);
      if (not_huge != 0) {
        j["detail"] = absl::StrCat(j["detail"].get<std::string>(), "; ", not_huge,
                                   " huge-page record(s) left out: they got 4 KiB pages");
      }
    }
    out.push_back(j);
  }
  return out;
}

std::string Table(const nlohmann::json& report) {
  std::string out = absl::StrFormat("%-6s %-17s %-8s %9s %12s %12s %10s %s\n", "kind", "method",
                                    "page", "size_MiB", "time_med_ms", "undo_med_ms", "pinned",
                                    "in_ioctl");
  for (const nlohmann::json& r : report.at("records")) {
    const bool map = r.at("kind") == "map";
    const nlohmann::json& pins = map ? r.at("pinned_after_map") : nlohmann::json();
    // The share of the map time spent inside the kernel's map ioctl.
    std::string in_ioctl;
    if (map && r.contains("map_ioctl_s") && Median(r, "map_s") > 0) {
      in_ioctl = absl::StrFormat(" %7.1f%%", 100 * Median(r, "map_ioctl_s") / Median(r, "map_s"));
    }
    out += absl::StrFormat(
        "%-6s %-17s %-8s %9s %12.3f %12.3f %10s%s\n", r.at("kind").get<std::string>(),
        r.at("method").get<std::string>(), map ? r.at("page").get<std::string>() : "-",
        map ? absl::StrCat(r.at("size").get<uint64_t>() >> 20) : r.at("device").get<std::string>(),
        1e3 * Median(r, map ? "map_s" : "setup_s"), 1e3 * Median(r, map ? "unmap_s" : "teardown_s"),
        map ? absl::StrCat(static_cast<int64_t>(pins.at("median").get<double>())) : "-", in_ioctl);
  }
  // Where each set-up went: its steps, longest first (passage-bench's
  // TimedSys; "passage" is the time between calls).
  for (const nlohmann::json& r : report.at("records")) {
    if (r.at("kind") != "setup" || !r.contains("setup_steps")) continue;
    std::vector<std::pair<double, std::string>> steps;
    for (const auto& [name, step] : r.at("setup_steps").items()) {
      steps.emplace_back(step.at("median_s").get<double>(), name);
    }
    std::sort(steps.rbegin(), steps.rend());
    for (const auto& [seconds, name] : steps) {
      out += absl::StrFormat("step   %-8s %-14s %-32s %9.3f ms x%d\n",
                             r.at("method").get<std::string>(), r.at("device").get<std::string>(),
                             name, 1e3 * seconds,
                             r.at("setup_steps").at(name).at("calls").get<int>());
    }
  }
  for (const nlohmann::json& s : report.at("skipped")) {
    out += absl::StrCat("skipped: ", s.at("what").get<std::string>(), ": ",
                        s.at("reason").get<std::string>(), "\n");
  }
  for (const nlohmann::json& r : report.at("ratios")) {
    out += absl::StrFormat(
        "ratio %-28s %-22s %s\n", r.at("name").get<std::string>(),
        r.contains("size") ? absl::StrCat(r.at("page").get<std::string>(), " ",
                                          r.at("size").get<uint64_t>() >> 20, " MiB")
                           : r.value("device", ""),
        r.at("value").is_null() ? "n/a" : absl::StrFormat("%.2f", r.at("value").get<double>()));
  }
  for (const nlohmann::json& t : report.at("targets")) {
    const std::string verdict =
        t.at("met").is_null() ? "not measured" : (t.at("met").get<bool>() ? "met" : "missed");
    out += absl::StrCat("target: ", t.at("name").get<std::string>(), ": ", verdict,
                        t.at("detail") == "not measured"
                            ? ""
                            : absl::StrCat(" (", t.at("detail").get<std::string>(), ")"),
                        "\n");
  }
  return out;
}

}  // namespace passage::bench
