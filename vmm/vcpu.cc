#include "vmm/vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace passage {
namespace {

const int kKickSignal = SIGRTMIN;
constexpr uint64_t kEferLma = 1 << 10;  // long mode active

void NoopHandler(int) {}

const char* MpStateName(uint32_t state) {
  switch (state) {
    case KVM_MP_STATE_RUNNABLE:
      return "runnable";
    case KVM_MP_STATE_UNINITIALIZED:
      return "uninitialized";
    case KVM_MP_STATE_INIT_RECEIVED:
      return "init-received";
    case KVM_MP_STATE_HALTED:
      return "halted";
    case KVM_MP_STATE_SIPI_RECEIVED:
      return "sipi-received";
    default:
      return "other";
  }
}

// The vectors set in one of the local APIC's 256-bit registers (ISR at
// 0x100, IRR at 0x200: eight 32-bit words 16 bytes apart).
std::string ApicVectors(const kvm_lapic_state& lapic, size_t offset) {
  std::string out;
  for (uint32_t word = 0; word < 8; ++word) {
    uint32_t bits = 0;
    std::memcpy(&bits, lapic.regs + offset + 0x10 * word, sizeof(bits));
    for (uint32_t bit = 0; bit < 32; ++bit) {
      if (bits & (1u << bit)) absl::StrAppendFormat(&out, "%s0x%02x", out.empty() ? "" : ",", word * 32 + bit);
    }
  }
  return out;
}

std::string ExitName(uint32_t reason, uint64_t addr) {
  switch (reason) {
    case KVM_EXIT_IO:
      return absl::StrFormat("io port 0x%x", addr);
    case KVM_EXIT_MMIO:
      return absl::StrFormat("mmio 0x%x", addr);
    case KVM_EXIT_INTR:
      return "intr";
    case KVM_EXIT_HLT:
      return "hlt";
    default:
      return absl::StrCat("reason ", reason);
  }
}

}  // namespace

std::string InternalErrorText(const decltype(kvm_run::internal)& internal) {
  const char* what = "unknown";
  switch (internal.suberror) {
    case KVM_INTERNAL_ERROR_EMULATION: what = "instruction emulation failed"; break;
    case KVM_INTERNAL_ERROR_SIMUL_EX: what = "an exception while delivering an exception"; break;
    case KVM_INTERNAL_ERROR_DELIVERY_EV: what = "an exit during event delivery"; break;
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: what = "an unexpected exit reason"; break;
  }
  std::string text = absl::StrCat("suberror ", internal.suberror, " (", what, ")");
  // KVM fills at most the 16 words the struct holds; ndata beyond is bogus.
  const uint32_t n = std::min<uint32_t>(internal.ndata, sizeof(internal.data) / sizeof(internal.data[0]));
  if (n > 0) {
    std::vector<std::string> words;
    for (uint32_t i = 0; i < n; ++i) words.push_back(absl::StrFormat("0x%x", internal.data[i]));
    absl::StrAppend(&text, ", data ", absl::StrJoin(words, " "));
  }
  return text;
}

sigset_t VmSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, kKickSignal);
  return set;
}

void BlockVmSignals() {
  const sigset_t set = VmSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void InstallVcpuKickSignal() {
  struct sigaction sa{};
  sa.sa_handler = NoopHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
  sigaction(kKickSignal, &sa, nullptr);
}

absl::StatusOr<std::unique_ptr<Vcpu>> Vcpu::Create(const Kvm& kvm, int vm_fd, int index) {
  UniqueFd fd(Ioctl(vm_fd, KVM_CREATE_VCPU, static_cast<unsigned long>(index)));
  if (!fd.valid()) return ErrnoError(absl::StrCat("KVM_CREATE_VCPU ", index));
  absl::StatusOr<int> size = kvm.VcpuMmapSize();
  if (!size.ok()) return size.status();
  void* run = mmap(nullptr, static_cast<size_t>(*size), PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd.get(), 0);
  if (run == MAP_FAILED) return ErrnoError(absl::StrCat("mmap of vCPU ", index, " run area"));
  return std::unique_ptr<Vcpu>(
      new Vcpu(index, std::move(fd), static_cast<kvm_run*>(run), static_cast<size_t>(*size)));
}

Vcpu::~Vcpu() {
  Kick();
  Join();
  munmap(run_, run_size_);
}

absl::Status Vcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& supported, int cpu_count) {
  std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + supported.size() * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
  cpuid->nent = static_cast<uint32_t>(supported.size());
  const uint32_t apic_id = static_cast<uint32_t>(index_);
  for (size_t i = 0; i < supported.size(); ++i) {
    kvm_cpuid_entry2 e = supported[i];
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC ID, [23:16] logical processors per package.
        e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) |
                (static_cast<uint32_t>(cpu_count & 0xff) << 16);
        e.ecx |= 1u << 31;  // running under a hypervisor
        if (cpu_count > 1) e.edx |= 1u << 28;  // HTT: EBX[23:16] is valid
        break;
      case 0xb:
      case 0x1f:
        e.edx = apic_id;  // x2APIC ID
        break;
      default:
        break;
    }
    cpuid->entries[i] = e;
  }
  if (Ioctl(fd_.get(), KVM_SET_CPUID2, cpuid) != 0) {
    return ErrnoError(absl::StrCat("KVM_SET_CPUID2 on vCPU ", index_));
  }
  return absl::OkStatus();
}

