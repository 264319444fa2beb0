#include "vmm/qmp_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace passage {
namespace {

constexpr int kMaxFdsPerRead = 8;  // SCM_RIGHTS fds taken per recvmsg; the kernel closes the rest
constexpr size_t kReadChunk = 64 * 1024;

absl::Status SocketError(absl::string_view label, absl::string_view what, int err = errno) {
  return absl::ErrnoToStatus(err, absl::StrCat(label, ": ", what));
}

}  // namespace

absl::StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, absl::string_view label) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, ": socket path must be 1 to ", sizeof(addr.sun_path) - 1, " bytes long"));
  }
  path.copy(addr.sun_path, path.size());
  struct stat st{};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(label, ": '", path, "' exists and is not a socket"));
    }
    // A socket file outlives its server: if nobody listens, it is ours to
    // replace; if someone does, another VMM (or passage) is using it.
    UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe.valid()) return SocketError(label, "socket");
    if (connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 || errno == EAGAIN) {
      return absl::FailedPreconditionError(
          absl::StrCat(label, ": '", path, "' is in use (a server is listening on it)"));
    }
    if (errno != ECONNREFUSED) return SocketError(label, absl::StrCat("cannot probe '", path, "'"));
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return SocketError(label, absl::StrCat("cannot remove stale socket '", path, "'"));
    }
  } else if (errno != ENOENT) {
    return SocketError(label, absl::StrCat("cannot stat '", path, "'"));
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return SocketError(label, "socket");
  // Linux creates the socket file with the socket inode's mode (less the
  // umask): 0600 from the start, no window in which others could connect.
  if (fchmod(fd.get(), 0600) != 0) return SocketError(label, "fchmod");
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return SocketError(label, absl::StrCat("cannot bind '", path, "'"));
  }
  if (listen(fd.get(), 8) != 0) {
    const int err = errno;
    unlink(path.c_str());
    return SocketError(label, "listen", err);
  }
  return fd;
}

