// passage-noopen [--deny PREFIX]... [--allow PATH]... -- CMD [ARGS...]: runs
// CMD so that no path under /dev or /sys (or each --deny PREFIX instead),
// except each --allow PATH exactly, can be opened,
// stat'ed, listed, executed or otherwise looked up by CMD, its threads or its
// children, by any libc function or raw system call. The rig runs passage
// under it to check "every file comes as an fd".
//
// How: the child installs a seccomp filter (libseccomp) that hands every
// path-taking system call to this process as a user notification
// (SECCOMP_RET_USER_NOTIF), then execs CMD. This process, the supervisor,
// reads the path from /proc/PID/mem, makes it absolute (relative paths
// against the caller's cwd, *at() calls against /proc/PID/fd/DIRFD), and
// judges it both as written (".." folded) and with symlinks resolved. An
// allowed call continues in the kernel (SECCOMP_USER_NOTIF_FLAG_CONTINUE); a
// forbidden one fails with EPERM and prints one line,
//   noopen: openat("/dev/kvm") by passage
// System calls of another ABI (i386, x32) kill the caller: libseccomp's
// default for a foreign architecture.
//
// Exit status: CMD's (128 + signal number if a signal ended it), or 99 if any
// call was refused; 2 on a usage or setup error; 127 if CMD cannot be run.
//
// A guard against mistakes, not against a hostile CMD: a thread could change
// the path between the check and the kernel's own read (the seccomp
// documentation's warning about CONTINUE).
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr int kViolationStatus = 99;
constexpr int kSetupStatus = 2;
constexpr int kExecStatus = 127;

// One path argument of a system call: the argument index of the path and of
// the directory fd it is relative to (-1: the cwd, as AT_FDCWD).
struct PathArg {
  int dirfd;
  int path;
};

// A system call the filter hands to the supervisor. Symlinks in the last
// component are followed unless `follow` is false or the call's flags
// argument (`flags`, -1 for none) has a bit of `nofollow` set. With `always`
// the call is refused whatever it names (it takes no path to judge).
struct Syscall {
  const char* name;
  std::vector<PathArg> paths;
  bool follow = true;
  int flags = -1;
  uint64_t nofollow = 0;
  bool always = false;
};

const std::vector<Syscall>& Syscalls() {
  static const std::vector<Syscall> table = {
      {"open", {{-1, 0}}, true, 1, O_NOFOLLOW},
      {"creat", {{-1, 0}}},
      {"openat", {{0, 1}}, true, 2, O_NOFOLLOW},
      {"openat2", {{0, 1}}},
      {"open_by_handle_at", {}, true, -1, 0, true},
      {"name_to_handle_at", {{0, 1}}},
      {"stat", {{-1, 0}}},
      {"lstat", {{-1, 0}}, false},
      {"newfstatat", {{0, 1}}, true, 3, AT_SYMLINK_NOFOLLOW},
      {"statx", {{0, 1}}, true, 2, AT_SYMLINK_NOFOLLOW},
      {"statfs", {{-1, 0}}},
      {"access", {{-1, 0}}},
      {"faccessat", {{0, 1}}},
      {"faccessat2", {{0, 1}}, true, 3, AT_SYMLINK_NOFOLLOW},
      {"readlink", {{-1, 0}}, false},
      {"readlinkat", {{0, 1}}, false},
      {"execve", {{-1, 0}}},
      {"execveat", {{0, 1}}, true, 4, AT_SYMLINK_NOFOLLOW},
      {"truncate", {{-1, 0}}},
      {"mknod", {{-1, 0}}, false},
      {"mknodat", {{0, 1}}, false},
      {"mkdir", {{-1, 0}}, false},
      {"mkdirat", {{0, 1}}, false},
      {"rmdir", {{-1, 0}}, false},
      {"unlink", {{-1, 0}}, false},
      {"unlinkat", {{0, 1}}, false},
      {"rename", {{-1, 0}, {-1, 1}}, false},
      {"renameat", {{0, 1}, {2, 3}}, false},
      {"renameat2", {{0, 1}, {2, 3}}, false},
      {"link", {{-1, 0}, {-1, 1}}, false},
      {"linkat", {{0, 1}, {2, 3}}, false},
      {"symlink", {{-1, 1}}, false},
      {"symlinkat", {{1, 2}}, false},
      {"chmod", {{-1, 0}}},
      {"fchmodat", {{0, 1}}},
      {"chown", {{-1, 0}}},
      {"lchown", {{-1, 0}}, false},
      {"fchownat", {{0, 1}}, true, 4, AT_SYMLINK_NOFOLLOW},
      {"utime", {{-1, 0}}},
      {"utimes", {{-1, 0}}},
      {"futimesat", {{0, 1}}},
      {"utimensat", {{0, 1}}, true, 3, AT_SYMLINK_NOFOLLOW},
      {"chdir", {{-1, 0}}},
      {"chroot", {{-1, 0}}},
      {"getxattr", {{-1, 0}}},
      {"lgetxattr", {{-1, 0}}, false},
      {"setxattr", {{-1, 0}}},
      {"lsetxattr", {{-1, 0}}, false},
      {"listxattr", {{-1, 0}}},
      {"llistxattr", {{-1, 0}}, false},
      {"removexattr", {{-1, 0}}},
      {"lremovexattr", {{-1, 0}}, false},
      {"inotify_add_watch", {{-1, 1}}},
      {"fanotify_mark", {{3, 4}}},
      {"mount", {{-1, 0}, {-1, 1}}},
      {"umount2", {{-1, 0}}},
      {"pivot_root", {{-1, 0}, {-1, 1}}},
      {"swapon", {{-1, 0}}},
      {"swapoff", {{-1, 0}}},
      {"acct", {{-1, 0}}},
      {"uselib", {{-1, 0}}},
      {"quotactl", {{-1, 1}}},
      {"open_tree", {{0, 1}}},
      {"move_mount", {{0, 1}, {2, 3}}},
      {"fspick", {{0, 1}}},
      {"mount_setattr", {{0, 1}}},
  };
  return table;
}

