// passage-bench's pure parts (tests/bench/bench_core.h): flags, statistics,
// ratios, targets and the report's shape.

#include "gtest/gtest.h"
#include "tests/bench/bench_core.h"

namespace passage::bench {
namespace {

TEST(BenchFlags, Defaults) {
  absl::StatusOr<Flags> f = ParseFlags({});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->devices.empty());
  EXPECT_EQ(f->min_size, 64ull << 20);
  EXPECT_EQ(f->max_size, 0u);
  EXPECT_EQ(f->repetitions, 3);
  EXPECT_TRUE(f->run_map && f->run_setup);
}

TEST(BenchFlags, DevicesSizesAndReps) {
  absl::StatusOr<Flags> f = ParseFlags({"--device", "0000:00:03.0", "--device=sysfsdev=/sys/x/y",
                                        "--device", "fd=7", "--max-size", "1G", "--min-size=64M",
                                        "--reps", "2", "--json", "o.json", "--only", "map"});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->devices.size(), 3u);
  EXPECT_EQ(f->devices[0].sysfs_path, "/sys/bus/pci/devices/0000:00:03.0");
  EXPECT_EQ(f->devices[1].sysfs_path, "/sys/x/y");
  EXPECT_EQ(f->devices[2].fd, 7);
  EXPECT_TRUE(f->devices[2].sysfs_path.empty());
  EXPECT_EQ(f->max_size, 1ull << 30);
  EXPECT_EQ(f->repetitions, 2);
  EXPECT_EQ(f->json_path, "o.json");
  EXPECT_TRUE(f->run_map);
  EXPECT_FALSE(f->run_setup);
}

TEST(BenchFlags, ErrorsNameTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--device", "00:03.0"}, "--device"},
      {{"--device", "fd=x"}, "--device"},
      {{"--max-size", "12345"}, "--max-size"},
      {{"--max-size", "0"}, "--max-size"},
      {{"--reps", "0"}, "--reps"},
      {{"--reps"}, "--reps"},
      {{"--only", "irq"}, "--only"},
      {{"--bogus", "1"}, "--bogus"},
      {{"stray"}, "stray"},
      {{"--min-size", "1G", "--max-size", "64M"}, "--max-size"},
  };
  for (const auto& [args, flag] : bad) {
    absl::StatusOr<Flags> f = ParseFlags(args);
    ASSERT_FALSE(f.ok()) << args[0];
    EXPECT_TRUE(absl::IsInvalidArgument(f.status())) << f.status();
    EXPECT_EQ(std::string(f.status().message()).rfind(flag, 0), 0u) << f.status();
    EXPECT_EQ(std::string(f.status().message()).find('\n'), std::string::npos);
  }
}

TEST(BenchSizes, DoublingUpToMax) {
  EXPECT_EQ(Sizes(64 << 20, 256 << 20), (std::vector<uint64_t>{64 << 20, 128 << 20, 256 << 20}));
  EXPECT_EQ(Sizes(64 << 20, 200 << 20), (std::vector<uint64_t>{64 << 20, 128 << 20}));
  EXPECT_EQ(DefaultMaxSize(1500ull << 20, 64 << 20),
            512ull << 20);                                       // half, power of two
  EXPECT_EQ(DefaultMaxSize(64ull << 30, 64 << 20), 4ull << 30);  // capped
  EXPECT_EQ(DefaultMaxSize(10ull << 20, 64 << 20),
            64ull << 20);  // never below min
}

TEST(BenchStats, MedianMinMax) {
  Summary s = Summarize({3, 1, 2});
  EXPECT_EQ(s.median, 2);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 3);
  EXPECT_EQ(Summarize({4, 1, 2, 3}).median, 2.5);
  EXPECT_EQ(Summarize({}).median, 0);
  nlohmann::json j = SamplesJson({0.5, 0.25});
  EXPECT_EQ(j["samples"].size(), 2u);
  EXPECT_EQ(j["median"], 0.375);
  EXPECT_EQ(j["min"], 0.25);
  EXPECT_EQ(j["max"], 0.5);
}

nlohmann::json MapRecord(const char* method, const char* page, uint64_t size, double median) {
  return {
      {"kind", "map"},
      {"method", method},
      {"page", page},
      {"size", size},
      {"map_s", SamplesJson({median})},
      {"unmap_s", SamplesJson({median / 2})},
      {"pinned_after_map", SamplesJson({double(size / 4096)})},
      {"huge_kb_after_map", SamplesJson({std::string(page) == "4k" ? 0.0 : double(size >> 10)})}};
}

nlohmann::json SetupRecord(const char* method, double median) {
  return {{"kind", "setup"},
          {"method", method},
          {"device", "0000:00:03.0"},
          {"setup_s", SamplesJson({median})},
          {"teardown_s", SamplesJson({median})}};
}

