#include "vmm/sandbox.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <malloc.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/internal/sysinfo.h"
#include "absl/strings/str_cat.h"
#include "memory/unique_fd.h"
#include "vmm/config.h"

namespace passage {
namespace {

// How an allowlist entry is turned into libseccomp rules.
enum class Cond {
  kAlways,
  kNoExec,        // mmap/mprotect: the prot argument (A2) has no PROT_EXEC
  kIoctl,         // the request (A1) is in kIoctls
  kOwnPid,        // tgkill: the thread group (A0) is passage
  kNotSigsys,     // rt_sigaction: any signal (A0) but SIGSYS
  kThreadClone,   // clone: the flags (A0) have CLONE_THREAD
  kEnosys,        // fails with ENOSYS instead of trapping
  kThreadName,    // prctl: PR_SET_NAME or PR_GET_NAME (A0)
  kUnlinkDirs,    // unlinkat: the directory fd (A0) is a policy.unlink_dirs
  kReadlinkDirs,  // readlinkat: the directory fd (A0) is a policy.readlink_dirs
  kOpenPolicy,    // only with policy.allow_open
};

struct Row {
  SandboxRule rule;
  Cond cond;
};

// The allowlist. Everything else traps. Grouped by who needs it; each row
// says why. Not allowed, among others: socket, connect, bind, listen (the
// QMP sockets are bound before), execve, fork (clone without CLONE_THREAD),
// ptrace, kill of other processes, openat2, memfd_create (guest RAM exists
// before), mount, setuid and the other credential calls, bpf, io_uring,
// userfaultfd, perf_event_open, process_vm_readv/writev.
const std::vector<Row>& Rows() {
  static const auto* rows = new std::vector<Row>{
      // I/O on fds passage already holds.
      {{"read", "always", "eventfds, the signalfd, the console's stdin, /proc/self/status at exit"}, Cond::kAlways},
      {{"write", "always", "guest console output (stdout or -serial file), eventfd signals, messages on stderr"},
       Cond::kAlways},
      {{"readv", "always", "libc stream I/O on the same fds"}, Cond::kAlways},
      {{"writev", "always", "libc stream I/O on the same fds"}, Cond::kAlways},
      {{"pread64", "always", "VFIO regions (config space, BARs without mmap, the ROM); /proc/self/status"},
       Cond::kAlways},
      {{"pwrite64", "always", "VFIO regions: config space and BAR writes the guest makes"}, Cond::kAlways},
      {{"lseek", "always", "rewinding /proc/self/fd for --report-resources"}, Cond::kAlways},
      {{"close", "always", "fds of devices and objects that go, QMP clients, getfd fds"}, Cond::kAlways},
      {{"fstat", "always", "stdio buffer set-up"}, Cond::kAlways},
      {{"newfstatat", "always",
        "fstat (glibc's), the QMP socket file's identity before it is removed; metadata only, opens nothing"},
       Cond::kAlways},
      {{"fcntl", "always", "fd flags: the passed-fd check (F_GETFD), O_NONBLOCK"}, Cond::kAlways},
      {{"ioctl", "request type KVM (0xAE) or VFIO/iommufd (';'), or TCGETS/TCSETS/TCSETSW/TCSETSF",
        "KVM_RUN and every KVM, VFIO and iommufd call of the run loop and hotplug (memslots, irqfds, GSI "
        "routes, bind, attach, IOAS maps, resets); the console's terminal mode. By type, not number: see "
        "README"},
       Cond::kIoctl},
      // Waiting and waking.
      {{"poll", "always", "the main loop (signalfd, stop eventfd, stdin); QMP's flush at exit"}, Cond::kAlways},
      {{"ppoll", "always", "as poll"}, Cond::kAlways},
      {{"epoll_wait", "always", "the event loop"}, Cond::kAlways},
      {{"epoll_pwait", "always", "the event loop"}, Cond::kAlways},
      {{"epoll_ctl", "always", "the event loop: interrupt eventfds and QMP clients come and go"}, Cond::kAlways},
      {{"epoll_create1", "always", "QMP's output epoll, made when QMP starts (after the filter)"}, Cond::kAlways},
      {{"eventfd2", "always", "irqfds, resample and MSI-X eventfds of hot-added devices, hotplug wake-ups"},
       Cond::kAlways},
      {{"futex", "always", "absl::Mutex and CondVar, thread joins"}, Cond::kAlways},
      {{"sched_yield", "always", "Abseil's lock back-off"}, Cond::kAlways},
      {{"nanosleep", "always", "Abseil's lock back-off, sleeps"}, Cond::kAlways},
      {{"clock_nanosleep", "always", "as nanosleep"}, Cond::kAlways},
      {{"restart_syscall", "always", "a wait interrupted by a signal"}, Cond::kAlways},
      // Time: the vDSO falls back to the system call when the clock source
      // is not the TSC (the rig's L1 runs on hpet).
      {{"clock_gettime", "always", "time stamps, timeouts, rate limits (vDSO fallback)"}, Cond::kAlways},
      {{"clock_getres", "always", "as clock_gettime"}, Cond::kAlways},
      {{"gettimeofday", "always", "QMP event time stamps (vDSO fallback)"}, Cond::kAlways},
      {{"time", "always", "the CMOS RTC's clock (vDSO fallback)"}, Cond::kAlways},
      // Signals.
      {{"getpid", "always", "pthread_kill's thread group"}, Cond::kAlways},
      {{"gettid", "always", "the SIGSYS message"}, Cond::kAlways},
      {{"tgkill", "thread group = passage",
        "the vCPU kick (pthread_kill), abort(); signals to passage's own threads only"},
       Cond::kOwnPid},
      {{"rt_sigprocmask", "always", "vCPU threads unblock the kick; pthread_create and pthread_kill mask signals"},
       Cond::kAlways},
      {{"rt_sigreturn", "always", "return from the kick's signal handler"}, Cond::kAlways},
      {{"rt_sigaction", "signal is not SIGSYS", "abort() resets SIGABRT; the SIGSYS handler stays"},
       Cond::kNotSigsys},
      // Memory.
      {{"mmap", "no PROT_EXEC", "BARs of hot-added devices, malloc, thread stacks"}, Cond::kNoExec},
      {{"mprotect", "no PROT_EXEC", "guard pages of new thread stacks, malloc"}, Cond::kNoExec},
      {{"munmap", "always", "BARs of removed devices, freed memory, teardown"}, Cond::kAlways},
      {{"mremap", "always", "malloc (realloc of large blocks)"}, Cond::kAlways},
      {{"madvise", "always", "malloc and glibc give memory back (MADV_DONTNEED)"}, Cond::kAlways},
      {{"brk", "always", "malloc"}, Cond::kAlways},
      {{"mincore", "always", "--report-timing counts resident guest RAM"}, Cond::kAlways},
      // Threads: a hot-added virtio-rng-pci starts its worker.
      {{"clone", "flags have CLONE_THREAD", "a hot-added virtio-rng-pci's worker thread; fork is refused"},
       Cond::kThreadClone},
      {{"clone3", "fails with ENOSYS",
        "its flags are in memory, out of seccomp's sight: glibc then falls back to clone"},
       Cond::kEnosys},
      {{"set_robust_list", "always", "a new thread's start (glibc)"}, Cond::kAlways},
      {{"rseq", "always", "a new thread's start (glibc)"}, Cond::kAlways},
      {{"sched_getaffinity", "always", "glibc's CPU count for malloc arenas"}, Cond::kAlways},
      {{"prctl", "PR_SET_NAME or PR_GET_NAME", "thread names (the SIGSYS message names the thread)"},
       Cond::kThreadName},
      {{"exit", "always", "a thread ends"}, Cond::kAlways},
      {{"exit_group", "always", "passage ends"}, Cond::kAlways},
      // QMP.
      {{"accept4", "always", "QMP: a client connects"}, Cond::kAlways},
      {{"recvmsg", "always", "QMP input and the fds getfd passes (SCM_RIGHTS)"}, Cond::kAlways},
      {{"sendto", "always", "QMP replies and events (send)"}, Cond::kAlways},
      {{"shutdown", "always", "QMP: dropping a client that does not read"}, Cond::kAlways},
      {{"unlinkat", "directory fd is a QMP socket's directory", "the QMP socket files are removed at exit"},
       Cond::kUnlinkDirs},
      // Reports at exit (vmm/proc_self.h).
      {{"getdents64", "always", "--report-resources lists /proc/self/fd; hotplug by path lists sysfs"},
       Cond::kAlways},
      {{"readlinkat", "directory fd is /proc/self/fd", "--report-resources names the fds left open"},
       Cond::kReadlinkDirs},
      // Hotplug by path (SandboxPolicy::allow_open).
      {{"open", "-sandbox open=allow (or auto: see README)",
        "hotplug by path: /dev/iommu, /dev/vfio/*, sysfs files, virtio-rng's filename="},
       Cond::kOpenPolicy},
      {{"openat", "-sandbox open=allow (or auto)", "as open (glibc's open is openat)"}, Cond::kOpenPolicy},
      {{"readlink", "-sandbox open=allow (or auto)", "hotplug by path: a device's driver and IOMMU group"},
       Cond::kOpenPolicy},
  };
  return *rows;
}

// ioctl requests: by type, bits 8-15 of the request number, except the
// terminal's few, which are exact (TIOCSTI and friends stay out).
struct IoctlRule {
  uint64_t mask;
  uint64_t value;
};
constexpr uint64_t kTypeMask = 0xff00;
constexpr IoctlRule kIoctls[] = {
    {kTypeMask, static_cast<uint64_t>(KVMIO) << 8},      // KVM: /dev/kvm, the VM, vCPUs, devices
    {kTypeMask, static_cast<uint64_t>(VFIO_TYPE) << 8},  // VFIO and iommufd (both ';')
    {~0ull, TCGETS},                                     // isatty, tcgetattr
    {~0ull, TCSETS},                                     // tcsetattr(TCSANOW): restore the console
    {~0ull, TCSETSW},
    {~0ull, TCSETSF},
};
static_assert(VFIO_TYPE == ';', "iommufd's IOMMUFD_TYPE is ';' too");

// --- The SIGSYS handler ------------------------------------------------------

// Names by number, filled by PrimeLazyInit (libseccomp allocates them; kept
// for the process's life). Read by the handler only.
constexpr int kMaxSyscall = 1024;
const char* g_names[kMaxSyscall];

// Async-signal-safe formatting into a fixed buffer.
struct Line {
  char buf[512];
  size_t n = 0;
  void Str(const char* s) {
    while (*s && n < sizeof(buf) - 1) buf[n++] = *s++;
  }
  void Dec(uint64_t v) {
    char t[24];
    int i = 0;
    do {
      t[i++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (i > 0 && n < sizeof(buf) - 1) buf[n++] = t[--i];
  }
  void Hex(uint64_t v) {
    Str("0x");
    char t[16];
    int i = 0;
    do {
      t[i++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0);
    while (i > 0 && n < sizeof(buf) - 1) buf[n++] = t[--i];
  }
};

void OnSigsys(int, siginfo_t* info, void* context) {
  const int saved = errno;
  Line l;
  l.Str("passage: sandbox: forbidden system call ");
  const int nr = info->si_syscall;
  l.Dec(static_cast<uint64_t>(static_cast<uint32_t>(nr)));
  l.Str(" (");
  l.Str(nr >= 0 && nr < kMaxSyscall && g_names[nr] != nullptr ? g_names[nr] : "unknown");
  l.Str(")");
#if defined(__x86_64__)
  if (context != nullptr) {
    const greg_t* r = static_cast<ucontext_t*>(context)->uc_mcontext.gregs;
    l.Str(" args ");
    l.Hex(static_cast<uint64_t>(r[REG_RDI]));
    l.Str(" ");
    l.Hex(static_cast<uint64_t>(r[REG_RSI]));
    l.Str(" ");
    l.Hex(static_cast<uint64_t>(r[REG_RDX]));
  }
#else
  (void)context;
#endif
  l.Str(" at ");
  l.Hex(reinterpret_cast<uint64_t>(info->si_call_addr));
  l.Str(" in thread ");
  l.Dec(static_cast<uint64_t>(syscall(SYS_gettid)));
  char name[17] = {0};
  if (prctl(PR_GET_NAME, name, 0, 0, 0) == 0) {
    l.Str(" (");
    l.Str(name);
    l.Str(")");
  }
  l.Str("; exiting with status ");
  l.Dec(kSandboxViolationExit);
  l.Str("\n");
  size_t off = 0;
  while (off < l.n) {
    const ssize_t w = write(STDERR_FILENO, l.buf + off, l.n - off);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  errno = saved;
  _exit(kSandboxViolationExit);
}

// --- Building the filter -----------------------------------------------------

class Filter {
 public:
  Filter() : ctx_(seccomp_init(SCMP_ACT_TRAP)) {}
  ~Filter() {
    if (ctx_ != nullptr) seccomp_release(ctx_);
  }
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;
  scmp_filter_ctx get() const { return ctx_; }

 private:
  scmp_filter_ctx ctx_;
};

absl::Status Seccomp(int rc, absl::string_view what) {
  if (rc == 0) return absl::OkStatus();
  return ErrnoError(absl::StrCat("-sandbox on: ", what), -rc);
}

// One argument comparison (libseccomp's SCMP_A* macros are C compound
// literals). MASKED_EQ: (arg & a) == b; EQ, NE: arg against a.
scmp_arg_cmp Arg(unsigned int arg, scmp_compare op, uint64_t a, uint64_t b = 0) {
  scmp_arg_cmp c{};
  c.arg = arg;
  c.op = op;
  c.datum_a = a;
  c.datum_b = b;
  return c;
}

absl::Status AddRow(scmp_filter_ctx ctx, const Row& row, const SandboxPolicy& policy) {
  const int nr = seccomp_syscall_resolve_name(row.rule.syscall);
  if (nr == __NR_SCMP_ERROR) {
    return absl::InternalError(absl::StrCat("-sandbox on: libseccomp does not know '", row.rule.syscall, "'"));
  }
  const std::string what = absl::StrCat("rule for ", row.rule.syscall);
  auto allow = [&](unsigned count, const scmp_arg_cmp* args) {
    return Seccomp(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, count, args), what);
  };
  switch (row.cond) {
    case Cond::kAlways:
      return allow(0, nullptr);
    case Cond::kNoExec: {
      const scmp_arg_cmp a[] = {Arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)};
      return allow(1, a);
    }
    case Cond::kIoctl:
      for (const IoctlRule& r : kIoctls) {
        const scmp_arg_cmp a[] = {r.mask == ~0ull ? Arg(1, SCMP_CMP_EQ, r.value)
                                                  : Arg(1, SCMP_CMP_MASKED_EQ, r.mask, r.value)};
        if (absl::Status s = allow(1, a); !s.ok()) return s;
      }
      return absl::OkStatus();
    case Cond::kOwnPid: {
      const scmp_arg_cmp a[] = {Arg(0, SCMP_CMP_EQ, static_cast<uint64_t>(getpid()))};
      return allow(1, a);
    }
    case Cond::kNotSigsys: {
      const scmp_arg_cmp a[] = {Arg(0, SCMP_CMP_NE, SIGSYS)};
      return allow(1, a);
    }
    case Cond::kThreadClone: {
      const scmp_arg_cmp a[] = {Arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)};
      return allow(1, a);
    }
    case Cond::kEnosys:
      return Seccomp(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0), what);
    case Cond::kThreadName:
      for (uint64_t option : {PR_SET_NAME, PR_GET_NAME}) {
        const scmp_arg_cmp a[] = {Arg(0, SCMP_CMP_EQ, option)};
        if (absl::Status s = allow(1, a); !s.ok()) return s;
      }
      return absl::OkStatus();
    case Cond::kUnlinkDirs:
    case Cond::kReadlinkDirs:
      for (int fd : row.cond == Cond::kUnlinkDirs ? policy.unlink_dirs : policy.readlink_dirs) {
        if (fd < 0) continue;
        // The dirfd argument is an int: compare its low 32 bits only.
        const scmp_arg_cmp a[] = {Arg(0, SCMP_CMP_MASKED_EQ, 0xffffffffull, static_cast<uint64_t>(fd))};
        if (absl::Status s = allow(1, a); !s.ok()) return s;
      }
      return absl::OkStatus();
    case Cond::kOpenPolicy:
      return policy.allow_open ? allow(0, nullptr) : absl::OkStatus();
  }
  return absl::InternalError("unreachable");
}

absl::Status Build(const Filter& filter, const SandboxPolicy& policy) {
  if (filter.get() == nullptr) return absl::InternalError("-sandbox on: seccomp_init failed");
  // A system call of another ABI (i386, x32) ends passage at once.
  if (absl::Status s = Seccomp(seccomp_attr_set(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
                               "bad-arch action");
      !s.ok()) {
    return s;
  }
  // Every thread, including the event loop and any already running.
  if (absl::Status s = Seccomp(seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_TSYNC, 1), "TSYNC"); !s.ok()) {
    return s;
  }
  for (const Row& row : Rows()) {
    if (absl::Status s = AddRow(filter.get(), row, policy); !s.ok()) return s;
  }
#if defined(PASSAGE_SANITIZERS)
  // Sanitizer builds only (not in the allowlist): UBSan's vptr check probes
  // whether memory is readable by writing it into a fresh pipe; ASan looks
  // at each thread's alternate signal stack when the thread ends.
  for (int nr : {SCMP_SYS(pipe2), SCMP_SYS(sigaltstack)}) {
    if (absl::Status s = Seccomp(seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, nr, 0), "sanitizer rule"); !s.ok()) {
      return s;
    }
  }
#endif
  return absl::OkStatus();
}

// The names the SIGSYS handler prints (libseccomp's table: no I/O).
void FillNames() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int nr = 0; nr < kMaxSyscall; ++nr) g_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  });
}

