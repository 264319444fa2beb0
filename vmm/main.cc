// passage: command line -> VmConfig -> Vm -> run -> exit status.
#include <cstdio>
#include "absl/strings/string_view.h"
#include <vector>

#include "vmm/boot_report.h"
#include "vmm/config.h"
#include "vmm/vm.h"

#ifndef PASSAGE_VERSION
#define PASSAGE_VERSION "unknown"
#endif

namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsage = 2;

}  // namespace

int main(int argc, char** argv) {
  passage::RecordProcessStart();
  std::vector<absl::string_view> args(argv + 1, argv + argc);
  absl::StatusOr<passage::CommandLine> cl = passage::ParseCommandLine(args);
  if (!cl.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(cl.status().message()).c_str());
    return kExitUsage;
  }
  switch (cl->action) {
    case passage::CommandLine::Action::kHelp:
      std::fputs(passage::UsageText().c_str(), stdout);
      return 0;
    case passage::CommandLine::Action::kVersion:
      std::printf("passage %s\n", PASSAGE_VERSION);
      return 0;
    case passage::CommandLine::Action::kRun:
      break;
  }
  absl::StatusOr<std::unique_ptr<passage::Vm>> vm = passage::Vm::Create(cl->config);
  if (!vm.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(vm.status().message()).c_str());
    return vm.status().code() == absl::StatusCode::kInvalidArgument ? kExitRuntimeError
                                                                    : kExitRuntimeError;
  }
  if (!cl->config.dump_dtb.empty()) {
    // Like QEMU's dumpdtb: describe the machine, then exit without running it.
    if (absl::Status s = (*vm)->DumpDtb(cl->config.dump_dtb); !s.ok()) {
      std::fprintf(stderr, "passage: %s\n", std::string(s.message()).c_str());
      return kExitRuntimeError;
    }
    return 0;
  }
  absl::StatusOr<int> status = (*vm)->Run();
  if (cl->config.report_timing) {
    std::fprintf(stderr, "passage: report-timing %s\n", (*vm)->TimingReport().c_str());
  }
  if (!status.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(status.status().message()).c_str());
    return kExitRuntimeError;
  }
  return *status;
}