absl::StatusOr<std::unique_ptr<QmpServer>> QmpServer::Create(const std::vector<MonitorConfig>& monitors,
                                                             Options options) {
  std::unique_ptr<QmpServer> server(new QmpServer(std::move(options)));
  for (const MonitorConfig& m : monitors) {
    absl::StatusOr<UniqueFd> fd = ListenUnixSocket(m.path, m.label);
    if (!fd.ok()) return fd.status();  // the destructor removes the sockets made so far
    auto l = std::make_unique<Listener>();
    l->fd = std::move(*fd);
    l->path = m.path;
    l->label = m.label;
    // The directory, held from now: the file is removed relative to it.
    const size_t slash = m.path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : m.path.substr(0, slash);
    l->name = slash == std::string::npos ? m.path : m.path.substr(slash + 1);
    l->dir.reset(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat st{};
    if (stat(m.path.c_str(), &st) == 0) {
      l->dev = st.st_dev;
      l->ino = st.st_ino;
    }
    server->listeners_.push_back(std::move(l));
  }
  return server;
}

QmpServer::~QmpServer() { Close(); }

absl::Status QmpServer::Start(EventLoop& loop, ControlTarget& target) {
  loop_ = &loop;
  target_ = &target;
  out_epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!out_epoll_.valid()) return ErrnoError("QMP: epoll_create1");
  spare_.reset(eventfd(0, EFD_CLOEXEC));
  if (!spare_.valid()) return ErrnoError("QMP: eventfd (the spare fd)");
  if (absl::Status s = loop.Add(out_epoll_.get(), [this] { OnWritable(); }); !s.ok()) return s;
  for (auto& l : listeners_) {
    Listener* listener = l.get();
    if (absl::Status s = loop.Add(l->fd.get(), [this, listener] { Accept(*listener); }); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void QmpServer::Accept(Listener& listener) {
  for (int i = 0; i < 16 && !closing_.load(); ++i) {
    UniqueFd fd(accept4(listener.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid() && (errno == EMFILE || errno == ENFILE) && spare_.valid()) {
      // Out of fds: take the connection with the spare one and close it (the
      // client sees the connection end), then hold a spare again.
      const int err = errno;
      spare_.reset();
      UniqueFd(accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      spare_.reset(eventfd(0, EFD_CLOEXEC));
      if (refused_for_fds_++ % 100 == 0) {
        std::fprintf(stderr, "passage: %s: a QMP connection closed unanswered: %s (%d so far)\n",
                     listener.label.c_str(), std::strerror(err), refused_for_fds_);
      }
      continue;
    }
    if (!fd.valid()) return;  // EAGAIN, or the client gave up
    if (listener.clients >= options_.max_clients) continue;  // closed: too many on this monitor
    auto c = std::make_unique<Client>();
    const int raw = fd.get();
    c->fd = std::move(fd);
    c->listener = &listener;
    c->framer = std::make_unique<QmpFramer>(options_.max_message);
    c->fds = std::make_unique<QmpFdRouter>(static_cast<size_t>(options_.max_pending_fds));
    c->session = std::make_unique<QmpSession>(*target_, fdsets_, options_.version);
    const std::string greeting = QmpLine(c->session->Greeting());
    {
      absl::MutexLock lock(&mu_);
      Client& client = *c;
      clients_[raw] = std::move(c);
      Queue(client, greeting);
    }
    ++listener.clients;
    if (!loop_->Add(raw, [this, raw] { OnReadable(raw); }).ok()) CloseClient(raw);
  }
}

QmpServer::Client* QmpServer::Find(int fd) {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(fd);
  return it == clients_.end() ? nullptr : it->second.get();
}

void QmpServer::OnReadable(int fd) {
  Client* c = Find(fd);
  if (c == nullptr) return;
  bool dead;
  {
    absl::MutexLock lock(&mu_);
    dead = c->dead;
  }
  if (dead) {
    CloseClient(fd);
    return;
  }
  std::string buf(kReadChunk, '\0');
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerRead)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // The fds come first: whatever happens next, they are owned (and closed).
  std::vector<UniqueFd> received;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int rfd;
      std::memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      received.emplace_back(rfd);
    }
  }
  if (n <= 0) {  // end of stream (mid-message or not) or an error
    CloseClient(fd);
    return;
  }
  std::vector<QmpFramer::Frame> frames;
  const bool ok = c->framer->Feed(absl::string_view(buf.data(), static_cast<size_t>(n)), frames);
  // Fds belong to the message they were sent with (QmpFdRouter says which).
  std::vector<std::vector<UniqueFd>> frame_fds = c->fds->Route(frames.size(), std::move(received));
  for (size_t i = 0; i < frames.size(); ++i) {
    // No lock while the command runs: it may emit events (which lock).
    const nlohmann::json reply = c->session->Handle(frames[i], std::move(frame_fds[i]));
    absl::MutexLock lock(&mu_);
    c->negotiated = c->session->negotiated();
    Queue(*c, QmpLine(reply));
  }
  if (!ok) {
    // The end of an oversized message cannot be found: say so and hang up.
    {
      absl::MutexLock lock(&mu_);
      Queue(*c, QmpLine(QmpError("GenericError", absl::StrCat("QMP message longer than ", options_.max_message,
                                                               " bytes; closing the connection"))));
    }
    CloseClient(fd);
  }
}

void QmpServer::Queue(Client& c, const std::string& line) {
  if (c.dead) return;
  if (c.out.size() + line.size() > options_.max_output) {
    // A client that does not read must not grow passage without bound, nor
    // hold up the loop: it is dropped (the loop thread closes it on EOF).
    c.dead = true;
    c.out.clear();
    c.out.shrink_to_fit();
    shutdown(c.fd.get(), SHUT_RDWR);
    return;
  }
  c.out += line;
  WriteOut(c);
}

void QmpServer::WriteOut(Client& c) {
  while (!c.out.empty()) {
    const ssize_t n = send(c.fd.get(), c.out.data(), c.out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      c.dead = true;  // EPIPE and the like: the read side sees the end too
      c.out.clear();
      shutdown(c.fd.get(), SHUT_RDWR);
    }
    break;
  }
  const bool want = !c.out.empty() && !c.dead;
  if (want == c.want_write || !out_epoll_.valid()) return;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.fd = c.fd.get();
  epoll_ctl(out_epoll_.get(), want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c.fd.get(), &ev);
  c.want_write = want;
}

void QmpServer::OnWritable() {
  epoll_event events[16];
  const int n = epoll_wait(out_epoll_.get(), events, 16, 0);
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < n; ++i) {
    auto it = clients_.find(events[i].data.fd);
    if (it != clients_.end()) WriteOut(*it->second);
  }
}

void QmpServer::CloseClient(int fd) {
  if (loop_ != nullptr) loop_->Remove(fd);
  std::unique_ptr<Client> c;
  {
    absl::MutexLock lock(&mu_);
    auto it = clients_.find(fd);
    if (it == clients_.end()) return;
    c = std::move(it->second);
    clients_.erase(it);
    if (c->want_write) epoll_ctl(out_epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    // As QEMU: fd sets live while some monitor is connected.
    if (clients_.empty()) fdsets_.Clear();
  }
  if (c->listener != nullptr) --c->listener->clients;
  // `c` goes here: its socket, its getfd fds and any fds it had pending.
}

void QmpServer::Emit(std::string_view event, nlohmann::json data) {
  const std::string line = QmpLine(QmpEvent(event, std::move(data)));
  absl::MutexLock lock(&mu_);
  for (auto& [fd, c] : clients_) {
    if (c->negotiated) Queue(*c, line);
  }
}

void QmpServer::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  for (auto& [fd, c] : clients_) {
    WriteOut(*c);
    while (!c->out.empty() && !c->dead) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return;
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) <= 0) return;
      WriteOut(*c);
    }
  }
}

void QmpServer::Close(absl::Duration flush) {
  if (closing_.exchange(true)) return;
  if (loop_ != nullptr) {
    // Listeners first: once their callbacks are out, no client is added.
    for (auto& l : listeners_) loop_->Remove(l->fd.get());
    if (out_epoll_.valid()) loop_->Remove(out_epoll_.get());
    std::vector<int> fds;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [fd, c] : clients_) fds.push_back(fd);
    }
    for (int fd : fds) loop_->Remove(fd);
  }
  if (flush > absl::ZeroDuration()) Flush(flush);
  {
    absl::MutexLock lock(&mu_);
    clients_.clear();
    fdsets_.Clear();
  }
  for (auto& l : listeners_) {
    // Remove the socket file only if it is still the one we made.
    struct stat st{};
    if (l->dir.valid()) {
      if (fstatat(l->dir.get(), l->name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == l->dev &&
          st.st_ino == l->ino) {
        unlinkat(l->dir.get(), l->name.c_str(), 0);
      }
    } else if (lstat(l->path.c_str(), &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) {
      unlink(l->path.c_str());
    }
    l->fd.reset();
    l->dir.reset();
  }
}

std::vector<int> QmpServer::SocketDirs() const {
  std::vector<int> dirs;
  for (const auto& l : listeners_) {
    if (l->dir.valid()) dirs.push_back(l->dir.get());
  }
  return dirs;
}

int QmpServer::clients() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(clients_.size());
}

}  // namespace passage
