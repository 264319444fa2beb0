#include "vmm/vm.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "devices/acpi/acpi_tables.h"
#include "devices/pci/pci_host_bridge.h"
#include "vmm/firmware.h"
#include "vmm/loader.h"
#include "vmm/proc_self.h"
#include "vmm/sandbox.h"
#include "vmm/x86_cpu.h"

namespace passage {
namespace {

// Addresses KVM needs for its own use on Intel (below the 4 GiB boundary,
// outside RAM and every device window).
constexpr uint64_t kIdentityMapAddr = 0xfeffc000;
constexpr uint64_t kTssAddr = 0xfeffd000;
constexpr uint64_t kKvmPagesEnd = kTssAddr + 3 * 4096;  // the TSS takes three pages

// ACPI tables: in the BIOS area of the legacy hole, where an OS that is not
// told the RSDP address (boot_params.acpi_rsdp_addr) scans for it.
constexpr uint64_t kAcpiTablesAddr = 0xe0000;
constexpr uint64_t kAcpiTablesMax = 0x10000;

// Puts a terminal on stdin into raw-ish mode (no echo, no line editing) for
// the guest console, keeping ^C as SIGINT; restores it on destruction.
class TerminalMode {
 public:
  TerminalMode() {
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | ECHONL | IEXTEN);
    raw.c_iflag &= ~static_cast<tcflag_t>(ICRNL | IXON);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~TerminalMode() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Vm>> Vm::Create(const VmConfig& config, PassedFds& fds) {
  // The monitor sockets first: one in use fails the start before anything
  // else is opened. Served from Run() on.
  std::unique_ptr<QmpServer> qmp;
  if (!config.monitors.empty()) {
    QmpServer::Options options;
    options.version = PASSAGE_VERSION;
    absl::StatusOr<std::unique_ptr<QmpServer>> created = QmpServer::Create(config.monitors, options);
    if (!created.ok()) return created.status();
    qmp = std::move(*created);
  }
  absl::StatusOr<Kvm> kvm = absl::InternalError("no KVM");
  if (config.kvm_fd >= 0) {
    absl::StatusOr<UniqueFd> fd = fds.Take(config.kvm_fd);
    if (!fd.ok()) return absl::Status(fd.status().code(), absl::StrCat("-accel kvm: ", fd.status().message()));
    kvm = Kvm::Adopt(std::move(*fd));
  } else {
    kvm = Kvm::Open();
  }
  if (!kvm.ok()) return kvm.status();
  std::unique_ptr<Vm> vm(new Vm(std::move(*kvm)));
  vm->vm_fd_.reset(Ioctl(vm->kvm_.fd(), KVM_CREATE_VM, 0ul));
  if (!vm->vm_fd_.valid()) return ErrnoError("KVM_CREATE_VM");
  vm->loop_ = std::make_unique<EventLoop>();
  if (!vm->loop_->start_status().ok()) return vm->loop_->start_status();
  vm->qmp_ = std::move(qmp);
  vm->sandbox_ = config.sandbox;
  vm->sandbox_open_ = config.sandbox && SandboxAllowsOpen(config);
  vm->stop_event_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!vm->stop_event_.valid()) return ErrnoError("eventfd for the VM's stop signal");

