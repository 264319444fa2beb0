#include "vmm/qmp_server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/unit/qmp_fake_target.h"

namespace passage {
namespace {

using json = nlohmann::json;
using testing::FakeTarget;
using testing::OpenFdCount;

// A test's QMP client: one connected socket and a line reader.
class Client {
 public:
  explicit Client(const std::string& path) {
    fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    connected_ = connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_.get(); }

  bool SendRaw(const std::string& bytes, const std::vector<int>& fds = {}) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* cm = CMSG_FIRSTHDR(&msg);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
    }
    return sendmsg(fd_.get(), &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  bool Send(const json& message, const std::vector<int>& fds = {}) { return SendRaw(message.dump() + "\n", fds); }

  // The next line as JSON; null on EOF or after `timeout`.
  json Read(absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return json::parse(line);
      }
      const int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      pollfd p{fd_.get(), POLLIN, 0};
      if (left <= 0 || poll(&p, 1, left) <= 0) return nullptr;
      char chunk[4096];
      const ssize_t n = read(fd_.get(), chunk, sizeof(chunk));
      if (n <= 0) {
        eof_ = true;
        return nullptr;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // The next reply, skipping events.
  json Reply() {
    for (;;) {
      json m = Read();
      if (m.is_null() || !m.contains("event")) return m;
    }
  }
  json Command(const std::string& name, json args = nullptr, const std::vector<int>& fds = {}) {
    json msg = {{"execute", name}};
    if (!args.is_null()) msg["arguments"] = std::move(args);
    if (!Send(msg, fds)) return nullptr;
    return Reply();
  }
  bool Negotiate() { return Read().contains("QMP") && Command("qmp_capabilities") == json({{"return", json::object()}}); }
  // True once the server has closed the connection (within `timeout`).
  bool Closed(absl::Duration timeout = absl::Seconds(5)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!eof_ && absl::Now() < deadline) Read(deadline - absl::Now());
    return eof_;
  }

 private:
  UniqueFd fd_;
  bool connected_ = false;
  bool eof_ = false;
  std::string buf_;
};

// Polls `done` for up to 5 s (the loop thread acts asynchronously).
template <typename F>
bool WaitFor(F done) {
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

class QmpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/passage-qmp-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/qmp.sock";
  }
  void TearDown() override {
    server_.reset();
    unlink(path_.c_str());
    unlink((dir_ + "/second.sock").c_str());
    rmdir(dir_.c_str());
  }
  void Start(QmpServer::Options options = {}, std::vector<MonitorConfig> monitors = {}) {
    if (monitors.empty()) monitors = {{path_, "-qmp unix:" + path_}};
    absl::StatusOr<std::unique_ptr<QmpServer>> s = QmpServer::Create(monitors, options);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_TRUE(server_->Start(loop_, target_).ok());
  }

  std::string dir_, path_;
  FakeTarget target_;
  EventLoop loop_;
  std::unique_ptr<QmpServer> server_;
};

TEST_F(QmpServerTest, GreetingNegotiationAndSocketMode) {
  Start();
  struct stat st{};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Client c(path_);
  ASSERT_TRUE(c.connected());
  const json greeting = c.Read();
  EXPECT_EQ(greeting["QMP"]["capabilities"], json::array());
  EXPECT_TRUE(greeting["QMP"]["version"]["qemu"].contains("major"));
  EXPECT_EQ(c.Command("query-status")["error"]["class"], "CommandNotFound");
  EXPECT_EQ(c.Command("qmp_capabilities", nullptr), json({{"return", json::object()}}));
  EXPECT_EQ(c.Command("query-status")["return"]["status"], "running");
}

// Found while writing the rig's hotplug RLIMIT_NOFILE sweep: with no fd free,
// accept failed, the listener stayed readable and the loop spun. Now the
// connection is taken with a spare fd and closed, and the loop goes idle.
TEST_F(QmpServerTest, OutOfFdsClosesTheConnectionAndTheLoopDoesNotSpin) {
  Start();
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
  // Every fd from here on is refused: the limit is the lowest free fd.
  const int lowest = dup(0);
  ASSERT_GE(lowest, 0);
  close(lowest);
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(lowest);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  const int connected = connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  pollfd p{s, POLLIN, 0};
  const int ready = poll(&p, 1, 2000);
  char byte = 0;
  const ssize_t got = ready == 1 ? recv(s, &byte, 1, MSG_DONTWAIT) : -2;
  // Then the process's CPU time over 300 ms: a spinning loop takes ~all of it.
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  absl::SleepFor(absl::Milliseconds(300));
  getrusage(RUSAGE_SELF, &after);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  close(s);
  EXPECT_EQ(connected, 0);
  EXPECT_EQ(ready, 1) << "no answer within 2 s (the connection sat in the backlog)";
  EXPECT_EQ(got, 0) << "want EOF: closed unanswered";
  const auto us = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  EXPECT_LT(us(after) - us(before), 150000) << "the loop spins";
  // With fds again, the monitor answers as before.
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  EXPECT_EQ(c.Command("query-status")["return"]["status"], "running");
}

TEST_F(QmpServerTest, SplitAndCoalescedMessages) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  const std::string msg = R"({"execute": "query-status", "id": 1})";
  for (char ch : msg) {
    ASSERT_TRUE(c.SendRaw(std::string(1, ch)));
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(c.Reply()["id"], 1);
  ASSERT_TRUE(c.SendRaw(R"({"execute": "stop", "id": 2}{"execute": "cont", "id": 3} {"execute": "query-status", "id": 4})"));
  EXPECT_EQ(c.Reply()["id"], 2);
  EXPECT_EQ(c.Reply()["id"], 3);
  const json r = c.Reply();
  EXPECT_EQ(r["id"], 4);
  EXPECT_EQ(r["return"]["status"], "running");
}

TEST_F(QmpServerTest, MalformedJsonGetsAnErrorAndTheConnectionSurvives) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  ASSERT_TRUE(c.SendRaw("{\"execute\": ]\n"));
  EXPECT_EQ(c.Reply()["error"]["class"], "GenericError");
  ASSERT_TRUE(c.SendRaw("garbage\n"));
  EXPECT_EQ(c.Reply()["error"]["class"], "GenericError");
  EXPECT_EQ(c.Command("query-status")["return"]["status"], "running");
}