void Fail(const std::string& what) {
  fprintf(stderr, "passage-noopen: %s\n", what.c_str());
  exit(kSetupStatus);
}

std::string Errno(int err) { return strerror(err); }

std::optional<std::string> ReadLink(const std::string& path) {
  char buf[PATH_MAX];
  const ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  if (n < 0 || static_cast<size_t>(n) >= sizeof(buf)) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

// The NUL-terminated string at `addr` in process `pid`, read page by page so
// that a path near the end of a mapping is still read.
std::optional<std::string> ReadString(pid_t pid, uint64_t addr) {
  const int fd = open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string s;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  while (s.size() <= PATH_MAX) {
    char buf[4096];
    const uint64_t want = std::min<uint64_t>(sizeof(buf), page - (addr % page));
    const ssize_t n = pread(fd, buf, want, static_cast<off_t>(addr));
    if (n <= 0) break;
    const char* nul = static_cast<const char*>(memchr(buf, '\0', static_cast<size_t>(n)));
    if (nul != nullptr) {
      s.append(buf, static_cast<size_t>(nul - buf));
      close(fd);
      return s;
    }
    s.append(buf, static_cast<size_t>(n));
    addr += static_cast<uint64_t>(n);
  }
  close(fd);
  return std::nullopt;
}

// "a//b/./c/../d" -> "/a/b/d" (".." above the root stays at the root).
std::string Fold(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    const std::string part = path.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out;
  for (const std::string& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

// `path` with symlinks resolved in this process's view; /proc/self and
// /proc/thread-self must already name the caller. Without `follow`, or when
// the whole path does not resolve (a file about to be created), only its
// directory is resolved.
std::optional<std::string> Resolve(const std::string& path, bool follow) {
  char buf[PATH_MAX];
  if (follow && realpath(path.c_str(), buf) != nullptr) return std::string(buf);
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  const std::string base = dir.substr(slash + 1);
  dir = slash == 0 ? "/" : dir.substr(0, slash);
  if (base == "." || base == ".." || realpath(dir.c_str(), buf) == nullptr) return std::nullopt;
  const std::string d(buf);
  return (d == "/" ? "" : d) + "/" + base;
}

class Supervisor {
 public:
  Supervisor(std::vector<std::string> deny, std::vector<std::string> allow)
      : deny_(std::move(deny)), allow_(std::move(allow)) {
    for (const Syscall& s : Syscalls()) {
      const int nr = seccomp_syscall_resolve_name(s.name);
      if (nr == __NR_SCMP_ERROR) Fail(std::string("libseccomp does not know system call ") + s.name);
      by_nr_[nr] = &s;
    }
  }

  // In the child: the filter, whose listener fd is returned.
  int InstallFilter() const {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr) Fail("seccomp_init failed");
    for (const auto& [nr, s] : by_nr_) {
      const int rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, nr, 0);
      if (rc < 0) Fail(std::string("seccomp_rule_add(") + s->name + "): " + Errno(-rc));
    }
    // Sets no_new_privs too (libseccomp's default), which an unprivileged
    // caller needs.
    int rc = seccomp_load(ctx);
    if (rc < 0) {
      Fail("seccomp_load: " + Errno(-rc) + " (needs SECCOMP_FILTER_FLAG_NEW_LISTENER, Linux 5.0+, " +
           "libseccomp API level " + std::to_string(seccomp_api_get()) + ", 5 wanted)");
    }
    const int fd = seccomp_notify_fd(ctx);
    if (fd < 0) Fail("seccomp_notify_fd: " + Errno(-fd));
    seccomp_release(ctx);  // The filter stays loaded; the fd stays open.
    return fd;
  }

  // Answers notifications on `notify_fd` until every filtered task is gone
  // or `child` has exited; returns the number of refused calls.
  int Serve(int notify_fd, int pidfd) {
    struct seccomp_notif* req = nullptr;
    struct seccomp_notif_resp* resp = nullptr;
    const int rc = seccomp_notify_alloc(&req, &resp);
    if (rc < 0) Fail("seccomp_notify_alloc: " + Errno(-rc));
    bool child_done = false;
    for (;;) {
      struct pollfd p[2] = {{notify_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
      // Once the child is gone, only notifications already queued are served.
      const int n = poll(p, child_done ? 1 : 2, child_done ? 0 : -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) Fail("poll: " + Errno(errno));
      if (n == 0) break;
      if (!child_done && (p[1].revents & POLLIN)) child_done = true;
      if (p[0].revents & POLLIN) {
        memset(req, 0, sizeof(*req));  // The kernel refuses (EINVAL) a dirty buffer.
        if (seccomp_notify_receive(notify_fd, req) < 0) continue;  // Caller gone or interrupted.
        Answer(notify_fd, req, resp);
      } else if (p[0].revents & (POLLHUP | POLLERR)) {
        break;  // No filtered task left.
      }
    }
    seccomp_notify_free(req, resp);
    return violations_;
  }

 private:
  void Answer(int notify_fd, struct seccomp_notif* req, struct seccomp_notif_resp* resp) {
    memset(resp, 0, sizeof(*resp));
    resp->id = req->id;
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    const auto it = by_nr_.find(req->data.nr);
    if (it != by_nr_.end()) {
      const std::optional<std::string> why = Judge(*it->second, req->pid, req->data.args);
      // The caller may have died and its pid been reused while we read.
      if (seccomp_notify_id_valid(notify_fd, req->id) < 0) return;
      if (why.has_value()) {
        ++violations_;
        fprintf(stderr, "noopen: %s\n", why->c_str());
        resp->flags = 0;
        resp->error = -EPERM;
      }
    }
    seccomp_notify_respond(notify_fd, resp);  // Fails only if the caller is gone.
  }

  bool Denied(const std::string& path) const {
    for (const std::string& a : allow_) {
      if (path == a) return false;
    }
    for (const std::string& d : deny_) {
      if (path == d || path.compare(0, d.size() + 1, d + "/") == 0) return true;
    }
    return false;
  }

  // Why the call is refused ("openat(\"/dev/kvm\") by passage"), or nothing.
  std::optional<std::string> Judge(const Syscall& s, pid_t pid, const __u64* args) const {
    const std::string proc = "/proc/" + std::to_string(pid);
    const auto by = [&] { return ") by " + Comm(proc); };
    if (s.always) return std::string(s.name) + "(<file handle>" + by();
    const bool follow = s.follow && !(s.flags >= 0 && (args[s.flags] & s.nofollow));
    for (const PathArg& a : s.paths) {
      if (args[a.path] == 0) continue;  // NULL: the call acts on its fd.
      const std::optional<std::string> path = ReadString(pid, args[a.path]);
      if (!path.has_value()) {
        return std::string(s.name) + "(<unreadable path at 0x" + Hex(args[a.path]) + ">" + by();
      }
      if (path->empty()) continue;  // "": AT_EMPTY_PATH, the call acts on its dirfd.
      std::string full = *path;
      if (full[0] != '/') {
        const int dirfd = a.dirfd < 0 ? AT_FDCWD : static_cast<int>(args[a.dirfd]);
        const std::optional<std::string> base =
            ReadLink(dirfd == AT_FDCWD ? proc + "/cwd" : proc + "/fd/" + std::to_string(dirfd));
        if (!base.has_value()) continue;  // No such dirfd: the kernel fails the call.
        full = *base + "/" + full;
      }
      const auto quoted = [&] { return std::string(s.name) + "(\"" + *path + "\"" + by(); };
      const std::string folded = Fold(full);
      if (Denied(folded)) return quoted() + (folded == *path ? "" : " (" + folded + ")");
      // /proc/self is this process here: name the caller's instead.
      std::string mine = folded;
      for (const char* self : {"/proc/self", "/proc/thread-self"}) {
        const std::string prefix(self);
        if (mine == prefix || mine.compare(0, prefix.size() + 1, prefix + "/") == 0) {
          mine = proc + mine.substr(prefix.size());
        }
      }
      const std::optional<std::string> real = Resolve(mine, follow);
      if (real.has_value() && Denied(*real)) return quoted() + " (resolves to " + *real + ")";
    }
    return std::nullopt;
  }

  static std::string Comm(const std::string& proc) {
    FILE* f = fopen((proc + "/comm").c_str(), "re");
    char buf[64] = "?";
    if (f != nullptr) {
      if (fgets(buf, sizeof(buf), f) == nullptr) strcpy(buf, "?");
      fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
  }

  static std::string Hex(uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(v));
    return buf;
  }

  std::vector<std::string> deny_;
  std::vector<std::string> allow_;
  std::map<int, const Syscall*> by_nr_;
  int violations_ = 0;
};

pid_t g_child = -1;

// SIGTERM and friends sent to the supervisor (the rig's deadline) are meant
// for CMD.
void Forward(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

void SendFd(int sock, int fd) {
  char byte = 0;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (sendmsg(sock, &msg, 0) != 1) Fail("sendmsg: " + Errno(errno));
}

// The fd SendFd sent, or -1 when the child ended before sending one.
int ReceiveFd(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (n != 1 || c == nullptr || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

[[noreturn]] void Usage(const char* why) {
  fprintf(stderr,
          "passage-noopen: %s\n"
          "usage: passage-noopen [--deny PREFIX]... [--allow PATH]... -- CMD [ARGS...]\n"
          "  runs CMD; any path lookup under a PREFIX (default /dev and /sys), except of a\n"
          "  PATH, fails with EPERM and is reported; exit status CMD's, or 99 if anything\n"
          "  was refused\n",
          why);
  exit(kSetupStatus);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> deny, allow;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; ++i) {
    if (strcmp(argv[i], "--deny") == 0 && i + 1 < argc) {
      const std::string d = Fold(argv[++i]);
      if (argv[i][0] != '/' || d == "/") Usage("--deny wants an absolute path other than /");
      deny.push_back(d);
    } else if (strcmp(argv[i], "--allow") == 0 && i + 1 < argc) {
      if (argv[++i][0] != '/') Usage("--allow wants an absolute path");
      allow.push_back(Fold(argv[i]));
    } else {
      Usage((std::string("unknown argument '") + argv[i] + "'").c_str());
    }
  }
  if (i + 1 >= argc) Usage("no command after --");
  char** cmd = argv + i + 1;
  if (deny.empty()) deny = {"/dev", "/sys"};
  Supervisor supervisor(std::move(deny), std::move(allow));

  int sock[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sock) < 0) Fail("socketpair: " + Errno(errno));
  fflush(nullptr);
  g_child = fork();
  if (g_child < 0) Fail("fork: " + Errno(errno));
  if (g_child == 0) {
    close(sock[0]);
    // If the supervisor dies, so does CMD (its calls would block otherwise).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = supervisor.InstallFilter();
    SendFd(sock[1], fd);
    close(fd);
    close(sock[1]);
    execvp(cmd[0], cmd);
    fprintf(stderr, "passage-noopen: %s: %s\n", cmd[0], strerror(errno));
    _exit(kExecStatus);
  }
  close(sock[1]);
  // The supervisor holds none of CMD's inherited files (passage owns the fds
  // it is given: a copy here would keep them open after passage closed them).
  if (sock[0] > 3) close_range(3, static_cast<unsigned>(sock[0]) - 1, 0);
  close_range(static_cast<unsigned>(sock[0]) + 1, ~0u, 0);
  struct sigaction sa = {};
  sa.sa_handler = Forward;
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaction(sig, &sa, nullptr);
  const int notify_fd = ReceiveFd(sock[0]);
  close(sock[0]);
  int violations = 0;
  if (notify_fd >= 0) {
    // (bookworm's <sys/pidfd.h> declares pidfd_open without C linkage.)
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, g_child, 0));
    if (pidfd < 0) Fail("pidfd_open: " + Errno(errno));
    violations = supervisor.Serve(notify_fd, pidfd);
    close(notify_fd);
    close(pidfd);
  }
  int status = 0;
  while (waitpid(g_child, &status, 0) < 0) {
    if (errno != EINTR) Fail("waitpid: " + Errno(errno));
  }
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (violations > 0) {
    fprintf(stderr, "noopen: %d call(s) refused; %s exited %d; exit %d\n", violations, cmd[0], rc,
            kViolationStatus);
    return kViolationStatus;
  }
  return rc;
}
