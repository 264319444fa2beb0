// Runs the passage binary on /dev/kvm with the tiny guests in guests/tiny.
// Skips (with the reason) where /dev/kvm is absent or refuses to make a VM.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/kvm.h>
#include <poll.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace {

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The build tree's passage and tiny guests, unless the environment points
// elsewhere (the rig copies them into L1, where the build path may not exist).
std::string FromEnv(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// Runs passage with `args`; stdin is /dev/null.
Result RunPassage(const std::vector<std::string>& args) {
  std::vector<std::string> argv_s = {FromEnv("PASSAGE_BIN", PASSAGE_BIN)};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  Result r;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    r.err = std::string("<test: pipe2: ") + std::strerror(errno) + ">";
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  pid_t pid;
  if (const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ); rc != 0) {
    r.err = "<test: cannot run " + argv_s[0] + ": " + std::strerror(rc) + ">";
    return r;
  }
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  close(err[1]);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, 30000) <= 0) {
      kill(pid, SIGKILL);
      r.err += "<test: passage timed out after 30 s>";
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds) if (f.fd >= 0) close(f.fd);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string Tiny(const char* name) { return FromEnv("PASSAGE_TINY_DIR", TINY_DIR) + "/" + name; }

class TinyGuest : public ::testing::Test {
 protected:
  void SetUp() override {
    const int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) GTEST_SKIP() << "skipped: /dev/kvm not usable: " << std::strerror(errno);
    const int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    const int err = errno;
    close(kvm);
    if (vm < 0) GTEST_SKIP() << "skipped: KVM_CREATE_VM failed: " << std::strerror(err);
    close(vm);
  }
};