TEST_F(QmpServerTest, OversizedMessageClosesTheConnectionAndLeavesTheVmAlone) {
  QmpServer::Options options;
  options.max_message = 4096;
  Start(options);
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  const std::vector<std::string> before = target_.Calls();
  c.SendRaw(R"({"execute": "quit", "arguments": {"x": ")" + std::string(8192, 'a') + "\"}}");
  const json r = c.Reply();
  EXPECT_EQ(r["error"]["class"], "GenericError") << r;
  EXPECT_TRUE(c.Closed());
  EXPECT_EQ(target_.Calls(), before);
  Client d(path_);
  EXPECT_TRUE(d.Negotiate());  // the server goes on
}

TEST_F(QmpServerTest, ScmRightsGetfdThenDeviceAdd) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  const int before = OpenFdCount();
  EXPECT_EQ(c.Command("getfd", {{"fdname", "rng"}}, {r.get()}), json({{"return", json::object()}}));
  r.reset();  // passage holds its own copy now
  EXPECT_EQ(c.Command("device_add", {{"driver", "virtio-rng-pci"}, {"id", "rng0"}, {"fd", "rng"}}),
            json({{"return", json::object()}}));
  ASSERT_EQ(target_.taken_fds.size(), 1u);
  ASSERT_EQ(write(w.get(), "ok", 2), 2);
  char buf[2];
  ASSERT_EQ(read(target_.taken_fds[0].get(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "ok");
  target_.taken_fds.clear();
  EXPECT_EQ(OpenFdCount(), before - 1);
}

TEST_F(QmpServerTest, FdsWithBadMessagesAreClosed) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  const int before = OpenFdCount();
  for (const std::string& bad : {std::string("{\"execute\": ]\n"), std::string("[1, 2]\n"),
                                 std::string("{\"execute\": \"nope\"}\n"), std::string("{\"execute\": \"cont\"}\n")}) {
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    ASSERT_TRUE(c.SendRaw(bad, {p[0], p[1]}));
    close(p[0]);
    close(p[1]);
    ASSERT_FALSE(c.Reply().is_null());
    EXPECT_EQ(OpenFdCount(), before) << bad;
  }
}

