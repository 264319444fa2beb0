// One epoll thread for the VM's asynchronous work: device eventfds (VFIO
// interrupts that need emulation: a masked or disabled MSI/MSI-X vector;
// unmasked ones bypass it), later the control socket. Callbacks run on the
// loop thread, one at a time.
#ifndef PASSAGE_DEVICES_EVENT_LOOP_H_
#define PASSAGE_DEVICES_EVENT_LOOP_H_

#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "memory/unique_fd.h"

namespace passage {

class EventLoop {
 public:
  using Callback = std::function<void()>;
  // The loop thread's name (at most 15 characters).
  static constexpr char kThreadName[] = "passage-loop";

  EventLoop();
  // Stops the thread; callbacks never run after this returns.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Calls `callback` on the loop thread whenever `fd` is readable. The fd
  // stays owned by the caller and must outlive its registration.
  absl::Status Add(int fd, Callback callback) ABSL_LOCKS_EXCLUDED(mu_);
  // After Remove returns, `fd`'s callback is not running and will not run.
  void Remove(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  bool running() const { return thread_.joinable(); }
  // Why the loop did not start (epoll or eventfd refused); OK when running.
  const absl::Status& start_status() const { return start_status_; }

 private:
  void Run();

  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd to stop the thread
  absl::Mutex mu_;
  std::map<int, std::shared_ptr<Callback>> callbacks_ ABSL_GUARDED_BY(mu_);
  // The fd whose callback the loop thread is running (-1: none); Remove
  // waits on idle_ until it is not the fd being removed.
  int running_fd_ ABSL_GUARDED_BY(mu_) = -1;
  absl::CondVar idle_;
  absl::Status start_status_;
  std::thread thread_;
};

// An eventfd owned with its registration: `callback` runs (on the loop
// thread) each time something signals the fd; the count is consumed first.
class LoopEventfd {
 public:
  static absl::StatusOr<std::unique_ptr<LoopEventfd>> Create(EventLoop& loop,
                                                             EventLoop::Callback callback);
  ~LoopEventfd();
  int fd() const { return fd_.get(); }

 private:
  LoopEventfd(EventLoop& loop, UniqueFd fd) : loop_(loop), fd_(std::move(fd)) {}
  EventLoop& loop_;
  UniqueFd fd_;
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_EVENT_LOOP_H_
