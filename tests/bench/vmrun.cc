// bench-vmrun: the whole-VM meter of passage-bench (issue 14). It starts a
// VMM (passage or QEMU alike) with the guest console on its stdout and
// measures it from outside, the same way for every VMM: seconds to the
// guest init's first line and to the VMM's exit, and the VMM's memory
// besides guest RAM. The rig scenario bench-vm.sh runs it in L1; see
// vm_meter.h for what each figure is and README.md "passage-bench".

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"
#include "tests/bench/vm_meter.h"

namespace passage::bench {
namespace {

volatile sig_atomic_t g_child = 0;

// SIGTERM/SIGINT/SIGHUP to the meter (e.g. the rig's `bounded` at its
// deadline) go on to the VMM, which then ends through its own teardown.
void Forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

double Seconds(const timespec& t0) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json Sample(pid_t pid, uint64_t ram_kib) {
  const std::string dir = absl::StrCat("/proc/", pid, "/");
  absl::StatusOr<VmMemory> m =
      ParseVmMemory(ReadText(dir + "status"), ReadText(dir + "smaps"), ram_kib);
  if (!m.ok()) return {{"error", std::string(m.status().message())}};
  return VmMemoryJson(*m);
}

nlohmann::json Round(double s) { return std::round(s * 1000) / 1000; }

int Main(int argc, char** argv) {
  absl::StatusOr<VmRunFlags> flags =
      ParseVmRunFlags(std::vector<std::string>(argv + 1, argv + argc));
  if (absl::IsCancelled(flags.status())) {
    std::cout << flags.status().message();
    return 0;
  }
  if (!flags.ok()) {
    std::cerr << "bench-vmrun: " << flags.status().message() << "\n";
    return 2;
  }
  UniqueFd serial(open(flags->serial_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!serial.valid()) {
    std::cerr << "bench-vmrun: --serial: " << flags->serial_path << ": " << strerror(errno) << "\n";
    return 2;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    std::cerr << "bench-vmrun: pipe: " << strerror(errno) << "\n";
    return 1;
  }
  UniqueFd rd(p[0]), wr(p[1]);
  struct sigaction sa {};
  sa.sa_handler = Forward;  // no SA_RESTART: poll returns, the loop goes on
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);

  std::vector<char*> cargv;
  for (std::string& a : flags->command) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const pid_t pid = fork();
  if (pid < 0) {
    std::cerr << "bench-vmrun: fork: " << strerror(errno) << "\n";
    return 1;
  }
  if (pid == 0) {
    dup2(wr.get(), STDOUT_FILENO);
    execvp(cargv[0], cargv.data());
    std::cerr << "bench-vmrun: " << cargv[0] << ": " << strerror(errno) << "\n";
    _exit(127);
  }
  g_child = pid;
  wr.reset();

  nlohmann::json out = {
      {"init_s", nullptr}, {"end_s", nullptr}, {"at_init", nullptr}, {"at_end", nullptr}};
  LineSplitter lines;
  char buf[4096];
  for (;;) {
    pollfd pfd{rd.get(), POLLIN, 0};
    const int n = poll(&pfd, 1, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    const ssize_t got = read(rd.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the VMM closed its console (it is exiting)
    if (write(serial.get(), buf, got) != got) {
      std::cerr << "bench-vmrun: --serial: short write\n";
    }
    for (const std::string& line : lines.Feed(absl::string_view(buf, got))) {
      if (out["init_s"].is_null() && line.find(flags->marker) != std::string::npos) {
        out["init_s"] = Round(Seconds(t0));
        out["at_init"] = Sample(pid, flags->ram_kib);
      }
      if (!flags->end_marker.empty() && out["end_s"].is_null() &&
          line.find(flags->end_marker) != std::string::npos) {
        out["end_s"] = Round(Seconds(t0));
        out["at_end"] = Sample(pid, flags->ram_kib);
      }
    }
  }
  int status = 0;
  rusage ru{};
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  out["exit_s"] = Round(Seconds(t0));
  out["maxrss_kib"] = ru.ru_maxrss;
  int rc;
  if (WIFSIGNALED(status)) {
    rc = 128 + WTERMSIG(status);
    out["exit_signal"] = WTERMSIG(status);
  } else {
    rc = WEXITSTATUS(status);
    out["exit_signal"] = nullptr;
  }
  out["exit_status"] = rc;
  std::cout << out.dump() << std::endl;
  return rc;
}

}  // namespace
}  // namespace passage::bench

int main(int argc, char** argv) { return passage::bench::Main(argc, argv); }
