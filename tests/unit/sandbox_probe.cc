// sandbox_probe SCENARIO: a fresh process that puts passage's sandbox
// (vmm/sandbox.h) on itself and then does one thing, for sandbox_test.cc.
// A fresh process, not a fork of the test: what the sandbox must prime
// (Abseil's CPU count, glibc's time zone) is primed once per process, and a
// fork of a test binary that already ran other tests would inherit that.
// Exit 0: the scenario's calls worked under the filter; 3: a call the filter
// must forbid returned; 4: the set-up failed; 159: killed by the sandbox (its
// line on stderr).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/unit/qmp_fake_target.h"
#include "vmm/proc_self.h"
#include "vmm/qmp_server.h"
#include "vmm/sandbox.h"

namespace {

using passage::SandboxPolicy;

constexpr int kReturned = 3;
constexpr int kSetup = 4;

int Fail(const std::string& what) {
  std::fprintf(stderr, "sandbox_probe: %s\n", what.c_str());
  return kSetup;
}

// The test removes it (the sandboxed probe cannot: rmdir is not allowed).
void TellTmpDir(const char* dir) {
  std::printf("tmpdir %s\n", dir);
  std::fflush(stdout);
}

bool Install(const SandboxPolicy& policy = {}, bool primed = true) {
  absl::Status s = primed ? passage::InstallSandbox(policy) : passage::InstallSandboxUnprimed(policy);
  if (!s.ok()) std::fprintf(stderr, "sandbox_probe: %s\n", std::string(s.message()).c_str());
  return s.ok();
}

// Two threads on one Mutex, the second blocking while the first holds it:
// Abseil's slow path (spin, then sleep) runs, and with it the CPU count.
int Contend() {
  absl::Mutex mu;
  std::atomic<bool> held{false};
  std::thread holder([&] {
    mu.Lock();
    held = true;
    absl::SleepFor(absl::Milliseconds(50));
    mu.Unlock();
  });
  while (!held.load()) absl::SleepFor(absl::Milliseconds(1));
  int rounds = 0;
  for (int i = 0; i < 1000; ++i) {
    absl::MutexLock lock(&mu);
    ++rounds;
  }
  holder.join();
  std::printf("contended: %d rounds\n", rounds);
  return 0;
}

// Enough threads allocating at once that glibc makes more malloc arenas
// than its first limit (8) and then asks for the CPU count, which reads
// /sys/devices/system/cpu/online (a VM with -smp 8 has that many threads).
int Arenas() {
  std::vector<std::thread> many;
  std::atomic<int> ready{0};
  for (int i = 0; i < 12; ++i) {
    many.emplace_back([&] {
      std::vector<std::string> v;
      for (int j = 0; j < 200; ++j) v.emplace_back(4096, 'x');
      ++ready;
      while (ready.load() < 12) absl::SleepFor(absl::Milliseconds(5));
    });
  }
  for (std::thread& m : many) m.join();
  std::printf("arenas: 12 threads allocated\n");
  return 0;
}

// What the run loop, vCPUs and hotplug do, under the filter that forbids open.
int Allowed() {
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (efd < 0 || ep < 0) return Fail("eventfd/epoll");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = efd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0) return Fail("epoll_ctl");
  const uint64_t one = 1;
  if (write(efd, &one, sizeof(one)) != sizeof(one)) return Fail("eventfd write");
  epoll_event got{};
  if (epoll_wait(ep, &got, 1, 1000) != 1) return Fail("epoll_wait");
  uint64_t count = 0;
  if (read(efd, &count, sizeof(count)) != sizeof(count) || count != 1) return Fail("eventfd read");
  void* p = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED || munmap(p, 1 << 20) != 0) return Fail("mmap/munmap");
  // A thread comes and goes (a hot-added virtio-rng's worker): clone3 gets
  // ENOSYS, glibc falls back to clone with CLONE_THREAD.
  std::thread t([] { absl::SleepFor(absl::Milliseconds(1)); });
  t.join();
  if (int rc = Arenas(); rc != 0) return rc;
  // A C++ exception (the unwinder's first use: QMP's JSON parser may throw).
  try {
    throw std::runtime_error("under the filter");
  } catch (const std::exception& e) {
    if (std::string(e.what()) != "under the filter") return Fail("exception");
  }
  // The CMOS RTC's clock.
  const time_t now = time(nullptr);
  tm tm{};
  if (gmtime_r(&now, &tm) == nullptr) return Fail("gmtime_r");
  close(ep);
  close(efd);
  std::fprintf(stderr, "sandbox_probe: allowed calls worked\n");
  return Contend();
}