absl::Status Vcpu::SetupEntry(const BootEntry& entry) {
  kvm_sregs sregs{};
  if (Ioctl(fd_.get(), KVM_GET_SREGS, &sregs) != 0) return ErrnoError("KVM_GET_SREGS");
  kvm_regs regs{};
  SetupEntryRegisters(entry, sregs, regs);
  if (Ioctl(fd_.get(), KVM_SET_SREGS, &sregs) != 0) return ErrnoError("KVM_SET_SREGS");
  if (Ioctl(fd_.get(), KVM_SET_REGS, &regs) != 0) return ErrnoError("KVM_SET_REGS");
  return absl::OkStatus();
}

void VcpuPause::Pause() {
  absl::MutexLock lock(&mu_);
  if (!closed_) paused_ = true;
}

bool VcpuPause::AwaitParked(int vcpus, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  struct Args {
    VcpuPause* self;
    int vcpus;
  } args{this, vcpus};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    return a->self->closed_ || a->self->parked_ + a->self->ended_ >= a->vcpus;
                                  },
                                  &args),
                              timeout);
}

void VcpuPause::Resume() {
  absl::MutexLock lock(&mu_);
  paused_ = false;
}

void VcpuPause::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  paused_ = false;
}

bool VcpuPause::paused() {
  absl::MutexLock lock(&mu_);
  return paused_;
}

bool VcpuPause::ShouldWake() const { return !paused_ || closed_ || pokes_ != wait_pokes_; }

bool VcpuPause::ParkIfPaused() {
  absl::MutexLock lock(&mu_);
  if (!paused_ || closed_) return false;
  ++parked_;
  wait_pokes_ = pokes_;
  mu_.Await(absl::Condition(this, &VcpuPause::ShouldWake));
  --parked_;
  return true;
}

void VcpuPause::Poke() {
  absl::MutexLock lock(&mu_);
  ++pokes_;
}

void VcpuPause::Ended() {
  absl::MutexLock lock(&mu_);
  ++ended_;
}

void Vcpu::Start(VcpuContext context) {
  pause_ = context.pause;
  memory_ = context.memory;
  running_ = true;
  thread_ = std::thread([this, context = std::move(context)] { Loop(context); });
}

void Vcpu::Kick() {
  run_->immediate_exit = 1;
  if (running_.load() && thread_.joinable()) pthread_kill(thread_.native_handle(), kKickSignal);
  if (VcpuPause* pause = pause_.load()) pause->Poke();  // a parked vCPU is not in KVM_RUN
}

void Vcpu::Join() {
  if (thread_.joinable()) thread_.join();
}

void Vcpu::Loop(VcpuContext context) {
  // The kick signal is only delivered here, never to other threads.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  while (!context.stopping->load()) {
    // Paused (QMP stop): wait outside KVM_RUN; still answer a state dump.
    if (context.pause != nullptr && context.pause->ParkIfPaused()) {
      if (dump_wanted_.exchange(false)) ServeDumpRequest();
      continue;
    }
    if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        run_->immediate_exit = 0;
        if (dump_wanted_.exchange(false)) ServeDumpRequest();
        continue;
      }
      context.stop({StopRequest::Reason::kError, 0,
                    absl::StrCat("vCPU ", index_, ": KVM_RUN: ", std::strerror(errno))});
      break;
    }
    if (!HandleExit(context)) break;
  }
  if (context.pause != nullptr) context.pause->Ended();
  running_ = false;
}

