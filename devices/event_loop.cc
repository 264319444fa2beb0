#include "devices/event_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace passage {

EventLoop::EventLoop()
    : epoll_(epoll_create1(EPOLL_CLOEXEC)), wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  // A failure is kept for the owner to report (start_status()), never
  // printed here: the run's one error line is the owner's.
  if (!epoll_.valid()) {
    start_status_ = ErrnoError("event loop: epoll_create1");
    return;
  }
  if (!wake_.valid()) {
    start_status_ = ErrnoError("event loop: eventfd");
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    start_status_ = ErrnoError("event loop: epoll_ctl ADD");
    return;
  }
  thread_ = std::thread([this] { Run(); });
}

EventLoop::~EventLoop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!write(wake_.get(), &one, sizeof(one));
    thread_.join();
  }
}

absl::Status EventLoop::Add(int fd, Callback callback) {
  if (!running()) return absl::FailedPreconditionError("event loop is not running");
  absl::MutexLock lock(&mu_);
  if (callbacks_.count(fd)) {
    return absl::AlreadyExistsError(absl::StrCat("event loop: fd ", fd, " registered twice"));
  }
  callbacks_[fd] = std::make_shared<Callback>(std::move(callback));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    callbacks_.erase(fd);
    return ErrnoError(absl::StrCat("event loop: epoll_ctl ADD fd ", fd));
  }
  return absl::OkStatus();
}

void EventLoop::Remove(int fd) {
  absl::MutexLock lock(&mu_);
  if (callbacks_.erase(fd) == 0) return;
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  // Wait out this fd's callback if it is running right now (unless we are
  // it). Only this fd's: a callback of another fd (a QMP command creating a
  // device, say) may be what holds the caller's locks' order up.
  if (std::this_thread::get_id() == thread_.get_id()) return;
  while (running_fd_ == fd) idle_.Wait(&mu_);
}

void EventLoop::Run() {
  // Named so tools (and the rig) can find it: /proc/PID/task/TID/comm.
  pthread_setname_np(pthread_self(), kThreadName);
  epoll_event events[32];
  for (;;) {
    const int n = epoll_wait(epoll_.get(), events, 32, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("passage: epoll_wait");
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_.get()) return;
      std::shared_ptr<Callback> cb;
      {
        absl::MutexLock lock(&mu_);
        auto it = callbacks_.find(fd);
        if (it == callbacks_.end()) continue;  // removed meanwhile
        cb = it->second;
        running_fd_ = fd;
      }
      // No loop lock is held while a callback runs: what it locks is
      // ordered only against its own callers.
      (*cb)();
      absl::MutexLock lock(&mu_);
      running_fd_ = -1;
      idle_.SignalAll();
    }
  }
}

absl::StatusOr<std::unique_ptr<LoopEventfd>> LoopEventfd::Create(EventLoop& loop,
                                                                 EventLoop::Callback callback) {
  UniqueFd fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd.valid()) return ErrnoError("eventfd");
  const int raw = fd.get();
  std::unique_ptr<LoopEventfd> e(new LoopEventfd(loop, std::move(fd)));
  absl::Status s = loop.Add(raw, [raw, callback = std::move(callback)] {
    uint64_t count;
    if (read(raw, &count, sizeof(count)) == sizeof(count)) callback();
  });
  if (!s.ok()) {
    e->fd_.reset();
    return s;
  }
  return e;
}

LoopEventfd::~LoopEventfd() {
  if (fd_.valid()) loop_.Remove(fd_.get());
}

}  // namespace passage