absl::Status Install(const SandboxPolicy& policy) {
  FillNames();
  Filter filter;
  if (absl::Status s = Build(filter, policy); !s.ok()) return s;
  struct sigaction sa {};
  sa.sa_sigaction = OnSigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return ErrnoError("-sandbox on: sigaction(SIGSYS)");
  // SIGSYS must reach the handler on whichever thread made the call.
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  pthread_sigmask(SIG_UNBLOCK, &sys, nullptr);
  return Seccomp(seccomp_load(filter.get()), "loading the filter");
}

}  // namespace

const std::vector<SandboxRule>& SandboxAllowlist() {
  static const auto* rules = [] {
    auto* out = new std::vector<SandboxRule>;
    for (const Row& r : Rows()) out->push_back(r.rule);
    return out;
  }();
  return *rules;
}

void PrimeLazyInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Abseil's Mutex asks for the CPU count on its first contended lock
    // (spin or sleep); glibc's answer reads /sys/devices/system/cpu/online.
    (void)absl::base_internal::NumCPUs();
    // glibc sets up the time zone on the first gmtime_r/localtime_r (the
    // CMOS RTC's), reading $TZ or /etc/localtime; tzset does it now.
    tzset();
    // glibc's malloc asks for the CPU count (reading the same sysfs file)
    // when a process first has more arenas than 8: a VM with 8 vCPUs has
    // that many threads. A set arena limit skips the question; this is the
    // limit glibc would compute (8 per CPU), unless the user set one.
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (std::getenv("MALLOC_ARENA_MAX") == nullptr &&
        (tunables == nullptr || std::strstr(tunables, "glibc.malloc.arena_max") == nullptr)) {
      mallopt(M_ARENA_MAX, 8 * absl::base_internal::NumCPUs());
    }
    // And the first time it gives the top of a thread's heap back, it reads
    // /proc/sys/vm/overcommit_memory (once, kept). A thread (its own arena)
    // that frees enough at its heap's top does that now.
    std::thread([] {
      std::vector<void*> blocks;
      for (int i = 0; i < 16; ++i) blocks.push_back(std::malloc(64 << 10));  // below the mmap threshold
      for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) std::free(*it);
    }).join();
  });
}

