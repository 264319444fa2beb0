// What a QMP client sends: any bytes, cut at any point, through the framer
// and the session (against a target that accepts everything). Never a crash,
// every reply is one line of valid JSON, and the framer's memory stays
// within its cap.
#include <cstdint>
#include <string>

#include "vmm/qmp_commands.h"
#include "vmm/qmp_framing.h"

namespace {

class AcceptAll : public passage::ControlTarget {
 public:
  std::string RunState() override { return "running"; }
  absl::Status Stop() override { return absl::OkStatus(); }
  absl::Status Cont() override { return absl::OkStatus(); }
  void Quit() override {}
  void SystemReset() override {}
  absl::Status SystemPowerdown() override { return absl::OkStatus(); }
  absl::Status DeviceAdd(const passage::DeviceConfig&, passage::PassedFds&) override { return absl::OkStatus(); }
  absl::Status DeviceDel(const std::string&) override { return absl::NotFoundError("no such device"); }
  absl::Status ObjectAdd(const passage::ObjectConfig&, passage::PassedFds&) override { return absl::OkStatus(); }
  absl::Status ObjectDel(const std::string&) override { return absl::OkStatus(); }
  nlohmann::json QueryPci() override { return nlohmann::json::array(); }
  nlohmann::json QueryIommufd() override { return nlohmann::json::array(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  AcceptAll target;
  passage::QmpFdSets fdsets;
  passage::QmpSession session(target, fdsets, "0.1.0");
  passage::QmpFramer framer(1024);
  // The first byte picks the chunk size, as reads of any length would.
  const size_t chunk = size > 0 ? data[0] % 17 + 1 : 1;
  const std::string text(reinterpret_cast<const char*>(data), size);
  // Negotiate first half the time so commands reach the table.
  if (size > 0 && (data[0] & 0x80)) {
    passage::QmpFramer::Frame f;
    f.text = R"({"execute": "qmp_capabilities"})";
    (void)session.Handle(f, {});
  }
  for (size_t at = 1; at < text.size(); at += chunk) {
    std::vector<passage::QmpFramer::Frame> frames;
    const bool ok = framer.Feed(absl::string_view(text).substr(at, chunk), frames);
    if (framer.pending() > 1024) __builtin_trap();
    for (const auto& f : frames) {
      const std::string line = passage::QmpLine(session.Handle(f, {}));
      if (line.find('\n') != line.size() - 1) __builtin_trap();
      if (!nlohmann::json::accept(line)) __builtin_trap();
    }
    if (!ok) break;
  }
  return 0;
}