TEST(BenchRatios, PairsAtTheSamePageAndSize) {
  nlohmann::json records = {MapRecord(kIommufdMap, "4k", 64 << 20, 2.0),
                            MapRecord(kType1, "4k", 64 << 20, 4.0),
                            MapRecord(kPopulate, "4k", 64 << 20, 1.0),
                            MapRecord(kType1, "4k", 128 << 20, 8.0),
                            SetupRecord(kCdev, 1.0),
                            SetupRecord(kLegacy, 4.0)};
  nlohmann::json ratios = Ratios(records);
  auto find = [&](const std::string& name) {
    for (const nlohmann::json& r : ratios) {
      if (r["name"] == name) return r;
    }
    return nlohmann::json();
  };
  EXPECT_EQ(find("iommufd_map/type1")["value"], 0.5);
  EXPECT_EQ(find("iommufd_map/type1")["size"], 64 << 20);
  EXPECT_EQ(find("iommufd_map/populate")["value"], 2.0);
  EXPECT_EQ(find("type1/populate")["value"], 4.0);
  EXPECT_EQ(find("cdev/legacy")["value"], 0.25);
  EXPECT_TRUE(find("iommufd_map_file/iommufd_map").is_null());  // MAP_FILE not measured
  EXPECT_EQ(ratios.size(), 4u);                                 // nothing for 128 MiB: type1 alone
}

TEST(BenchTargets, MetMissedAndNotMeasured) {
  nlohmann::json ratios = Ratios(nlohmann::json{
      MapRecord(kIommufdMap, "4k", 64 << 20, 1.0), MapRecord(kType1, "4k", 64 << 20, 2.0),
      MapRecord(kIommufdMap, "4k", 128 << 20, 5.0), MapRecord(kType1, "4k", 128 << 20, 2.0),
      MapRecord(kIommufdMapFile, "4k", 64 << 20, 9.0), MapRecord(kPopulate, "4k", 64 << 20, 1.0),
      SetupRecord(kCdev, 1.0), SetupRecord(kLegacy, 4.0)});
  nlohmann::json targets = Targets(ratios);
  ASSERT_EQ(targets.size(), 3u);
  EXPECT_EQ(targets[0]["met"], false);  // 128 MiB: 2.5x
  EXPECT_EQ(targets[0]["detail"], "1 of 2 within; worst 2.50x (4k 128 MiB)");
  EXPECT_TRUE(targets[1]["met"].is_null());  // 4k MAP_FILE does not count: huge pages only
  EXPECT_EQ(targets[2]["met"], true);
}

TEST(BenchTargets, HugeOnlyWhereMeminfoSawHugePages) {
  nlohmann::json file = MapRecord(kIommufdMapFile, "thp", 64 << 20, 3.0);
  nlohmann::json populate = MapRecord(kPopulate, "thp", 64 << 20, 1.0);
  EXPECT_EQ(Targets(Ratios(nlohmann::json::array({file, populate})))[1]["met"], false);  // 3x
  file["huge_kb_after_map"] = SamplesJson({0});  // asked for THP, got 4 KiB pages
  nlohmann::json t = Targets(Ratios(nlohmann::json::array({file, populate})))[1];
  EXPECT_TRUE(t["met"].is_null());
  EXPECT_EQ(t["detail"], "not measured: 1 huge-page record(s) got 4 KiB pages");
}

TEST(BenchTable, PrintsRecordsRatiosAndVerdicts) {
  nlohmann::json records = {MapRecord(kIommufdMap, "4k", 64 << 20, 0.002),
                            MapRecord(kType1, "4k", 64 << 20, 0.004)};
  records[1]["map_ioctl_s"] = SamplesJson({0.003});  // 3 of the 4 ms inside the ioctl
  nlohmann::json report = {{"records", records},
                           {"skipped", {{{"what", "map thp"}, {"reason", "off"}}}},
                           {"ratios", Ratios(records)}};
  report["targets"] = Targets(report["ratios"]);
  const std::string t = Table(report);
  EXPECT_NE(t.find("iommufd_map       4k              64        2.000        "
                   "1.000      16384"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("4.000        2.000      16384    75.0%"), std::string::npos) << t;
  EXPECT_EQ(t.find("%"), t.rfind("%")) << t;  // only the record that has map_ioctl_s
  EXPECT_NE(t.find("skipped: map thp: off"), std::string::npos) << t;
  EXPECT_NE(t.find("target: iommufd map <= 1.0x type1 at every size: met"), std::string::npos) << t;
  EXPECT_NE(t.find("target: cdev setup <= 0.5x legacy: not measured"), std::string::npos) << t;
}

TEST(BenchTable, PrintsSetUpStepsLongestFirst) {
  nlohmann::json r = SetupRecord(kCdev, 0.010);
  r["setup_steps"] = {{"VFIO_DEVICE_BIND_IOMMUFD", {{"median_s", 0.002}, {"calls", 1}}},
                      {"VFIO_DEVICE_ATTACH_IOMMUFD_PT", {{"median_s", 0.006}, {"calls", 1}}},
                      {"passage", {{"median_s", 0.001}, {"calls", 0}}}};
  nlohmann::json report = {
      {"records", {r}}, {"skipped", nlohmann::json::array()}, {"ratios", nlohmann::json::array()}};
  report["targets"] = Targets(report["ratios"]);
  const std::string t = Table(report);
  const size_t attach = t.find("VFIO_DEVICE_ATTACH_IOMMUFD_PT"), bind = t.find("VFIO_DEVICE_BIND_IOMMUFD"),
               own = t.find("step   cdev     0000:00:03.0   passage");
  ASSERT_NE(attach, std::string::npos) << t;
  ASSERT_NE(bind, std::string::npos) << t;
  ASSERT_NE(own, std::string::npos) << t;
  EXPECT_LT(attach, bind) << t;
  EXPECT_LT(bind, own) << t;
  EXPECT_NE(t.find("6.000 ms x1"), std::string::npos) << t;
}

}  // namespace
}  // namespace passage::bench