// Getfd with SCM_RIGHTS, device_add by fd, quit, then Close() removes the
// socket: QMP served under the filter. The client is a child forked before
// the filter (the sandboxed process may not connect anywhere).
int Qmp() {
  char tmpl[] = "/tmp/passage-sandbox-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Fail("mkdtemp");
  TellTmpDir(tmpl);
  const std::string dir = tmpl, path = dir + "/qmp.sock";
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return Fail("pipe");
  passage::testing::FakeTarget target;
  passage::EventLoop loop;
  absl::StatusOr<std::unique_ptr<passage::QmpServer>> server =
      passage::QmpServer::Create({{path, "-qmp unix:" + path}}, {});
  if (!server.ok()) return Fail(std::string(server.status().message()));
  if (!(*server)->Start(loop, target).ok()) return Fail("QMP start");
  const pid_t client = fork();
  if (client == 0) {
    const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(1);
    if (write(pipefd[1], "ok", 2) != 2) _exit(1);
    const std::string getfd = R"({"execute":"qmp_capabilities"})" "\n" R"({"execute":"getfd","arguments":{"fdname":"rng"}})" "\n";
    iovec iov{const_cast<char*>(getfd.data()), getfd.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &pipefd[0], sizeof(int));
    if (sendmsg(s, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(getfd.size())) _exit(1);
    usleep(200000);  // the getfd is handled before device_add names its fd
    const std::string rest = R"({"execute":"device_add","arguments":{"driver":"virtio-rng-pci","id":"rng0","fd":"rng"}})" "\n"
                             R"({"execute":"quit"})" "\n";
    if (write(s, rest.data(), rest.size()) != static_cast<ssize_t>(rest.size())) _exit(1);
    char buf[4096];
    while (read(s, buf, sizeof(buf)) > 0) {
    }
    _exit(0);
  }
  if (client < 0) return Fail("fork");
  close(pipefd[0]);
  close(pipefd[1]);
  SandboxPolicy policy;
  policy.unlink_dirs = (*server)->SocketDirs();
  if (policy.unlink_dirs.size() != 1) return Fail("no socket directory fd");
  if (!Install(policy)) return kSetup;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  auto has_quit = [&] {
    for (const std::string& c : target.Calls()) {
      if (c == "quit") return true;
    }
    return false;
  };
  while (!has_quit() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  std::string calls;
  for (const std::string& c : target.Calls()) calls += c + "; ";
  if (!has_quit()) return Fail("no quit within 10 s; calls: " + calls);
  if (target.taken_fds.size() != 1) return Fail("device_add took no fd; calls: " + calls);
  char buf[2];
  if (read(target.taken_fds[0].get(), buf, 2) != 2 || std::memcmp(buf, "ok", 2) != 0) {
    return Fail("the getfd fd does not read the client's bytes");
  }
  (*server)->Close(absl::Seconds(1));
  struct stat st{};
  const bool gone = fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
  std::printf("qmp: calls: %ssocket file %s\n", calls.c_str(), gone ? "removed" : "still there");
  return gone ? 0 : Fail("socket file left behind");
}

// --report-resources and --report-timing under the filter (vmm/proc_self.h).
int Report() {
  if (!passage::OpenProcSelf().ok()) return Fail("OpenProcSelf");
  SandboxPolicy policy;
  policy.readlink_dirs = {passage::ProcSelfFdDir()};
  if (!Install(policy)) return kSetup;
  absl::StatusOr<std::string> status = passage::ReadProcSelfStatus();
  absl::StatusOr<std::vector<passage::OwnFd>> fds = passage::ListOwnFds();
  if (!status.ok() || status->find("VmRSS:") == std::string::npos) return Fail("/proc/self/status");
  if (!fds.ok()) return Fail("/proc/self/fd");
  std::string named;
  for (const passage::OwnFd& f : *fds) named += std::to_string(f.fd) + "=" + f.target + " ";
  std::printf("report: %zu fds: %s\n", fds->size(), named.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: sandbox_probe SCENARIO");
  const std::string what = argv[1];
  if (what == "open") {  // forbidden: open after set-up
    if (!Install()) return kSetup;
    open("/dev/null", O_RDONLY);
    return kReturned;
  }
  if (what == "open-allowed") {
    SandboxPolicy policy;
    policy.allow_open = true;
    if (!Install(policy)) return kSetup;
    const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail("open /dev/null under open=allow");
    close(fd);
    // Still forbidden with open allowed: a network socket.
    socket(AF_INET, SOCK_DGRAM, 0);
    return kReturned;
  }
  if (what == "thread-open") {
    // A thread that exists before the filter (like the event loop) gets it too.
    std::atomic<bool> go{false};
    std::thread t([&] {
      pthread_setname_np(pthread_self(), "probe-thread");
      while (!go.load()) usleep(1000);
      open("/dev/null", O_RDONLY);
      _exit(kReturned);
    });
    if (!Install()) return kSetup;
    go = true;
    t.join();
    return kReturned;
  }
  if (what == "allowed") {
    if (!Install()) return kSetup;
    return Allowed();
  }
  if (what == "contend" || what == "contend-unprimed") {
    if (!Install({}, what == "contend")) return kSetup;
    return Contend();
  }
  if (what == "arenas" || what == "arenas-unprimed") {
    if (!Install({}, what == "arenas")) return kSetup;
    return Arenas();
  }
  if (what == "gmtime" || what == "gmtime-unprimed") {
    unsetenv("TZ");  // glibc then reads /etc/localtime on first use
    if (!Install({}, what == "gmtime")) return kSetup;
    const time_t now = time(nullptr);
    tm tm{};
    gmtime_r(&now, &tm);
    std::printf("gmtime: %d\n", tm.tm_year + 1900);
    return 0;
  }
  if (what == "fork") {
    if (!Install()) return kSetup;
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    return kReturned;
  }
  if (what == "exec-mapping") {
    if (!Install()) return kSetup;
    mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return kReturned;
  }
  if (what == "ioctl-tiocsti") {  // a terminal ioctl that is not on the list
    if (!Install()) return kSetup;
    char c = 'x';
    ioctl(STDIN_FILENO, TIOCSTI, &c);
    return kReturned;
  }
  if (what == "unlink-elsewhere") {  // unlinkat outside the QMP socket directories
    char tmpl[] = "/tmp/passage-sandbox-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fail("mkdtemp");
    TellTmpDir(tmpl);
    const int dir = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
    const std::string victim = std::string(tmpl) + "/victim", allowed = std::string(tmpl) + "/allowed";
    for (const std::string& f : {victim, allowed}) close(open(f.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
    SandboxPolicy policy;
    policy.unlink_dirs = {dir};
    if (!Install(policy)) return kSetup;
    if (unlinkat(dir, "allowed", 0) != 0) return Fail("unlinkat in the allowed directory");
    std::fprintf(stderr, "sandbox_probe: unlinkat relative to the allowed directory worked\n");
    unlinkat(AT_FDCWD, victim.c_str(), 0);
    return kReturned;
  }
  if (what == "qmp") return Qmp();
  if (what == "report") return Report();
  return Fail("unknown scenario " + what);
}