std::string Vcpu::DumpState(absl::Duration timeout) {
  if (!running_.load()) return DescribeState();  // nobody holds the vCPU
  {
    absl::MutexLock lock(&dump_mu_);
    dump_requested_ = true;
    dump_.reset();
  }
  dump_wanted_ = true;
  Kick();  // KVM holds the vCPU while in KVM_RUN: its own thread reads it
  absl::MutexLock lock(&dump_mu_);
  const bool answered = dump_mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Vcpu* v) ABSL_NO_THREAD_SAFETY_ANALYSIS { return v->dump_.has_value(); }, this),
      timeout);
  dump_requested_ = false;
  if (answered) return *dump_;
  return absl::StrCat("vCPU ", index_, ": no answer within ", absl::FormatDuration(timeout),
                      " (busy outside KVM_RUN; last exit: ",
                      ExitName(last_exit_reason_.load(), last_exit_addr_.load()), ")");
}

void Vcpu::ServeDumpRequest() {
  std::string line = DescribeState();
  absl::MutexLock lock(&dump_mu_);
  if (dump_requested_) dump_ = std::move(line);
}

std::string Vcpu::DescribeState() {
  VcpuState state;
  kvm_regs regs{};
  if (Ioctl(fd_.get(), KVM_GET_REGS, &regs) == 0) state.regs = regs;
  kvm_sregs sregs{};
  if (Ioctl(fd_.get(), KVM_GET_SREGS, &sregs) == 0) state.sregs = sregs;
  kvm_mp_state mp{};
  if (Ioctl(fd_.get(), KVM_GET_MP_STATE, &mp) == 0) state.mp_state = mp;
  kvm_vcpu_events events{};
  if (Ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &events) == 0) state.events = events;
  kvm_lapic_state lapic{};
  if (Ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) == 0) state.lapic = lapic;
  state.last_exit_reason = last_exit_reason_.load();
  state.last_exit_addr = last_exit_addr_.load();
  const GuestMemory* memory = memory_.load();
  if (memory != nullptr && state.regs && state.sregs && (state.sregs->efer & kEferLma) != 0) {
    state.stack = ReadStack(*memory, state.regs->rsp);
  }
  return FormatVcpuState(index_, state);
}

std::optional<std::vector<uint64_t>> Vcpu::ReadStack(const GuestMemory& memory, uint64_t rsp) {
  // The stack is virtually mapped (a kernel's vmap'd stack): KVM walks the
  // guest's page tables for each page, and a page at a time is read.
  constexpr uint64_t kPage = 4096;
  std::vector<uint8_t> bytes;
  uint64_t va = rsp & ~uint64_t{7};
  while (bytes.size() < kStackScanBytes) {
    kvm_translation t{};
    t.linear_address = va;
    if (Ioctl(fd_.get(), KVM_TRANSLATE, &t) != 0 || !t.valid) break;
    const uint64_t chunk = std::min<uint64_t>(kPage - (va % kPage), kStackScanBytes - bytes.size());
    std::vector<uint8_t> part(chunk);
    if (!memory.Read(t.physical_address, part).ok()) break;
    bytes.insert(bytes.end(), part.begin(), part.end());
    va += chunk;
  }
  if (bytes.empty()) return std::nullopt;
  return KernelTextWords(bytes, kStackWordsShown);
}

std::vector<uint64_t> KernelTextWords(std::span<const uint8_t> stack, size_t max) {
  constexpr uint64_t kTextStart = 0xffffffff80000000ull;
  constexpr uint64_t kModulesStart = 0xffffffffc0000000ull;
  std::vector<uint64_t> out;
  for (size_t off = 0; off + 8 <= stack.size() && out.size() < max; off += 8) {
    uint64_t word = 0;
    std::memcpy(&word, stack.data() + off, sizeof(word));
    if (word >= kTextStart && word < kModulesStart) out.push_back(word);
  }
  return out;
}

