// The QMP server: passage's monitors (-qmp, -chardev + -mon), each a unix
// socket, served on the VM's event loop. Every client gets QEMU's greeting,
// then one reply per message (vmm/qmp_commands.h) and, once it has negotiated
// capabilities, every event. Nothing a client does blocks the loop or a vCPU:
// sockets are non-blocking, input per message and output per client are
// capped (a client over either cap is dropped), and fds sent with
// SCM_RIGHTS that no command takes are closed.
#ifndef PASSAGE_VMM_QMP_SERVER_H_
#define PASSAGE_VMM_QMP_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "devices/event_loop.h"
#include "memory/unique_fd.h"
#include "vmm/config.h"
#include "vmm/control.h"
#include "vmm/qmp_commands.h"
#include "vmm/qmp_framing.h"

namespace passage {

// A listening unix stream socket at `path`, created mode 0600. A socket
// file nobody listens on (connect: ECONNREFUSED) is replaced; a live one, or
// a file that is not a socket, is an error naming `label` (the flag).
absl::StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, absl::string_view label);

class QmpServer : public EventSink {
 public:
  struct Options {
    std::string version = "0.0.0";  // passage's, for the greeting and query-version
    size_t max_message = QmpFramer::kDefaultMaxMessage;
    size_t max_output = 1 << 20;  // bytes queued for one client before it is dropped
    int max_clients = 8;  // per monitor; more are accepted and closed at once
    int max_pending_fds = 16;  // per client, received and not yet given to a command
  };

  // Creates every monitor's socket; nothing is served before Start.
  static absl::StatusOr<std::unique_ptr<QmpServer>> Create(const std::vector<MonitorConfig>& monitors,
                                                           Options options);
  ~QmpServer() override;

  // Serves on `loop`; commands call `target` on the loop thread. Both must
  // outlive Close().
  absl::Status Start(EventLoop& loop, ControlTarget& target) ABSL_LOCKS_EXCLUDED(mu_);
  // To every negotiated client; any thread.
  void Emit(std::string_view event, nlohmann::json data) override ABSL_LOCKS_EXCLUDED(mu_);
  // Writes what is queued for each client, waiting up to `timeout` in all
  // (teardown: clients see SHUTDOWN and quit's reply before the close).
  void Flush(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops serving: no command runs after this; what is queued is written
  // (waiting up to `flush` in all: clients see SHUTDOWN and quit's reply,
  // even one a command queued a moment ago); then clients and sockets close
  // and the socket files go. Events go nowhere after this. Idempotent; the
  // destructor does it without waiting.
  void Close(absl::Duration flush = absl::ZeroDuration()) ABSL_LOCKS_EXCLUDED(mu_);

  int clients() ABSL_LOCKS_EXCLUDED(mu_);
  // The directory fds of the socket files (O_PATH): Close removes each file
  // relative to its directory, so -sandbox on can allow unlinkat there only.
  std::vector<int> SocketDirs() const;

 private:
  struct Listener {
    UniqueFd fd;
    std::string path;
    UniqueFd dir;      // O_PATH of the socket file's directory (-1: use `path`)
    std::string name;  // the file's name in `dir`
    std::string label;
    dev_t dev = 0;
    ino_t ino = 0;
    int clients = 0;  // loop thread
  };
  struct Client {
    UniqueFd fd;
    Listener* listener = nullptr;
    // Loop thread only.
    std::unique_ptr<QmpFramer> framer;
    std::unique_ptr<QmpSession> session;
    std::unique_ptr<QmpFdRouter> fds;  // fds that arrived before their message was complete
    // Under mu_.
    std::string out;
    bool negotiated = false;
    bool dead = false;  // over its output cap: closed by the loop thread
    bool want_write = false;  // in out_epoll_
  };

  explicit QmpServer(Options options) : options_(std::move(options)) {}
  void Accept(Listener& listener);
  void OnReadable(int fd);
  void OnWritable();
  void CloseClient(int fd);
  // Appends `line` and writes what the socket takes now; the rest waits
  // for EPOLLOUT. Over the cap the client is marked dead and shut down.
  void Queue(Client& client, const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteOut(Client& client) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Client* Find(int fd) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  // One fd held back (an eventfd) so that a connection can still be taken
  // off a listener and closed when passage is out of fds: otherwise the
  // listener stays readable and the loop spins on a failing accept.
  UniqueFd spare_;
  int refused_for_fds_ = 0;  // loop thread: connections closed that way
  std::vector<std::unique_ptr<Listener>> listeners_;
  EventLoop* loop_ = nullptr;
  ControlTarget* target_ = nullptr;
  QmpFdSets fdsets_;  // loop thread
  UniqueFd out_epoll_;  // clients waiting to write (EPOLLOUT); itself on the loop
  std::atomic<bool> closing_{false};
  absl::Mutex mu_;
  std::map<int, std::unique_ptr<Client>> clients_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_VMM_QMP_SERVER_H_
