// -sandbox on (vmm/sandbox.h): the filter builds, what it allows works and
// what it forbids ends the process with its one line. Each case runs
// tests/unit/sandbox_probe in a fresh process (the filter is for life, and
// what the sandbox primes is primed once per process).
#include "vmm/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "vmm/config.h"

extern char** environ;

namespace passage {
namespace {

struct ProbeResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
};

std::string Probe() { return std::string(PASSAGE_BINARY_DIR) + "/tests/unit/sandbox_probe"; }

// Reads both pipes to their end.
void Drain(int out, int err, ProbeResult& r) {
  pollfd p[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(p, 2, 20000) <= 0) break;
    for (pollfd& f : p) {
      if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = read(f.fd, buf, sizeof(buf));
      if (n <= 0) {
        f.fd = -1;
        --open_fds;
        continue;
      }
      (f.fd == out ? r.out : r.err).append(buf, static_cast<size_t>(n));
    }
  }
}

// Removes the probe's temporary directory (it names it on stdout).
void RemoveTmpDir(const std::string& out) {
  const size_t at = out.find("tmpdir ");
  if (at == std::string::npos) return;
  const std::string dir = out.substr(at + 7, out.find('\n', at) - at - 7);
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') unlink((dir + "/" + e->d_name).c_str());
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

ProbeResult RunProbe(const std::string& scenario) {
  ProbeResult r;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
  // Under ASan, LeakSanitizer's exit-time scan forks a tracer and each new
  // thread gets an alternate signal stack (sigaltstack): not what passage's
  // filter allows, and not what these tests are about.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("ASAN_OPTIONS=", 0) != 0) env_strings.push_back(*e);
  }
  env_strings.push_back("ASAN_OPTIONS=detect_leaks=0:use_sigaltstack=0");
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string path = Probe();
  char* argv[] = {const_cast<char*>(path.c_str()), const_cast<char*>(scenario.c_str()), nullptr};
  pid_t pid;
  const int rc = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  if (rc == 0) {
    Drain(out[0], err[0], r);
    int ws = 0;
    waitpid(pid, &ws, 0);
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
  } else {
    r.err = std::string("posix_spawn: ") + strerror(rc);
  }
  close(out[0]);
  close(err[0]);
  RemoveTmpDir(r.out);
  return r;
}

// The one line the SIGSYS handler writes, for syscall `name`.
std::string Killed(const std::string& name) {
  const int nr = seccomp_syscall_resolve_name(name.c_str());
  return "passage: sandbox: forbidden system call " + std::to_string(nr) + " (" + name + ")";
}

// Exactly one line on stderr from the handler, naming the call.
void ExpectKilledBy(const ProbeResult& r, const std::string& name) {
  EXPECT_EQ(r.status, kSandboxViolationExit) << r.err << r.out;
  const std::string want = Killed(name);
  const size_t at = r.err.find(want);
  ASSERT_NE(at, std::string::npos) << "stderr: " << r.err;
  const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
  EXPECT_NE(line.find(" in thread "), std::string::npos) << line;
  EXPECT_NE(line.find("exiting with status 159"), std::string::npos) << line;
}

TEST(SandboxTest, FilterBuildsAndThePolicyShapesIt) {
  absl::StatusOr<std::string> deny = SandboxBpf({});
  ASSERT_TRUE(deny.ok()) << deny.status();
  SandboxPolicy open;
  open.allow_open = true;
  absl::StatusOr<std::string> allow = SandboxBpf(open);
  ASSERT_TRUE(allow.ok()) << allow.status();
  // BPF instructions are 8 bytes; open=allow adds rules.
  EXPECT_GT(deny->size(), 0u);
  EXPECT_EQ(deny->size() % 8, 0u);
  EXPECT_GT(allow->size(), deny->size());
  SandboxPolicy dirs;
  dirs.unlink_dirs = {7};
  absl::StatusOr<std::string> with_dir = SandboxBpf(dirs);
  ASSERT_TRUE(with_dir.ok());
  EXPECT_NE(*with_dir, *deny);
}

TEST(SandboxTest, EveryAllowlistEntryIsASyscallWithAReason) {
  std::set<std::string> seen;
  for (const SandboxRule& r : SandboxAllowlist()) {
    EXPECT_NE(seccomp_syscall_resolve_name(r.syscall), __NR_SCMP_ERROR) << r.syscall;
    EXPECT_GT(std::string(r.why).size(), 5u) << r.syscall;
    EXPECT_GT(std::string(r.when).size(), 0u) << r.syscall;
    EXPECT_TRUE(seen.insert(r.syscall).second) << r.syscall << " listed twice";
  }
  // Never on the list, whatever the policy.
  for (const char* never : {"socket", "connect", "bind", "execve", "fork", "vfork", "ptrace", "openat2", "kill",
                            "memfd_create", "setuid", "mount"}) {
    EXPECT_EQ(seen.count(never), 0u) << never;
  }
}

// The README's table is the allowlist itself (on a mismatch the test prints
// the table to paste).
TEST(SandboxTest, ReadmeTableIsTheAllowlist) {
  std::string table = "| system call | allowed when | why |\n|---|---|---|\n";
  for (const SandboxRule& r : SandboxAllowlist()) {
    table += std::string("| `") + r.syscall + "` | " + r.when + " | " + r.why + " |\n";
  }
  std::FILE* f = std::fopen(PASSAGE_SOURCE_DIR "/README.md", "r");
  ASSERT_NE(f, nullptr);
  std::string readme;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), f)) readme.append(buf, n);
  std::fclose(f);
  EXPECT_NE(readme.find(table), std::string::npos) << "README.md lacks this table:\n" << table;
}

