#include "vmm/platform_fdt.h"

#include <fcntl.h>
#include <libfdt.h>
#include <unistd.h>

#include <initializer_list>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "memory/unique_fd.h"

namespace passage {
namespace {

constexpr uint32_t kIoapicPhandle = 1;
constexpr uint32_t kIsaIoSpace = 1;  // ISA binding: first address cell 1 = I/O
constexpr uint32_t kIrqEdgeRising = 0;  // intel,ce4100-ioapic second interrupt cell
constexpr uint32_t kIrqLevelHigh = 2;   // the same cell: level, active high

// Sequential-write FDT builder that remembers the first libfdt error.
class FdtWriter {
 public:
  explicit FdtWriter(std::vector<uint8_t>& buf) : buf_(buf) {
    Check(fdt_create(buf_.data(), static_cast<int>(buf_.size())));
    Check(fdt_finish_reservemap(buf_.data()));
  }
  void Begin(const std::string& name) { Check(fdt_begin_node(buf_.data(), name.c_str())); }
  void End() { Check(fdt_end_node(buf_.data())); }
  void String(const char* name, const std::string& value) {
    Check(fdt_property(buf_.data(), name, value.c_str(), static_cast<int>(value.size() + 1)));
  }
  void Empty(const char* name) {
    static const char kNothing = 0;
    Check(fdt_property(buf_.data(), name, &kNothing, 0));
  }
  void Cell(const char* name, uint32_t value) {
    Check(fdt_property_cell(buf_.data(), name, value));
  }
  void U64(const char* name, uint64_t value) { Check(fdt_property_u64(buf_.data(), name, value)); }
  void Cells(const char* name, std::initializer_list<uint32_t> cells) {
    std::vector<fdt32_t> be;
    for (uint32_t c : cells) be.push_back(cpu_to_fdt32(c));
    Check(fdt_property(buf_.data(), name, be.data(), static_cast<int>(be.size() * 4)));
  }
  void CellVector(const char* name, const std::vector<uint32_t>& cells) {
    std::vector<fdt32_t> be;
    for (uint32_t c : cells) be.push_back(cpu_to_fdt32(c));
    Check(fdt_property(buf_.data(), name, be.data(), static_cast<int>(be.size() * 4)));
  }
  // reg = <addr-hi addr-lo size-hi size-lo> (#address-cells = #size-cells = 2).
  void Reg64(uint64_t addr, uint64_t size) {
    Cells("reg", {static_cast<uint32_t>(addr >> 32), static_cast<uint32_t>(addr),
                  static_cast<uint32_t>(size >> 32), static_cast<uint32_t>(size)});
  }
  int Finish() {
    Check(fdt_finish(buf_.data()));
    return error_;
  }
  int error() const { return error_; }