TEST_F(QmpServerTest, DisconnectMidMessageClosesItsFds) {
  Start();
  const int before = OpenFdCount();
  {
    Client c(path_);
    ASSERT_TRUE(c.Negotiate());
    int p[2];
    ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
    ASSERT_TRUE(c.SendRaw(R"({"execute": "getfd", "arguments": {"fdn)", {p[0], p[1]}));
    close(p[0]);
    close(p[1]);
    ASSERT_TRUE(c.SendRaw(R"(ame": "x"})"));  // still not complete
  }
  EXPECT_TRUE(WaitFor([&] { return server_->clients() == 0 && OpenFdCount() == before; }));
  EXPECT_EQ(server_->clients(), 0);
  EXPECT_EQ(OpenFdCount(), before);
}

TEST_F(QmpServerTest, ClientThatNeverReadsIsDroppedAndOthersAreServed) {
  QmpServer::Options options;
  options.max_output = 64 * 1024;
  Start(options);
  Client slow(path_);
  ASSERT_TRUE(slow.Negotiate());
  int small = 4096;
  setsockopt(slow.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  Client fast(path_);
  ASSERT_TRUE(fast.Negotiate());
  // Many replies the slow client never reads: its queue passes the cap.
  std::string batch;
  for (int i = 0; i < 200; ++i) batch += R"({"execute": "query-commands"})";
  for (int i = 0; i < 50 && server_->clients() == 2; ++i) {
    if (!slow.SendRaw(batch)) break;  // the server has dropped it
    EXPECT_EQ(fast.Command("query-status")["return"]["status"], "running");
  }
  EXPECT_TRUE(WaitFor([&] { return server_->clients() == 1; }));
  EXPECT_TRUE(slow.Closed());
  EXPECT_EQ(fast.Command("query-status")["return"]["status"], "running");
}

TEST_F(QmpServerTest, EventsGoToNegotiatedClientsOnly) {
  Start();
  Client negotiated(path_);
  ASSERT_TRUE(negotiated.Negotiate());
  Client fresh(path_);
  ASSERT_TRUE(fresh.Read().contains("QMP"));
  server_->Emit("STOP", nullptr);
  const json e = negotiated.Read();
  EXPECT_EQ(e["event"], "STOP");
  EXPECT_TRUE(e["timestamp"].contains("seconds"));
  EXPECT_TRUE(fresh.Read(absl::Milliseconds(200)).is_null());
  // Emit from another thread, as a vCPU would.
  std::thread t([&] { server_->Emit("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}}); });
  t.join();
  EXPECT_EQ(negotiated.Read()["data"]["reason"], "guest-shutdown");
}

TEST_F(QmpServerTest, FlushAndCloseDeliverTheLastEventThenHangUp) {
  Start();
  Client c(path_);
  ASSERT_TRUE(c.Negotiate());
  // More than the socket buffer holds: Close must wait for the client to read.
  const std::string big(300 * 1024, 'x');
  server_->Emit("BIG", {{"x", big}});
  server_->Emit("SHUTDOWN", {{"guest", false}, {"reason", "host-qmp-quit"}});
  std::thread reader([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_EQ(c.Read()["data"]["x"], big);
    EXPECT_EQ(c.Read()["event"], "SHUTDOWN");
  });
  server_->Close(absl::Seconds(5));
  reader.join();
  EXPECT_TRUE(c.Closed());
  struct stat st{};
  EXPECT_NE(lstat(path_.c_str(), &st), 0) << "socket file left behind";
}

TEST_F(QmpServerTest, SeveralMonitors) {
  const std::string second = dir_ + "/second.sock";
  Start({}, {{path_, "-qmp unix:" + path_}, {second, "-chardev socket,id=mon1"}});
  Client a(path_), b(second);
  EXPECT_TRUE(a.Negotiate());
  EXPECT_TRUE(b.Negotiate());
}

TEST_F(QmpServerTest, StaleSocketIsReplacedLiveOneIsRefused) {
  {
    // A socket file whose server is gone.
    UniqueFd s(socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    ASSERT_EQ(bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  struct stat st{};
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  Start();
  Client c(path_);
  EXPECT_TRUE(c.Negotiate());
  // Now it is live: a second server on the same path is refused.
  absl::StatusOr<UniqueFd> again = ListenUnixSocket(path_, "-qmp unix:X");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message().rfind("-qmp unix:X: ", 0), 0u) << again.status();
  EXPECT_NE(again.status().message().find("in use"), std::string::npos) << again.status();
}

TEST_F(QmpServerTest, NonSocketFileIsRefused) {
  const std::string file = dir_ + "/second.sock";
  UniqueFd f(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  absl::StatusOr<UniqueFd> s = ListenUnixSocket(file, "-chardev socket,id=m");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(std::string(s.status().message()),
            "-chardev socket,id=m: '" + file + "' exists and is not a socket");
  struct stat st{};
  EXPECT_EQ(lstat(file.c_str(), &st), 0);  // left as it was
  EXPECT_TRUE(S_ISREG(st.st_mode));
  absl::StatusOr<UniqueFd> too_long = ListenUnixSocket(std::string(200, 'a'), "-qmp unix:long");
  EXPECT_FALSE(too_long.ok());
}

}  // namespace
}  // namespace passage