absl::Status InstallSandbox(const SandboxPolicy& policy) {
  PrimeLazyInit();
  return Install(policy);
}

absl::Status InstallSandboxUnprimed(const SandboxPolicy& policy) { return Install(policy); }

absl::StatusOr<std::string> SandboxBpf(const SandboxPolicy& policy) {
  Filter filter;
  if (absl::Status s = Build(filter, policy); !s.ok()) return s;
  UniqueFd fd(memfd_create("passage-sandbox-bpf", MFD_CLOEXEC));
  if (!fd.valid()) return ErrnoError("memfd_create");
  if (absl::Status s = Seccomp(seccomp_export_bpf(filter.get(), fd.get()), "exporting the filter"); !s.ok()) {
    return s;
  }
  std::string out;
  char buf[4096];
  for (off_t off = 0;;) {
    const ssize_t n = pread(fd.get(), buf, sizeof(buf), off);
    if (n < 0) return ErrnoError("reading the exported filter");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

bool SandboxAllowsOpen(const VmConfig& config) {
  switch (config.sandbox_open) {
    case SandboxOpen::kAllow:
      return true;
    case SandboxOpen::kDeny:
      return false;
    case SandboxOpen::kAuto:
      break;
  }
  // Without a monitor nothing is added at run time: nothing to open.
  if (config.monitors.empty()) return false;
  // Every kind of -object and -device names its file either by fd= or by a
  // path (host=, sysfsdev=, filename=, or a default like /dev/iommu), so
  // fd < 0 is "opened by path". A VM whose command line names every file as
  // an fd is run with fds: its hotplugs will be too.
  if (config.kvm_fd < 0) return true;
  for (const ObjectConfig& o : config.object_configs) {
    if (o.fd < 0) return true;
  }
  for (const DeviceConfig& d : config.device_configs) {
    if (d.fd < 0) return true;
  }
  return false;
}

bool SandboxSelftestRequested() {
  const char* v = std::getenv("PASSAGE_SANDBOX_SELFTEST");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

void SandboxSelftestViolation(bool open_allowed) {
  if (!open_allowed) {
    const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
  } else {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) close(fd);
  }
}

}  // namespace passage
