// passage: command line -> VmConfig -> Vm -> run -> exit status.
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <cstdio>
#include "absl/debugging/symbolize.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include <vector>

#include "devices/guest_error.h"
#include "vmm/boot_report.h"
#include "vmm/config.h"
#include "vmm/proc_self.h"
#include "vmm/vm.h"

#ifndef PASSAGE_VERSION
#define PASSAGE_VERSION "unknown"
#endif

namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsage = 2;

// Builds and runs the VM; the VM and every passed fd are gone when this
// returns.
int RunVm(const passage::VmConfig& config, passage::PassedFds fds) {
  absl::StatusOr<std::unique_ptr<passage::Vm>> vm = passage::Vm::Create(config, fds);
  if (!vm.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(vm.status().message()).c_str());
    return kExitRuntimeError;
  }
  if (!config.dump_dtb.empty()) {
    // Like QEMU's dumpdtb: describe the machine, then exit without running it.
    if (absl::Status s = (*vm)->DumpDtb(config.dump_dtb); !s.ok()) {
      std::fprintf(stderr, "passage: %s\n", std::string(s.message()).c_str());
      return kExitRuntimeError;
    }
    return 0;
  }
  absl::StatusOr<int> status = (*vm)->Run();
  if (config.report_timing) {
    std::fprintf(stderr, "passage: report-timing %s\n", (*vm)->TimingReport().c_str());
  }
  if (!status.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(status.status().message()).c_str());
    return kExitRuntimeError;
  }
  return *status;
}

// "passage: resources at exit: fds=N VmLck=X kB VmPin=Y kB" on stderr. The
// /proc/self files it reads are not counted (vmm/proc_self.h).
void ReportResources() {
  int fds = 0;
  std::string extra;  // what the fds beyond stdin/stdout/stderr are
  if (absl::StatusOr<std::vector<passage::OwnFd>> own = passage::ListOwnFds(); own.ok()) {
    for (const passage::OwnFd& f : *own) {
      ++fds;
      if (f.fd <= 2 || f.target.empty()) continue;
      extra += std::string(extra.empty() ? "" : " ") + std::to_string(f.fd) + "=" + f.target;
    }
  }
  long lck = -1, pin = -1;
  if (absl::StatusOr<std::string> status = passage::ReadProcSelfStatus(); status.ok()) {
    for (absl::string_view line : absl::StrSplit(*status, '\n')) {
      const std::string l(line);
      std::sscanf(l.c_str(), "VmLck: %ld", &lck);
      std::sscanf(l.c_str(), "VmPin: %ld", &pin);
    }
  }
  std::fprintf(stderr, "passage: resources at exit: fds=%d VmLck=%ld kB VmPin=%ld kB%s%s\n", fds,
               lck, pin, extra.empty() ? "" : " open: ", extra.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Names in Abseil's reports (a lock-order cycle prints the stacks).
  absl::InitializeSymbolizer(argv[0]);
  // Before any thread exists: termination signals must reach Vm::Run()'s
  // signalfd, never a helper thread's default action (no teardown then).
  passage::BlockVmSignals();
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
  // passage owns every fd named on the command line from here on (README).
  absl::StatusOr<passage::PassedFds> fds = passage::PassedFds::Adopt(passage::PassedFdUses(cl->config));
  if (!fds.ok()) {
    std::fprintf(stderr, "passage: %s\n", std::string(fds.status().message()).c_str());
    return kExitUsage;
  }
  const int rc = RunVm(cl->config, std::move(*fds));
  // Guest errors the rate limit held back in its last window.
  passage::GuestErrorLog::Global().Flush();
  // Everything the VM held is released by now; say what is left.
  if (cl->config.report_resources) ReportResources();
  return rc;
}
