#ifndef PASSAGE_TESTS_BENCH_BENCH_CORE_H_
#define PASSAGE_TESTS_BENCH_BENCH_CORE_H_

// The pure parts of passage-bench: flags, statistics, the JSON report, the
// ratios and the issue-14 targets. No system calls here (unit-tested).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace passage::bench {

// One --device: a BDF (0000:00:03.0), sysfsdev=PATH or fd=N (an open cdev).
struct DeviceArg {
  std::string text;        // as given, for messages
  std::string sysfs_path;  // empty for fd=
  int fd = -1;
};

struct Flags {
  std::vector<DeviceArg> devices;
  uint64_t min_size = 64ull << 20;
  uint64_t max_size = 0;  // 0: what memory allows (see DefaultMaxSize)
  int repetitions = 3;
  std::string json_path;  // empty: no file, stdout table only
  bool run_map = true;
  bool run_setup = true;
};

// "64M", "1G", "4096": bytes; nullopt for anything else, 0 and overflow.
std::optional<uint64_t> ParseSize(std::string text);

// argv without the program name. Errors name the flag (one line).
absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args);
std::string Usage();

// Half of MemAvailable rounded down to a power of two, at most 4 GiB, at
// least min_size.
uint64_t DefaultMaxSize(uint64_t mem_available, uint64_t min_size);
// min_size, 2*min_size, ... <= max_size.
std::vector<uint64_t> Sizes(uint64_t min_size, uint64_t max_size);

struct Summary {
  double median = 0;
  double min = 0;
  double max = 0;
};
Summary Summarize(std::vector<double> samples);
nlohmann::json SamplesJson(const std::vector<double>& samples);  // samples, median, min, max

// Method names used in records (kind "map").
inline constexpr const char* kIommufdMap = "iommufd_map";
inline constexpr const char* kIommufdMapFile = "iommufd_map_file";
inline constexpr const char* kType1 = "type1";
inline constexpr const char* kPopulate = "populate";
// Kind "setup".
inline constexpr const char* kCdev = "cdev";
inline constexpr const char* kLegacy = "legacy";

// Ratios over the records of a report (pairs measured at the same page kind
// and size, or the same device): medians divided.
nlohmann::json Ratios(const nlohmann::json& records);
// The targets from the ratios: each {"name", "met": true/false/null
// (not measured), "detail"}.
nlohmann::json Targets(const nlohmann::json& ratios);
// The summary table for stdout.
std::string Table(const nlohmann::json& report);

}  // namespace passage::bench

#endif  // PASSAGE_TESTS_BENCH_BENCH_CORE_H_