TEST(SandboxTest, ForbiddenOpenKillsWithOneLine) { ExpectKilledBy(RunProbe("open"), "openat"); }

TEST(SandboxTest, OpenAllowedByPolicyWorksButSocketStillKills) {
  ExpectKilledBy(RunProbe("open-allowed"), "socket");
}

TEST(SandboxTest, ThreadsThatExistedBeforeGetTheFilterToo) {
  const ProbeResult r = RunProbe("thread-open");
  ExpectKilledBy(r, "openat");
  EXPECT_NE(r.err.find("(probe-thread)"), std::string::npos) << r.err;
}

TEST(SandboxTest, WhatTheRunLoopAndHotplugDoIsAllowed) {
  const ProbeResult r = RunProbe("allowed");
  EXPECT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("allowed calls worked"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("contended: 1000 rounds"), std::string::npos) << r.out;
}

// The Abseil pitfall: a Mutex's first contended lock asks for the CPU count,
// which glibc reads from /sys/devices/system/cpu/online. Unprimed, that is
// an open after the filter: the process dies. Primed, it lives.
TEST(SandboxTest, ContendedMutexNeedsTheCpuCountPrimed) {
  const ProbeResult unprimed = RunProbe("contend-unprimed");
  ExpectKilledBy(unprimed, "openat");
  const ProbeResult primed = RunProbe("contend");
  EXPECT_EQ(primed.status, 0) << primed.err << primed.out;
  EXPECT_NE(primed.out.find("contended: 1000 rounds"), std::string::npos) << primed.out;
}

// glibc's malloc: the 9th arena (a 9th thread allocating at once) makes it
// ask for the CPU count, from the same sysfs file, unless an arena limit is
// set: PrimeLazyInit sets the one glibc would compute.
TEST(SandboxTest, MallocArenaLimitIsPrimed) {
#if !defined(PASSAGE_SANITIZERS)
  ExpectKilledBy(RunProbe("arenas-unprimed"), "openat");
#endif  // ASan's allocator stands in for glibc's malloc: no arenas to prime
  const ProbeResult primed = RunProbe("arenas");
  EXPECT_EQ(primed.status, 0) << primed.err;
  EXPECT_NE(primed.out.find("arenas: 12 threads allocated"), std::string::npos) << primed.out;
}

// glibc's first gmtime_r (the CMOS RTC) sets up the time zone from
// /etc/localtime when TZ is unset.
TEST(SandboxTest, TimeZoneIsPrimed) {
  ExpectKilledBy(RunProbe("gmtime-unprimed"), "openat");
  const ProbeResult primed = RunProbe("gmtime");
  EXPECT_EQ(primed.status, 0) << primed.err;
  EXPECT_NE(primed.out.find("gmtime: "), std::string::npos) << primed.out;
}

TEST(SandboxTest, ForkExecutableMemoryAndOtherIoctlsKill) {
  ExpectKilledBy(RunProbe("fork"), "clone");
  ExpectKilledBy(RunProbe("exec-mapping"), "mmap");
  ExpectKilledBy(RunProbe("ioctl-tiocsti"), "ioctl");
}

TEST(SandboxTest, UnlinkOnlyInTheQmpSocketDirectories) {
  const ProbeResult r = RunProbe("unlink-elsewhere");
  EXPECT_NE(r.err.find("unlinkat relative to the allowed directory worked"), std::string::npos) << r.err;
  ExpectKilledBy(r, "unlinkat");
}

TEST(SandboxTest, QmpGetfdDeviceAddAndSocketRemovalUnderTheFilter) {
  const ProbeResult r = RunProbe("qmp");
  EXPECT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("device_add virtio-rng-pci id=rng0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("socket file removed"), std::string::npos) << r.out;
}

TEST(SandboxTest, ReportsAtExitReadProcSelfUnderTheFilter) {
  const ProbeResult r = RunProbe("report");
  EXPECT_EQ(r.status, 0) << r.err << r.out;
  // stdin, stdout and stderr at least, each named.
  EXPECT_NE(r.out.find(" 1=pipe:"), std::string::npos) << r.out;
}

TEST(SandboxTest, OpenPolicyFromTheCommandLine) {
  VmConfig c;
  c.sandbox = true;
  EXPECT_FALSE(SandboxAllowsOpen(c)) << "no monitor: nothing is opened at run time";
  c.monitors.push_back({"/tmp/q.sock", "-qmp unix:/tmp/q.sock"});
  EXPECT_TRUE(SandboxAllowsOpen(c)) << "a monitor and /dev/kvm by path";
  c.kvm_fd = 5;
  EXPECT_FALSE(SandboxAllowsOpen(c)) << "a monitor and every file as an fd";
  DeviceConfig by_path;
  by_path.driver = "vfio-pci";
  c.device_configs.push_back(by_path);
  EXPECT_TRUE(SandboxAllowsOpen(c));
  c.sandbox_open = SandboxOpen::kDeny;
  EXPECT_FALSE(SandboxAllowsOpen(c));
  c.device_configs.clear();
  c.sandbox_open = SandboxOpen::kAllow;
  EXPECT_TRUE(SandboxAllowsOpen(c));
}

}  // namespace
}  // namespace passage