  if (Ioctl(vm->vm_fd(), KVM_SET_IDENTITY_MAP_ADDR, &kIdentityMapAddr) != 0 &&
      vm->kvm_.CheckExtension(KVM_CAP_SET_IDENTITY_MAP_ADDR)) {
    return ErrnoError("KVM_SET_IDENTITY_MAP_ADDR");
  }
  if (Ioctl(vm->vm_fd(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(kTssAddr)) != 0) {
    return ErrnoError("KVM_SET_TSS_ADDR");
  }
  if (Ioctl(vm->vm_fd(), KVM_CREATE_IRQCHIP, 0ul) != 0) return ErrnoError("KVM_CREATE_IRQCHIP");
  const int routes = Ioctl(vm->vm_fd(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(KVM_CAP_IRQ_ROUTING));
  if (routes <= static_cast<int>(kIoapicPins)) {
    return absl::FailedPreconditionError("KVM has no GSI routing (KVM_CAP_IRQ_ROUTING)");
  }
  vm->irq_ = std::make_unique<KvmIrqRouting>(vm->vm_fd(), static_cast<uint32_t>(routes));
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (Ioctl(vm->vm_fd(), KVM_CREATE_PIT2, &pit) != 0) return ErrnoError("KVM_CREATE_PIT2");
  MarkBootPhase("kvm");

  absl::StatusOr<std::unique_ptr<GuestMemory>> memory =
      GuestMemory::Create({config.ram_size, config.hugepages});
  if (!memory.ok()) return memory.status();
  vm->memory_ = std::move(*memory);
  vm->hugepages_ = config.hugepages;
  // 32: what KVM offered before it could say (KVM_CAP_NR_MEMSLOTS).
  const int slots = Ioctl(vm->vm_fd(), KVM_CHECK_EXTENSION, static_cast<unsigned long>(KVM_CAP_NR_MEMSLOTS));
  vm->memslots_ = std::make_unique<KvmMemslots>(vm->vm_fd(), static_cast<uint32_t>(slots > 0 ? slots : 32));
  if (absl::Status s = vm->memory_->AddListener(vm->memslots_.get()); !s.ok()) return s;
  MarkBootPhase("memory");

  if (absl::Status s = vm->CreatePlatform(config, fds); !s.ok()) return s;
  if (absl::Status s = vm->CreateHotplug(); !s.ok()) return s;
  // The GED carries both: slot events for device_add/device_del, and the
  // power button for system_powerdown.
  vm->SetHotplugSignaller(vm->acpi_hotplug_.get());
  vm->power_button_ = [hotplug = vm->acpi_hotplug_] {
    hotplug->PowerButton();
    return absl::OkStatus();
  };
  LinuxBootPlatform boot_platform;
  if (absl::Status s = vm->CreateAcpi(config, boot_platform); !s.ok()) return s;
  MarkBootPhase("acpi");
  if (absl::Status s = vm->CreateVcpus(config, boot_platform); !s.ok()) return s;
  return vm;
}

absl::Status Vm::CreatePlatform(const VmConfig& config, PassedFds& fds) {
  int out_fd = -1;
  switch (config.serial.kind) {
    case SerialConfig::Kind::kStdio:
      out_fd = STDOUT_FILENO;
      serial_stdio_ = true;
      break;
    case SerialConfig::Kind::kNone:
      break;
    case SerialConfig::Kind::kFile:
      serial_file_.reset(::open(config.serial.path.c_str(),
                                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!serial_file_.valid()) {
        return ErrnoError(absl::StrCat("-serial: cannot open '", config.serial.path, "'"));
      }
      out_fd = serial_file_.get();
      break;
  }
  uart_ = std::make_shared<Uart8250>(out_fd, [this](bool level) {
    (void)irq_->SetLevel(Uart8250::kCom1Irq, level);
  });
  std::shared_ptr<IoHandler> com1 = uart_;
  if (config.report_timing) {
    boot_timer_ = std::make_shared<BootTimer>(config.timing_marker);
    com1 = std::make_shared<SerialTap>(uart_, boot_timer_);
  }
  if (absl::Status s = pio_.Register(Uart8250::kCom1Base, Uart8250::kSize, com1, "COM1");
      !s.ok()) {
    return s;
  }
  debug_ = std::make_unique<DebugDevice>([this](int status) {
    RequestStop({StopRequest::Reason::kDebugExit, status, "debug exit"});
  });
  if (absl::Status s = pio_.Register(DebugDevice::kPort, 1, debug_->port_handler(), "debug-exit");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = mmio_.Register(kDebugMmioStart, DebugDevice::kMmioSize,
                                      debug_->mmio_handler(), "debug-mmio");
      !s.ok()) {
    return s;
  }
  acpi_pm_ = std::make_shared<AcpiPmDevice>(
      [this] { RequestStop({StopRequest::Reason::kPowerOff, 0, "power-off (ACPI S5)"}); },
      [this] { RequestStop({StopRequest::Reason::kReset, 0, "reset (ACPI reset register)"}); });
  if (absl::Status s = pio_.Register(AcpiPmDevice::kPort, AcpiPmDevice::kSize, acpi_pm_,
                                     "acpi-pm");
      !s.ok()) {
    return s;
  }
  // The GED's line (GSI 9, level-triggered): see acpi_hotplug.h.
  acpi_hotplug_ = std::make_shared<AcpiHotplug>(
      [this](bool level) { (void)irq_->SetLevel(AcpiHotplug::kGsi, level); },
      [this](uint8_t slot) { OnGuestEject(slot); });
  if (absl::Status s = pio_.Register(AcpiHotplug::kBase, AcpiHotplug::kSize, acpi_hotplug_,
                                     "acpi-ged");
      !s.ok()) {
    return s;
  }
  i8042_ = std::make_shared<I8042>(
      [this] { RequestStop({StopRequest::Reason::kReset, 0, "reset (i8042 command 0xfe)"}); });
  if (absl::Status s = pio_.Register(I8042::kBase, I8042::kSize, i8042_, "i8042"); !s.ok()) {
    return s;
  }
  cmos_ = std::make_shared<CmosRtc>();
  if (absl::Status s = pio_.Register(CmosRtc::kBase, CmosRtc::kSize, cmos_, "cmos-rtc");
      !s.ok()) {
    return s;
  }

  using Bus = PlatformDevice::Bus;
  platform_.cpus = config.cpus;
  for (const MemoryRegion& r : memory_->regions()) platform_.ram.push_back({r.gpa, r.size});
  platform_.ioapic_addr = kIoapicStart;
  platform_.ioapic_gsi_base = 0;
  platform_.lapic_addr = kLapicStart;
  platform_.devices = {
      {"serial", "ns16550a", Bus::kPort, Uart8250::kCom1Base, Uart8250::kSize,
       static_cast<int>(Uart8250::kCom1Irq)},
      {"debug-exit", "passage,debug-exit", Bus::kPort, DebugDevice::kPort, 1, -1},
      {"i8042", "passage,i8042-reset", Bus::kPort, I8042::kBase, I8042::kSize, -1},
      {"rtc", "motorola,mc146818", Bus::kPort, CmosRtc::kBase, CmosRtc::kSize, CmosRtc::kIrq},
      {"acpi-pm", "passage,acpi-pm", Bus::kPort, AcpiPmDevice::kPort, AcpiPmDevice::kSize, -1},
      {"acpi-ged", "passage,acpi-ged", Bus::kPort, AcpiHotplug::kBase, AcpiHotplug::kSize,
       static_cast<int>(AcpiHotplug::kGsi), /*irq_level_high=*/true},
      {"debug", "passage,debug-mmio", Bus::kMmio, kDebugMmioStart, DebugDevice::kMmioSize, -1},
  };
  platform_.stdout_device = "serial";
  return CreatePci(config, fds);
}

absl::Status Vm::CreatePci(const VmConfig& config, PassedFds& fds) {
  // Passthrough first: its iommufd objects map guest RAM before any device
  // is bound, and it outlives the devices it creates.
  bool wants_vfio = !config.object_configs.empty();
  for (const DeviceConfig& d : config.device_configs) wants_vfio |= d.driver == "vfio-pci";
  if (wants_vfio) {
    std::vector<UniqueFd> object_fds;
    for (const ObjectConfig& o : config.object_configs) {
      if (o.fd < 0) continue;
      absl::StatusOr<UniqueFd> fd = fds.Take(o.fd);
      if (!fd.ok()) return absl::Status(fd.status().code(), absl::StrCat(o.Label(), ": ", fd.status().message()));
      object_fds.push_back(std::move(*fd));
    }
    // Passthrough::Create owns the object fds from here, also when it fails.
    for (UniqueFd& fd : object_fds) (void)fd.release();
    absl::StatusOr<std::unique_ptr<Passthrough>> p = Passthrough::Create(
        config.object_configs, *memory_, *loop_, vm_fd(), &Sys::Real(), config.dma_map);
    if (!p.ok()) return p.status();
    passthrough_ = std::move(*p);
  }
  // iommufd objects made; -dma-map sync: RAM mapped, pinning waits for the
  // first attach; background: nothing mapped until Run().
  MarkBootPhase("passthrough");
  absl::StatusOr<std::unique_ptr<PciPlatform>> pci = PciPlatform::Create(
      config, {memory_.get(), &pio_, &mmio_, irq_.get(), memslots_.get(), passthrough_.get(), &fds});
  if (!pci.ok()) return pci.status();
  pci_ = std::move(*pci);
  MarkBootPhase("pci");  // every device opened, bound, attached (sync: pinned)
  // An interrupt a device cannot wire at run time stops the VM with that error.
  pci_->irq().SetFatalHandler([this](const absl::Status& s) {
    RequestStop({StopRequest::Reason::kError, 0, std::string(s.message())});
  });
  PlatformDescription::Pci& d = platform_.pci;
  d.ecam_base = kEcamStart;
  d.ecam_size = PciPlatform::kEcamBusSize;
  d.config_port = PciConfigPorts::kBase;
  d.io = pci_->windows().io;
  d.mmio32 = pci_->windows().mmio32;
  d.mmio64 = pci_->windows().mmio64;
  for (const PciFunctionInfo& f : pci_->Describe()) {
    PlatformPciFunction out{f.name.substr(0, f.name.find(',')), f.name, f.address.slot, f.address.function,
                            f.ids.vendor, f.ids.device, f.ids.class_code,
                            f.intx_gsi != 0 ? static_cast<int>(f.intx_gsi) : -1, {}};
    static_assert(PlatformPciFunction::Bar::kRomIndex == PciDevice::kRomBar);
    for (const PciFunctionInfo::Bar& b : f.bars) {
      using Kind = PlatformPciFunction::Bar::Kind;
      out.bars.push_back({b.index, b.kind == PciBarKind::kIo ? Kind::kIo : b.kind == PciBarKind::kMem32 ? Kind::kMem32 : Kind::kMem64,
                          b.prefetchable, b.address, b.size});
    }
    d.functions.push_back(std::move(out));
  }
  return absl::OkStatus();
}

absl::Status Vm::CreateAcpi(const VmConfig& config, LinuxBootPlatform& boot_platform) {
  acpi::AcpiConfig acpi;
  acpi.cpus = config.cpus;
  acpi.lapic_addr = kLapicStart;
  acpi.ioapic_addr = kIoapicStart;
  acpi.ioapic_id = 0;  // KVM's IOAPIC resets its ID register to 0
  acpi.ioapic_gsi_base = 0;
  acpi.pm_port = AcpiPmDevice::kPort;
  acpi.serial_ports = {{static_cast<uint16_t>(Uart8250::kCom1Base),
                        static_cast<uint8_t>(Uart8250::kCom1Irq)}};
  acpi.rtc = acpi::RtcInfo{static_cast<uint16_t>(CmosRtc::kBase), CmosRtc::kIrq};
  if (pci_ != nullptr) acpi.pci = pci_->AcpiInfo();
  acpi.hotplug = acpi::HotplugInfo{static_cast<uint16_t>(AcpiHotplug::kBase), AcpiHotplug::kGsi};
  absl::StatusOr<acpi::AcpiTables> tables =
      acpi::BuildAcpiTables(acpi, kAcpiTablesAddr, kAcpiTablesMax);
  if (!tables.ok()) return tables.status();
  if (absl::Status s = memory_->Write(kAcpiTablesAddr, tables->bytes); !s.ok()) return s;
  if (absl::Status s = WriteResetVectorStub(*memory_); !s.ok()) return s;
  const uint64_t acpi_end = (kAcpiTablesAddr + tables->bytes.size() + 4095) / 4096 * 4096;
  boot_platform.acpi_rsdp = tables->rsdp_addr;
  boot_platform.e820_special = {
      {kLegacyHoleStart, kAcpiTablesAddr - kLegacyHoleStart, E820Type::kReserved},
      {kAcpiTablesAddr, acpi_end - kAcpiTablesAddr, E820Type::kAcpi},
      {acpi_end, kLegacyHoleEnd - acpi_end, E820Type::kReserved},
      {kIdentityMapAddr, kKvmPagesEnd - kIdentityMapAddr, E820Type::kReserved},
      {kEcamStart, PciPlatform::kEcamBusSize, E820Type::kReserved},  // MCFG: ECAM of bus 0
  };
  platform_.reserved = boot_platform.e820_special;
  platform_.acpi = {tables->rsdp_addr, kAcpiTablesAddr, tables->bytes.size()};
  return absl::OkStatus();
}

absl::Status Vm::CreateVcpus(const VmConfig& config, const LinuxBootPlatform& boot_platform) {
  absl::StatusOr<LoadedKernel> loaded = LoadKernel(config, boot_platform, *memory_);
  if (!loaded.ok()) return loaded.status();
  MarkBootPhase("kernel");
  const BootEntry& entry = loaded->entry;
  platform_.boot.kernel = config.kernel;
  platform_.boot.entry = entry.rip;
  platform_.boot.cmdline = config.append;
  if (loaded->linux_layout) {
    platform_.boot.protocol = "linux-64bit";
    platform_.boot.initrd = config.initrd;
    platform_.boot.initrd_addr = loaded->linux_layout->initrd_addr;
    platform_.boot.initrd_size = loaded->linux_layout->initrd_size;
  } else {
    platform_.boot.protocol = entry.mode == BootEntry::Mode::kLong ? "flat-long" : "flat-real";
  }
  const int max_vcpus = kvm_.CheckExtension(KVM_CAP_MAX_VCPUS);
  if (max_vcpus > 0 && config.cpus > max_vcpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("-smp: ", config.cpus, " vCPUs requested, this KVM allows ", max_vcpus));
  }
  absl::StatusOr<std::vector<kvm_cpuid_entry2>> cpuid = kvm_.SupportedCpuid();
  if (!cpuid.ok()) return cpuid.status();
  enqcmd_ = EnqcmdSupported(*cpuid);
  const bool tsc_deadline = kvm_.CheckExtension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  const bool mp_state = kvm_.CheckExtension(KVM_CAP_MP_STATE) > 0;
  const int phys_bits = GuestPhysAddrBits(*cpuid);
  for (int i = 0; i < config.cpus; ++i) {
    absl::StatusOr<std::unique_ptr<Vcpu>> vcpu = Vcpu::Create(kvm_, vm_fd(), i);
    if (!vcpu.ok()) return vcpu.status();
    const std::vector<kvm_cpuid_entry2> guest_cpuid =
        GuestCpuid(*cpuid, {.index = i,
                            .cpus = config.cpus,
                            .tsc_deadline = tsc_deadline,
                            .disabled = config.cpu_disabled});
    if (absl::Status s = (*vcpu)->SetCpuid(guest_cpuid, config.cpus); !s.ok()) return s;
    if (absl::Status s = SetupVcpuState((*vcpu)->fd(), i, phys_bits, mp_state); !s.ok()) return s;
    vcpus_.push_back(std::move(*vcpu));
  }
  // The boot processor starts at the entry point; the others wait for SIPI.
  absl::Status entry_set = vcpus_[0]->SetupEntry(entry);
  MarkBootPhase("vcpus");
  return entry_set;
}

absl::Status Vm::DumpDtb(const std::string& path) const {
  return WritePlatformFdt(platform_, path);
}

std::string Vm::StopDescription() {
  absl::MutexLock lock(&stop_mu_);
  return stop_.has_value() ? stop_->detail : "running";
}

std::string Vm::TimingReport() {
  const std::string stop = StopDescription();
  absl::StatusOr<MemoryUsage> usage = ReadOwnMemoryUsage();
  MemoryUsage m = usage.ok() ? *usage : MemoryUsage{};
  if (!hugepages_) {  // hugetlb pages are not in VmRSS
    for (const MemoryRegion& r : memory_->regions()) m.guest_ram_kib += ResidentKib(r.host, r.size);
  }
  static const BootTimer kNoTimer("");
  return TimingReportJson(boot_timer_ ? *boot_timer_ : kNoTimer, m, stop);
}

Vm::~Vm() {
  if (qmp_ != nullptr) qmp_->Close();  // no command runs into a VM being torn down
  ShutdownHotplug();  // no device or object comes or goes during the teardown
  stopping_ = true;
  pause_.Close();
  for (auto& v : vcpus_) v->Kick();
  // The mapping thread ends (vCPUs waiting for it return) before the
  // devices (and the container's groups) it maps for go.
  if (passthrough_ != nullptr) passthrough_->StopMapping();
  vcpus_.clear();  // joins the threads
  pci_.reset();          // devices stop their workers while guest memory is still there
  passthrough_.reset();  // then DMA spaces unmap guest RAM and VFIO files close
  if (memory_ != nullptr && memslots_ != nullptr) memory_->RemoveListener(memslots_.get());
}

void Vm::RequestStop(StopRequest request) {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stop_.has_value()) return;
    stop_ = std::move(request);
  }
  stopping_ = true;
  const uint64_t one = 1;
  (void)!write(stop_event_.get(), &one, sizeof(one));
}

absl::StatusOr<int> Vm::Run() {
  // The kick signal, the termination signals and SIGUSR1 are blocked here
  // (main() blocks them before any thread exists, so every thread has them
  // blocked); vCPU threads unblock the kick, and the loop below takes the
  // others through a signalfd.
  InstallVcpuKickSignal();
  const sigset_t vm_signals = VmSignals();
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &vm_signals, &old);
  sigset_t taken = vm_signals;
  sigdelset(&taken, SIGRTMIN);
  UniqueFd sigfd(signalfd(-1, &taken, SFD_CLOEXEC));
  if (!sigfd.valid()) {
    // Without it SIGTERM and SIGINT could not stop the VM cleanly.
    const int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return absl::InternalError(absl::StrCat("signalfd: ", std::strerror(err)));
  }
  std::optional<TerminalMode> terminal;
  if (serial_stdio_) terminal.emplace();

