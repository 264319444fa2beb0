#include "devices/virtio/virtio_rng.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace passage {

absl::StatusOr<std::unique_ptr<VirtioRng>> VirtioRng::Create(UniqueFd source) {
  if (!source.valid()) return absl::InvalidArgumentError("virtio-rng: no entropy source");
  UniqueFd cancel(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel.valid()) return ErrnoError("virtio-rng: eventfd");
  return std::unique_ptr<VirtioRng>(new VirtioRng(std::move(source), std::move(cancel)));
}

VirtioRng::~VirtioRng() {
  Stop();
  std::thread worker;
  {
    absl::MutexLock lock(&mu_);
    exiting_ = true;
    cv_.SignalAll();
    worker = std::move(worker_);
  }
  if (worker.joinable()) worker.join();
}

void VirtioRng::Start(std::vector<Virtqueue*> queues, VirtioNotifier* notifier) {
  absl::MutexLock lock(&mu_);
  // The worker starts with the driver (DRIVER_OK), not with the device: a
  // function no driver ever sets up costs no thread. It waits for mu_.
  if (!worker_.joinable()) worker_ = std::thread([this] { Run(); });
  queue_ = queues.empty() ? nullptr : queues[0];
  notifier_ = notifier;
  kicked_ = true;  // the driver may have posted buffers before DRIVER_OK
  cv_.SignalAll();
}

void VirtioRng::Kick(uint16_t queue) {
  if (queue != 0) return;
  absl::MutexLock lock(&mu_);
  kicked_ = true;
  cv_.SignalAll();
}

void VirtioRng::Stop() {
  absl::MutexLock lock(&mu_);
  queue_ = nullptr;
  notifier_ = nullptr;
  kicked_ = false;
  const uint64_t one = 1;
  (void)!::write(cancel_.get(), &one, sizeof(one));
  while (busy_) cv_.Wait(&mu_);
  uint64_t drained;
  (void)!::read(cancel_.get(), &drained, sizeof(drained));
}

uint64_t VirtioRng::bytes_served() const {
  absl::MutexLock lock(&mu_);
  return bytes_served_;
}

ssize_t VirtioRng::ReadSource(uint8_t* dst, size_t len) {
  for (;;) {
    pollfd fds[2] = {{source_.get(), POLLIN, 0}, {cancel_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    if (fds[1].revents & POLLIN) return -1;
    const ssize_t n = ::read(source_.get(), dst, len);
    if (n >= 0) return n;
    if (errno != EINTR && errno != EAGAIN) return 0;  // a broken source serves nothing
  }
}

bool VirtioRng::Drain(Virtqueue& queue, VirtioNotifier& notifier) {
  bool used = false;
  bool ok = true;
  for (;;) {
    absl::StatusOr<std::optional<DescriptorChain>> chain = queue.Pop();
    if (!chain.ok()) {
      notifier.QueueBroken(0, chain.status());
      ok = false;
      break;
    }
    if (!chain->has_value()) break;
    uint32_t written = 0;
    bool cancelled = false;
    for (const VirtqueueBuffer& b : (*chain)->buffers) {
      if (!b.device_writable) continue;  // requests are write-only; ignore the rest
      uint32_t off = 0;
      while (off < b.len && written < kMaxRequest) {
        const ssize_t n = ReadSource(b.host + off, std::min<size_t>(b.len - off, kMaxRequest - written));
        if (n < 0) cancelled = true;
        if (n <= 0) break;
        off += static_cast<uint32_t>(n);
        written += static_cast<uint32_t>(n);
      }
      if (cancelled || off < b.len) break;
    }
    if (cancelled) return false;  // a reset discards the queue anyway
    queue.PushUsed((*chain)->head, written);
    used = true;
    absl::MutexLock lock(&mu_);
    bytes_served_ += written;
  }
  if (used && queue.NeedsInterrupt()) notifier.QueueUsed(0);
  return ok;
}

void VirtioRng::Run() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    while (!exiting_ && !(kicked_ && queue_ != nullptr)) cv_.Wait(&mu_);
    if (exiting_) return;
    kicked_ = false;
    busy_ = true;
    Virtqueue* queue = queue_;
    VirtioNotifier* notifier = notifier_;
    mu_.Unlock();
    const bool ok = Drain(*queue, *notifier);
    mu_.Lock();
    busy_ = false;
    // A broken queue stays idle until the driver resets the device.
    if (!ok && queue_ == queue) queue_ = nullptr;
    cv_.SignalAll();
  }
}

}  // namespace passage