TEST_F(TinyGuest, RealModeHelloAndDebugExit) {
  Result r = RunPassage({"-kernel", Tiny("hello16.bin")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "tiny16: hello from real mode\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(TinyGuest, LongModeHighMemoryMmioAndPortIo) {
  Result r = RunPassage({"-m", "3200M", "-entry", "long", "-kernel", Tiny("long64.bin")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("tiny64: EFER.LMA set"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tiny64: RAM above 4 GiB ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tiny64: MMIO scratch ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tiny64: port read ok"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
}

// Without RAM above 4 GiB the guest's high-memory check must fail, and its
// status (bit 1) must come out as passage's exit code.
TEST_F(TinyGuest, HighMemoryCheckFailsWithoutHighRam) {
  Result r = RunPassage({"-m", "512M", "-entry", "long", "-kernel", Tiny("long64.bin")});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("tiny64: FAIL: RAM above 4 GiB"), std::string::npos) << r.out;
}

TEST_F(TinyGuest, SmpGuestStillRunsOnTheBootCpu) {
  Result r = RunPassage({"-smp", "4", "-kernel", Tiny("hello16.bin")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "tiny16: hello from real mode\n");
}

TEST_F(TinyGuest, SerialToFileAndNone) {
  char path[] = "/tmp/passage-serial-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  Result r = RunPassage({"-serial", std::string("file:") + path, "-kernel", Tiny("hello16.bin")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), "tiny16: hello from real mode\n");
  unlink(path);

  Result none = RunPassage({"-serial", "none", "-kernel", Tiny("hello16.bin")});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(none.out, "");
}

TEST_F(TinyGuest, BadInputExitsBeforeRunning) {
  Result missing = RunPassage({"-kernel", "/nonexistent/passage-test-image"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("-kernel"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.out, "");

  Result usage = RunPassage({"-m", "1X", "-kernel", Tiny("hello16.bin")});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_EQ(usage.out, "");
  EXPECT_NE(usage.err.find("-m"), std::string::npos) << usage.err;

  Result smp = RunPassage({"-smp", "0", "-kernel", Tiny("hello16.bin")});
  EXPECT_EQ(smp.exit_code, 2);
  EXPECT_NE(smp.err.find("-smp"), std::string::npos) << smp.err;

  Result dir = RunPassage({"-kernel", "/"});
  EXPECT_EQ(dir.exit_code, 1);
  EXPECT_NE(dir.err.find("not a regular file"), std::string::npos) << dir.err;
}

// A tiny driver for virtio-rng-pci: config space through CF8/CFC and ECAM,
// BARs as placed, MSI-X through KVM's GSI routing and an irqfd, one request
// filled from /dev/urandom. The guest's exit status names the failed step.
TEST_F(TinyGuest, VirtioRngThroughPciAndMsix) {
  Result r = RunPassage({"-entry", "long", "-serial", "none", "-kernel", Tiny("virtio_rng64.bin"),
                         "-device", "virtio-rng-pci,id=rng0,addr=3"});
  EXPECT_EQ(r.exit_code, 0) << "failed step " << r.exit_code << "\n" << r.err;
  // The same guest finds nothing at slot 3 without the device.
  Result none = RunPassage({"-entry", "long", "-serial", "none", "-kernel", Tiny("virtio_rng64.bin")});
  EXPECT_EQ(none.exit_code, 3) << none.err;
}

// -sandbox on (vmm/sandbox.h): the same guests run to the same end under
// the filter (vCPU exits, serial, 8 vCPU threads, PCI config, MSI-X through
// an irqfd, the exit reports); the test-only trigger is killed with its line.
TEST_F(TinyGuest, SandboxedRunsAndTheSelftestTrigger) {
  Result hello = RunPassage({"-sandbox", "on", "-smp", "8", "-kernel", Tiny("hello16.bin"), "--report-resources",
                             "--report-timing"});
  EXPECT_EQ(hello.exit_code, 0) << hello.err;
  EXPECT_EQ(hello.out, "tiny16: hello from real mode\n");
  // The exit report as without the sandbox (the files it reads at exit,
  // opened before the filter, are not counted).
  Result plain = RunPassage({"-smp", "8", "-kernel", Tiny("hello16.bin"), "--report-resources"});
  const auto resources = [](const std::string& err) {
    const size_t at = err.find("passage: resources at exit: ");
    return at == std::string::npos ? std::string("none") : err.substr(at, err.find('\n', at) - at);
  };
  EXPECT_EQ(resources(hello.err), resources(plain.err));
  EXPECT_NE(resources(hello.err).find("VmLck=0 kB VmPin=0 kB"), std::string::npos) << hello.err;
  EXPECT_NE(hello.err.find("passage: report-timing {"), std::string::npos) << hello.err;
  EXPECT_EQ(hello.err.find("passage: sandbox:"), std::string::npos) << hello.err;
  Result rng = RunPassage({"-sandbox", "on", "-entry", "long", "-serial", "none", "-kernel", Tiny("virtio_rng64.bin"),
                           "-device", "virtio-rng-pci,id=rng0,addr=3"});
  EXPECT_EQ(rng.exit_code, 0) << "failed step " << rng.exit_code << "\n" << rng.err;
  Result high = RunPassage({"-sandbox", "on", "-m", "3200M", "-entry", "long", "-kernel", Tiny("long64.bin")});
  EXPECT_EQ(high.exit_code, 0) << high.out << high.err;
  EXPECT_NE(high.out.find("tiny64: MMIO scratch ok"), std::string::npos) << high.out;

  setenv("PASSAGE_SANDBOX_SELFTEST", "1", 1);
  Result killed = RunPassage({"-sandbox", "on", "-serial", "none", "-kernel", Tiny("hello16.bin")});
  Result unsandboxed = RunPassage({"-kernel", Tiny("hello16.bin")});
  unsetenv("PASSAGE_SANDBOX_SELFTEST");
  EXPECT_EQ(killed.exit_code, 159) << killed.err;
  EXPECT_EQ(killed.err.rfind("passage: sandbox: forbidden system call 257 (openat) ", 0), 0u) << killed.err;
  EXPECT_NE(killed.err.find(" (passage-loop); exiting with status 159\n"), std::string::npos) << killed.err;
  // Without -sandbox on the variable does nothing.
  EXPECT_EQ(unsandboxed.exit_code, 0) << unsandboxed.err;
  EXPECT_EQ(unsandboxed.out, "tiny16: hello from real mode\n");
}

// A QMP session over a unix socket, enough for the test below: one
// command at a time (optionally with an fd by SCM_RIGHTS), replies read up
// to the line that has "return" or "error".
class QmpSession {
 public:
  explicit QmpSession(const std::string& path) {
    for (int i = 0; i < 100 && fd_ < 0; ++i) {  // passage binds the socket during set-up
      const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
      if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        fd_ = s;
      } else {
        close(s);
        usleep(50000);
      }
    }
  }
  ~QmpSession() {
    if (fd_ >= 0) close(fd_);
  }
  bool connected() const { return fd_ >= 0; }
  // The reply line (or "" on EOF / 10 s without one).
  std::string Command(const std::string& json, int pass_fd = -1) {
    const std::string line = json + "\n";
    iovec iov{const_cast<char*>(line.data()), line.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (pass_fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    if (sendmsg(fd_, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) return "";
    for (;;) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string reply = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (reply.find("\"return\"") != std::string::npos || reply.find("\"error\"") != std::string::npos) {
          return reply;
        }
        continue;  // greeting, events
      }
      pollfd p{fd_, POLLIN, 0};
      char chunk[4096];
      if (poll(&p, 1, 10000) <= 0) return "";
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

// QMP and hotplug under -sandbox on with a guest that idles (hlt; jmp .):
// getfd, device_add virtio-rng-pci by fd (its BARs, MSI-X eventfds and
// worker thread are made under the filter), a device_add naming a path
// refused (open is forbidden: no path on the command line), query-pci, a
// SIGUSR1 dump, quit: exit 0, the socket file removed, no sandbox line.
TEST_F(TinyGuest, SandboxedQmpHotplugByFd) {
  char dir_template[] = "/tmp/passage-kvm-sandbox-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template, image = dir + "/idle.bin", sock = dir + "/qmp.sock", err_path = dir + "/err";
  {
    std::ofstream(image, std::ios::binary) << std::string("\xf4\xeb\xfd", 3);
  }
  const int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  ASSERT_GE(kvm, 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, kvm, 5);
  std::vector<std::string> argv_s = {FromEnv("PASSAGE_BIN", PASSAGE_BIN), "-sandbox", "on", "-accel", "kvm,fd=5",
                                     "-serial", "none", "-kernel", image, "-qmp", "unix:" + sock + ",server=on,wait=off"};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  close(kvm);
  {
    QmpSession q(sock);
    ASSERT_TRUE(q.connected());
    EXPECT_NE(q.Command(R"({"execute":"qmp_capabilities"})").find("return"), std::string::npos);
    const int urandom = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    EXPECT_NE(q.Command(R"({"execute":"getfd","arguments":{"fdname":"rng"}})", urandom).find("return"),
              std::string::npos);
    close(urandom);
    const std::string add = q.Command(
        R"({"execute":"device_add","arguments":{"driver":"virtio-rng-pci","id":"rng0","fd":"rng"}})");
    EXPECT_EQ(add.find("error"), std::string::npos) << add;
    const std::string by_path =
        q.Command(R"({"execute":"device_add","arguments":{"driver":"virtio-rng-pci","id":"rng1"}})");
    EXPECT_NE(by_path.find("forbids opening files after set-up"), std::string::npos) << by_path;
    const std::string pci = q.Command(R"({"execute":"query-pci"})");
    EXPECT_NE(pci.find("\"qdev_id\":\"rng0\""), std::string::npos) << pci;
    EXPECT_EQ(pci.find("rng1"), std::string::npos) << pci;
    kill(pid, SIGUSR1);
    EXPECT_NE(q.Command(R"({"execute":"query-status"})").find("running"), std::string::npos);
    EXPECT_NE(q.Command(R"({"execute":"quit"})").find("return"), std::string::npos);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(err_path);
  std::stringstream err;
  err << in.rdbuf();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << " " << err.str();
  EXPECT_NE(err.str().find("passage: state dump (SIGUSR1)"), std::string::npos) << err.str();
  EXPECT_EQ(err.str().find("passage: sandbox:"), std::string::npos) << err.str();
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << "socket file left behind";
  unlink(image.c_str());
  unlink(err_path.c_str());
  rmdir(dir.c_str());
}

TEST_F(TinyGuest, DeviceErrorsExitBeforeRunning) {
  Result unknown = RunPassage({"-kernel", Tiny("hello16.bin"), "-device", "e1000"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("-device: unknown device 'e1000'"), std::string::npos) << unknown.err;
  Result dup = RunPassage({"-kernel", Tiny("hello16.bin"), "-device", "virtio-rng-pci,addr=4",
                           "-device", "virtio-rng-pci,addr=4"});
  EXPECT_EQ(dup.exit_code, 2);
  EXPECT_NE(dup.err.find("already used"), std::string::npos) << dup.err;
  Result missing = RunPassage({"-kernel", Tiny("hello16.bin"), "-device",
                               "virtio-rng-pci,id=r,filename=/nonexistent/rng"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("-device virtio-rng-pci,id=r: filename=/nonexistent/rng"), std::string::npos)
      << missing.err;
  EXPECT_EQ(missing.err.find('\n'), missing.err.size() - 1) << missing.err;  // one line
}

}  // namespace