  // Set-up is over. Guest RAM goes into the DMA spaces now, on a thread of
  // its own (-dma-map background), while the guest boots; a failure there
  // stops the VM with its one line. Only a VM made with passthrough can
  // have deferred spaces, and hotplug makes none (QMP starts below).
  Passthrough* const boot_passthrough = passthrough_.get();
  if (boot_passthrough != nullptr) {
    boot_passthrough->StartMapping([this](const absl::Status& s) {
      RequestStop({StopRequest::Reason::kError, 0, std::string(s.message())});
    });
  }
  // The filter goes on before any guest code runs (TSYNC: the mapping
  // thread's ioctls are VFIO/iommufd ones, which it allows).
  if (absl::Status s = EnterSandbox(); !s.ok()) {
    terminal.reset();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return s;
  }
  for (auto& v : vcpus_) {
    v->Start({&pio_, &mmio_, [this](StopRequest r) { RequestStop(std::move(r)); }, &stopping_, &pause_,
              memory_.get()});
  }
  MarkBootPhase("run");
  if (qmp_ != nullptr) {
    if (absl::Status s = qmp_->Start(*loop_, *this); !s.ok()) {
      RequestStop({StopRequest::Reason::kError, 0, absl::StrCat("QMP: ", s.message())});
    }
  }