std::string FormatVcpuState(int index, const VcpuState& state) {
  std::string out = absl::StrCat("vCPU ", index, ":");
  if (const auto& r = state.regs) {
    absl::StrAppendFormat(&out, " rip=0x%x rsp=0x%x rflags=0x%x(IF=%d) rax=0x%x", r->rip, r->rsp,
                          r->rflags, (r->rflags >> 9) & 1, r->rax);
  } else {
    absl::StrAppend(&out, " regs=unavailable");
  }
  if (const auto& s = state.sregs) {
    absl::StrAppendFormat(&out, " cs=0x%x cr0=0x%x cr3=0x%x cr4=0x%x efer=0x%x", s->cs.selector,
                          s->cr0, s->cr3, s->cr4, s->efer);
  } else {
    absl::StrAppend(&out, " sregs=unavailable");
  }
  if (state.mp_state) absl::StrAppend(&out, " mp_state=", MpStateName(state.mp_state->mp_state));
  if (const auto& e = state.events) {
    absl::StrAppendFormat(&out, " irq_injected=%d(0x%02x) irq_shadow=%d nmi_pending=%d",
                          e->interrupt.injected, e->interrupt.nr, e->interrupt.shadow,
                          e->nmi.pending);
  }
  if (const auto& l = state.lapic) {
    uint32_t tpr = 0;
    std::memcpy(&tpr, l->regs + 0x80, sizeof(tpr));
    absl::StrAppendFormat(&out, " lapic: tpr=0x%x isr=[%s] irr=[%s]", tpr, ApicVectors(*l, 0x100),
                          ApicVectors(*l, 0x200));
  }
  absl::StrAppend(&out, " last_exit=", ExitName(state.last_exit_reason, state.last_exit_addr));
  if (const auto& st = state.stack) {
    absl::StrAppend(&out, " stack=[", absl::StrJoin(*st, " ", [](std::string* o, uint64_t w) {
                      absl::StrAppendFormat(o, "0x%x", w);
                    }), "]");
  }
  return out;
}

bool Vcpu::HandleExit(const VcpuContext& context) {
  last_exit_reason_.store(run_->exit_reason, std::memory_order_relaxed);
  if (run_->exit_reason == KVM_EXIT_IO) {
    last_exit_addr_.store(run_->io.port, std::memory_order_relaxed);
  } else if (run_->exit_reason == KVM_EXIT_MMIO) {
    last_exit_addr_.store(run_->mmio.phys_addr, std::memory_order_relaxed);
  }
  switch (run_->exit_reason) {
    case KVM_EXIT_IO: {
      auto* base = reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset;
      for (uint32_t i = 0; i < run_->io.count; ++i) {
        std::span<uint8_t> data(base + i * run_->io.size, run_->io.size);
        if (run_->io.direction == KVM_EXIT_IO_OUT) {
          context.pio->Write(run_->io.port, data);
        } else {
          context.pio->Read(run_->io.port, data);
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      const uint32_t len = std::min<uint32_t>(run_->mmio.len, sizeof(run_->mmio.data));
      std::span<uint8_t> data(run_->mmio.data, len);
      if (run_->mmio.is_write) {
        context.mmio->Write(run_->mmio.phys_addr, data);
      } else {
        context.mmio->Read(run_->mmio.phys_addr, data);
      }
      return true;
    }
    case KVM_EXIT_HLT:
      // Only seen without an in-kernel LAPIC; a halted tiny guest is done.
      context.stop({StopRequest::Reason::kPowerOff, 0, "guest halted"});
      return false;
    case KVM_EXIT_SHUTDOWN:
      context.stop({StopRequest::Reason::kReset, 0, "guest reset (triple fault)"});
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      if (run_->system_event.type == KVM_SYSTEM_EVENT_RESET) {
        context.stop({StopRequest::Reason::kReset, 0, "guest reset"});
      } else {
        context.stop({StopRequest::Reason::kPowerOff, 0, "guest shut down"});
      }
      return false;
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_FAIL_ENTRY:
      context.stop({StopRequest::Reason::kError, 0,
                    absl::StrCat("vCPU ", index_, ": VM entry failed, hardware reason 0x",
                                 absl::Hex(run_->fail_entry.hardware_entry_failure_reason))});
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      context.stop({StopRequest::Reason::kError, 0,
                    absl::StrCat("vCPU ", index_, ": KVM internal error, ", InternalErrorText(run_->internal))});
      return false;
    default:
      context.stop({StopRequest::Reason::kError, 0,
                    absl::StrCat("vCPU ", index_, ": unhandled KVM exit reason ",
                                 run_->exit_reason)});
      return false;
  }
}

}  // namespace passage