 private:
  void Check(int r) {
    if (r < 0 && error_ == 0) error_ = r;
  }
  std::vector<uint8_t>& buf_;
  int error_ = 0;
};

std::string Unit(const std::string& name, uint64_t addr, bool io = false) {
  return absl::StrCat(name, "@", io ? "i" : "", absl::Hex(addr));
}

std::string DevicePath(const PlatformDescription& p, const std::string& name) {
  for (const PlatformDevice& d : p.devices) {
    if (d.name != name) continue;
    return d.bus == PlatformDevice::Bus::kPort ? absl::StrCat("/isa/", Unit(d.name, d.base, true))
                                               : absl::StrCat("/", Unit(d.name, d.base));
  }
  return "";
}

// PCI bus binding (IEEE 1275 PCI, and Linux's pci-host-ecam-generic):
// phys.hi = npt000ss bbbbbbbb dddddfff rrrrrrrr.
constexpr uint32_t kPciSpaceIo = 1u << 24, kPciSpaceMem32 = 2u << 24, kPciSpaceMem64 = 3u << 24;
constexpr uint32_t kPciPrefetchable = 1u << 30;
constexpr uint32_t kPciIrqLevelLow = 8;  // second interrupt cell: level, active-low

void WritePci(const PlatformDescription::Pci& pci, FdtWriter& w) {
  w.Begin(Unit("pci", pci.ecam_base));
  w.String("compatible", "pci-host-ecam-generic");
  w.String("device_type", "pci");
  w.Reg64(pci.ecam_base, pci.ecam_size);
  w.Cells("bus-range", {0, static_cast<uint32_t>(pci.ecam_size >> 20) - 1});
  w.Cell("#address-cells", 3);
  w.Cell("#size-cells", 2);
  auto hi = [](uint64_t v) { return static_cast<uint32_t>(v >> 32); };
  auto lo = [](uint64_t v) { return static_cast<uint32_t>(v); };
  w.Cells("ranges", {kPciSpaceIo, 0, lo(pci.io.gpa), 0, lo(pci.io.gpa), 0, lo(pci.io.size),
                     kPciSpaceMem32, 0, lo(pci.mmio32.gpa), 0, lo(pci.mmio32.gpa), 0, lo(pci.mmio32.size),
                     kPciSpaceMem64 | kPciPrefetchable, hi(pci.mmio64.gpa), lo(pci.mmio64.gpa),
                     hi(pci.mmio64.gpa), lo(pci.mmio64.gpa), hi(pci.mmio64.size), lo(pci.mmio64.size)});
  w.Cells("passage,config-ports", {pci.config_port, 8});
  for (const PlatformPciFunction& f : pci.functions) {
    const std::string unit = f.function == 0 ? absl::StrFormat("%x", f.slot)
                                             : absl::StrFormat("%x,%x", f.slot, f.function);
    w.Begin(absl::StrCat(f.name, "@", unit));
    const uint32_t devfn_bits = (uint32_t{f.slot} << 11) | (uint32_t{f.function} << 8);
    std::vector<uint32_t> reg = {devfn_bits, 0, 0, 0, 0};  // config space
    std::vector<uint32_t> assigned;
    std::string bars;
    for (const PlatformPciFunction::Bar& b : f.bars) {
      const uint32_t space = b.kind == PlatformPciFunction::Bar::Kind::kIo      ? kPciSpaceIo
                             : b.kind == PlatformPciFunction::Bar::Kind::kMem32 ? kPciSpaceMem32
                                                                                : kPciSpaceMem64;
      const bool rom = b.index == PlatformPciFunction::Bar::kRomIndex;  // config offset 0x30
      const uint32_t phys_hi = space | (b.prefetchable ? kPciPrefetchable : 0) | devfn_bits |
                               (rom ? 0x30u : 0x10u + 4u * static_cast<uint32_t>(b.index));
      reg.insert(reg.end(), {phys_hi, 0, 0, hi(b.size), lo(b.size)});
      assigned.insert(assigned.end(), {phys_hi | (1u << 31), hi(b.address), lo(b.address), hi(b.size), lo(b.size)});
      const char* kind = b.kind == PlatformPciFunction::Bar::Kind::kIo      ? "io"
                         : b.kind == PlatformPciFunction::Bar::Kind::kMem32 ? "mem32"
                                                                            : "mem64";
      absl::StrAppend(&bars, bars.empty() ? "" : " ", rom ? "rom" : absl::StrCat("bar", b.index), "=", kind, b.prefetchable ? ",pref" : "",
                      " 0x", absl::Hex(b.address), "+0x", absl::Hex(b.size));
    }
    w.CellVector("reg", reg);
    if (!assigned.empty()) w.CellVector("assigned-addresses", assigned);
    w.Cell("vendor-id", f.vendor);
    w.Cell("device-id", f.device);
    w.Cell("class-code", f.class_code);
    if (f.irq >= 0) w.Cells("interrupts", {static_cast<uint32_t>(f.irq), kPciIrqLevelLow});
    w.String("passage,bdf", absl::StrFormat("00:%02x.%x", f.slot, f.function));
    w.String("passage,name", f.label);
    w.String("passage,bars", bars);
    w.End();
  }
  w.End();
}

void WriteTree(const PlatformDescription& p, FdtWriter& w) {
  w.Begin("");
  w.String("compatible", "passage,x86-64-vm");
  w.String("model", "passage KVM virtual machine");
  w.Cell("#address-cells", 2);
  w.Cell("#size-cells", 2);
  w.Cell("interrupt-parent", kIoapicPhandle);

  w.Begin("chosen");
  w.String("bootargs", p.boot.cmdline);
  if (p.boot.initrd_size != 0) {
    w.U64("linux,initrd-start", p.boot.initrd_addr);
    w.U64("linux,initrd-end", p.boot.initrd_addr + p.boot.initrd_size);
    w.String("passage,initrd", p.boot.initrd);
  }
  if (const std::string path = DevicePath(p, p.stdout_device); !path.empty()) {
    w.String("stdout-path", path);
  }
  w.String("passage,kernel", p.boot.kernel);
  w.String("passage,boot-protocol", p.boot.protocol);
  w.U64("passage,entry", p.boot.entry);
  w.End();

  w.Begin("cpus");
  w.Cell("#address-cells", 1);
  w.Cell("#size-cells", 0);
  for (int i = 0; i < p.cpus; ++i) {
    w.Begin(Unit("cpu", i));
    w.String("device_type", "cpu");
    w.String("compatible", "passage,kvm-vcpu");
    w.Cell("reg", static_cast<uint32_t>(i));  // APIC ID
    w.End();
  }
  w.End();

  for (const GuestRange& r : p.ram) {
    w.Begin(Unit("memory", r.gpa));
    w.String("device_type", "memory");
    w.Reg64(r.gpa, r.size);
    w.End();
  }

  if (!p.reserved.empty()) {
    w.Begin("reserved-memory");
    w.Cell("#address-cells", 2);
    w.Cell("#size-cells", 2);
    w.Empty("ranges");
    for (const E820Entry& e : p.reserved) {
      w.Begin(Unit(e.type == E820Type::kAcpi ? "acpi" : "reserved", e.addr));
      w.Reg64(e.addr, e.size);
      w.Empty("no-map");
      w.String("passage,e820-type", E820TypeName(e.type));
      w.End();
    }
    w.End();
  }

  if (p.acpi.rsdp != 0) {
    w.Begin("acpi");
    w.String("compatible", "passage,acpi-tables");
    w.Reg64(p.acpi.base, p.acpi.size);
    w.U64("passage,rsdp", p.acpi.rsdp);
    w.End();
  }

  w.Begin(Unit("interrupt-controller", p.ioapic_addr));
  w.String("compatible", "intel,ce4100-ioapic");
  w.Reg64(p.ioapic_addr, 0x1000);
  w.Empty("interrupt-controller");
  w.Cell("#interrupt-cells", 2);
  w.Cell("phandle", kIoapicPhandle);
  w.Cell("passage,gsi-base", p.ioapic_gsi_base);
  w.String("passage,implementation", "kvm-irqchip");
  w.End();

  w.Begin(Unit("local-apic", p.lapic_addr));
  w.String("compatible", "intel,ce4100-lapic");
  w.Reg64(p.lapic_addr, 0x1000);
  w.String("passage,implementation", "kvm-irqchip");
  w.End();

  w.Begin("isa");
  w.String("compatible", "isa");
  w.Cell("#address-cells", 2);
  w.Cell("#size-cells", 1);
  w.Empty("ranges");
  for (const PlatformDevice& d : p.devices) {
    if (d.bus != PlatformDevice::Bus::kPort) continue;
    w.Begin(Unit(d.name, d.base, /*io=*/true));
    w.String("compatible", d.compatible);
    w.Cells("reg", {kIsaIoSpace, static_cast<uint32_t>(d.base), static_cast<uint32_t>(d.size)});
    if (d.irq >= 0) {
      w.Cells("interrupts", {static_cast<uint32_t>(d.irq), d.irq_level_high ? kIrqLevelHigh : kIrqEdgeRising});
    }
    w.End();
  }
  w.End();

  for (const PlatformDevice& d : p.devices) {
    if (d.bus != PlatformDevice::Bus::kMmio) continue;
    w.Begin(Unit(d.name, d.base));
    w.String("compatible", d.compatible);
    w.Reg64(d.base, d.size);
    if (d.irq >= 0) {
      w.Cells("interrupts", {static_cast<uint32_t>(d.irq), d.irq_level_high ? kIrqLevelHigh : kIrqEdgeRising});
    }
    w.End();
  }
  if (p.pci.ecam_base != 0) WritePci(p.pci, w);
  w.End();
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> BuildPlatformFdt(const PlatformDescription& platform) {
  for (size_t size = 16 * 1024; size <= 16 * 1024 * 1024; size *= 2) {
    std::vector<uint8_t> buf(size);
    FdtWriter w(buf);
    WriteTree(platform, w);
    const int err = w.Finish();
    if (err == -FDT_ERR_NOSPACE) continue;
    if (err < 0) {
      return absl::InternalError(absl::StrCat("building the device tree: ", fdt_strerror(err)));
    }
    buf.resize(fdt_totalsize(buf.data()));
    return buf;
  }
  return absl::InternalError("building the device tree: larger than 16 MiB");
}

absl::Status WritePlatformFdt(const PlatformDescription& platform, const std::string& path) {
  absl::StatusOr<std::vector<uint8_t>> blob = BuildPlatformFdt(platform);
  if (!blob.ok()) return absl::InternalError(absl::StrCat("-dump-dtb: ", blob.status().message()));
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError(absl::StrCat("-dump-dtb: cannot create '", path, "'"));
  size_t done = 0;
  while (done < blob->size()) {
    const ssize_t n = ::write(fd.get(), blob->data() + done, blob->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(absl::StrCat("-dump-dtb: writing '", path, "'"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace passage