  bool stdin_open = serial_stdio_;
  while (!stopping_.load()) {
    pollfd fds[3] = {{stop_event_.get(), POLLIN, 0}, {sigfd.get(), POLLIN, 0},
                     {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      RequestStop({StopRequest::Reason::kError, 0, absl::StrCat("poll: ", std::strerror(errno))});
      break;
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      if (read(sigfd.get(), &info, sizeof(info)) == sizeof(info)) {
        const int signo = static_cast<int>(info.ssi_signo);
        if (signo == SIGUSR1) {
          DumpState();  // and run on
        } else {
          // Like QEMU: say why, then the normal teardown; exit 128 + signo.
          std::fprintf(stderr, "passage: terminating on signal %d (%s) from pid %u\n", signo,
                       strsignal(signo), info.ssi_pid);
          RequestStop({StopRequest::Reason::kSignal, 128 + signo,
                       absl::StrCat("terminated by signal ", signo)});
        }
      }
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      uint8_t buf[256];
      const ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
      if (n > 0) {
        uart_->PushInput({buf, static_cast<size_t>(n)});
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;  // EOF: the console simply has no more input
      }
    }
  }
  StopRequest stop{StopRequest::Reason::kError, 0, ""};
  {
    absl::MutexLock lock(&stop_mu_);
    stop = *stop_;
  }
  EmitStopEvents(stop);
  pause_.Close();  // parked vCPUs (QMP stop) end too
  // vCPUs waiting for guest RAM to be mapped (a bus-master enable) end too.
  if (boot_passthrough != nullptr) boot_passthrough->CancelMapping();
  for (auto& v : vcpus_) v->Kick();
  for (auto& v : vcpus_) v->Join();
  terminal.reset();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (qmp_ != nullptr) {
    // Clients see SHUTDOWN (and quit's reply) before their sockets close.
    qmp_->Close(absl::Seconds(1));
  }

  switch (stop.reason) {
    case StopRequest::Reason::kDebugExit:
    case StopRequest::Reason::kSignal:
      return stop.status;
    case StopRequest::Reason::kPowerOff:
    case StopRequest::Reason::kReset:
    case StopRequest::Reason::kQuit:
    case StopRequest::Reason::kHostReset:
      return 0;
    case StopRequest::Reason::kError:
      if (stop.status != 0) return stop.status;  // a signal: 128 + signo
      return absl::InternalError(stop.detail);
  }
  return absl::InternalError("unreachable");
}

absl::Status Vm::EnterSandbox() {
  if (!sandbox_) return absl::OkStatus();
  // Opened now, read at exit (--report-timing, --report-resources).
  if (absl::Status s = OpenProcSelf(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("-sandbox on: ", s.message()));
  }
  SandboxPolicy policy;
  policy.allow_open = sandbox_open_;
  if (qmp_ != nullptr) policy.unlink_dirs = qmp_->SocketDirs();
  policy.readlink_dirs = {ProcSelfFdDir()};
  if (absl::Status s = InstallSandbox(policy); !s.ok()) return s;
  if (SandboxSelftestRequested()) {
    // Test-only (README): one forbidden call, from the event-loop thread (a
    // thread that existed before the filter: TSYNC must have reached it).
    const bool open_allowed = sandbox_open_;
    absl::StatusOr<std::unique_ptr<LoopEventfd>> e =
        LoopEventfd::Create(*loop_, [open_allowed] { SandboxSelftestViolation(open_allowed); });
    if (!e.ok()) return e.status();
    sandbox_selftest_ = std::move(*e);
    const uint64_t one = 1;
    (void)!write(sandbox_selftest_->fd(), &one, sizeof(one));
  }
  return absl::OkStatus();
}

// ---- Control plane (QMP): run state and events. ----------------------------

void Vm::Emit(std::string_view event, nlohmann::json data) {
  if (qmp_ != nullptr) qmp_->Emit(event, std::move(data));
}

void Vm::EmitStopEvents(const StopRequest& stop) {
  // QEMU's SHUTDOWN reasons; a reset ends the run (passage has no reboot,
  // like QEMU -no-reboot) after its RESET event. A debug exit or an error
  // sends none: the client sees the socket close.
  auto shutdown = [this](bool guest, const char* reason, bool reset) {
    if (reset) Emit("RESET", {{"guest", guest}, {"reason", reason}});
    Emit("SHUTDOWN", {{"guest", guest}, {"reason", reason}});
  };
  switch (stop.reason) {
    case StopRequest::Reason::kPowerOff:
      return shutdown(true, "guest-shutdown", false);
    case StopRequest::Reason::kReset:
      return shutdown(true, "guest-reset", true);
    case StopRequest::Reason::kQuit:
      return shutdown(false, "host-qmp-quit", false);
    case StopRequest::Reason::kHostReset:
      return shutdown(false, "host-qmp-system-reset", true);
    case StopRequest::Reason::kSignal:
      return shutdown(false, "host-signal", false);
    case StopRequest::Reason::kDebugExit:
    case StopRequest::Reason::kError:
      return;
  }
}

std::string Vm::RunState() {
  if (stopping_.load()) return "shutdown";
  return pause_.paused() ? "paused" : "running";
}

absl::Status Vm::Stop() {
  absl::MutexLock lock(&run_mu_);
  if (stopping_.load()) return absl::FailedPreconditionError("stop: the VM is shutting down");
  if (pause_.paused()) return absl::OkStatus();  // as QEMU: no second STOP
  pause_.Pause();
  for (auto& v : vcpus_) v->Kick();
  if (!pause_.AwaitParked(static_cast<int>(vcpus_.size()), absl::Seconds(5))) {
    return absl::DeadlineExceededError(
        "stop: a vCPU did not leave KVM_RUN within 5 s (busy in a device); it parks when it returns");
  }
  Emit("STOP");
  return absl::OkStatus();
}

absl::Status Vm::Cont() {
  absl::MutexLock lock(&run_mu_);
  if (stopping_.load()) return absl::FailedPreconditionError("cont: the VM is shutting down");
  if (!pause_.paused()) return absl::OkStatus();
  pause_.Resume();
  Emit("RESUME");
  return absl::OkStatus();
}

void Vm::Quit() { RequestStop({StopRequest::Reason::kQuit, 0, "quit (QMP)"}); }

void Vm::SystemReset() {
  RequestStop({StopRequest::Reason::kHostReset, 0, "system_reset (QMP); passage does not reboot"});
}

absl::Status Vm::SystemPowerdown() {
  if (stopping_.load()) return absl::FailedPreconditionError("system_powerdown: the VM is shutting down");
  if (absl::Status s = power_button_(); !s.ok()) return s;
  Emit("POWERDOWN");
  return absl::OkStatus();
}


void Vm::DumpState() {
  // stderr, unbuffered: each line goes out whole even if passage dies next.
  std::fprintf(stderr, "passage: state dump (SIGUSR1)\n");
  for (auto& v : vcpus_) {
    std::fprintf(stderr, "passage: %s\n", v->DumpState(absl::Seconds(2)).c_str());
  }
  if (std::optional<Uart8250::Snapshot> uart = uart_->Inspect(); uart.has_value()) {
    std::fprintf(stderr, "passage: uart COM1: %s\n", Uart8250::Describe(*uart).c_str());
  } else {
    std::fprintf(stderr, "passage: uart COM1: busy for 1 s (a vCPU is inside it)\n");
  }
  std::fprintf(stderr, "passage: %s\n", DescribeIoapicPin(Uart8250::kCom1Irq).c_str());
}

std::string Vm::DescribeIoapicPin(uint32_t pin) {
  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_IOAPIC;
  if (Ioctl(vm_fd(), KVM_GET_IRQCHIP, &chip) != 0 || pin >= KVM_IOAPIC_NUM_PINS) {
    return absl::StrCat("ioapic pin ", pin, ": KVM_GET_IRQCHIP: ", std::strerror(errno));
  }
  const auto& e = chip.chip.ioapic.redirtbl[pin].fields;
  return absl::StrFormat(
      "ioapic pin %u: vector=0x%02x masked=%d trigger=%s remote_irr=%d dest=0x%x irr=%d", pin,
      e.vector, e.mask, e.trig_mode ? "level" : "edge", e.remote_irr, e.dest_id,
      (chip.chip.ioapic.irr >> pin) & 1);
}

}  // namespace passage
