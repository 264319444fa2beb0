#include "vmm/x86_cpu.h"

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "memory/memory_map.h"
#include "memory/unique_fd.h"
#include "vmm/kvm.h"

namespace passage {
namespace {

constexpr uint32_t kLeaf1EcxTscDeadline = 1u << 24;
constexpr uint32_t kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff, kMsrMtrrPhysBase0 = 0x200,
                   kMsrMtrrPhysMask0 = 0x201;
constexpr uint64_t kMiscEnableFastString = 1;
constexpr uint64_t kMtrrEnable = 1 << 11, kMtrrTypeWriteBack = 6, kMtrrTypeUncached = 0,
                   kMtrrMaskValid = 1 << 11;
constexpr size_t kLapicLvtLint0 = 0x350, kLapicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryModeMask = 0x700, kDeliveryExtInt = 0x700, kDeliveryNmi = 0x400;

// One CPUID bit: leaf, subleaf, register (0 eax .. 3 edx), bit.
struct CpuidBit {
  uint32_t leaf, subleaf;
  int reg;
  int bit;
};
constexpr int kEax = 0, kEbx = 1, kEcx = 2, kEdx = 3;

struct Feature {
  const char* name;
  std::vector<CpuidBit> bits;
  bool drops_xsave_leaf = false;  // also remove leaf 0xD
};

// What needs AVX's register state (the YMM/ZMM halves XSAVE manages): AVX,
// FMA, F16C, AVX2, the AVX-512 family, VAES, VPCLMULQDQ, AVX-VNNI, AMX.
std::vector<CpuidBit> AvxFamily() {
  std::vector<CpuidBit> bits = {{1, 0, kEcx, 28}, {1, 0, kEcx, 12}, {1, 0, kEcx, 29},
                                {7, 0, kEbx, 5},  {7, 1, kEax, 4},  {7, 1, kEax, 5}};
  for (int b : {16, 17, 21, 26, 27, 28, 30, 31}) bits.push_back({7, 0, kEbx, b});
  for (int b : {1, 6, 9, 10, 11, 12, 14}) bits.push_back({7, 0, kEcx, b});
  for (int b : {2, 3, 8, 22, 23, 24}) bits.push_back({7, 0, kEdx, b});
  return bits;
}

const std::vector<Feature>& Features() {
  static const auto* features = [] {
    std::vector<CpuidBit> xsave = {{1, 0, kEcx, 26}, {1, 0, kEcx, 27}, {7, 0, kEcx, 3},
                                   {7, 0, kEcx, 4}};
    const std::vector<CpuidBit> avx = AvxFamily();
    xsave.insert(xsave.end(), avx.begin(), avx.end());
    return new std::vector<Feature>{
        {"x2apic", {{1, 0, kEcx, 21}}},
        {"tsc-deadline", {{1, 0, kEcx, 24}}},
        {"xsave", xsave, true},
        {"avx", avx},
        {"avx2", {{7, 0, kEbx, 5}}},
        {"avx512f", {{7, 0, kEbx, 16}}},
        {"pku", {{7, 0, kEcx, 3}, {7, 0, kEcx, 4}}},
        {"la57", {{7, 0, kEcx, 16}}},
    };
  }();
  return *features;
}

uint32_t& Reg(kvm_cpuid_entry2& e, int reg) {
  switch (reg) {
    case kEax: return e.eax;
    case kEbx: return e.ebx;
    case kEcx: return e.ecx;
    default: return e.edx;
  }
}

// Bits needed to number `n` things (ceil(log2(n))).
uint32_t Bits(int n) {
  uint32_t b = 0;
  while ((1 << b) < n) ++b;
  return b;
}

}  // namespace

const std::vector<std::string>& CpuFeatureNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const Feature& f : Features()) v->push_back(f.name);
    return v;
  }();
  return *names;
}

bool IsCpuFeature(absl::string_view name) {
  for (const Feature& f : Features()) {
    if (name == f.name) return true;
  }
  return false;
}

std::vector<kvm_cpuid_entry2> GuestCpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                         const CpuidOptions& options) {
  std::vector<CpuidBit> cleared;
  bool drop_xsave_leaf = false;
  for (const Feature& f : Features()) {
    for (const std::string& name : options.disabled) {
      if (name != f.name) continue;
      cleared.insert(cleared.end(), f.bits.begin(), f.bits.end());
      drop_xsave_leaf |= f.drops_xsave_leaf;
    }
  }
  const uint32_t apic_id = static_cast<uint32_t>(options.index);
  const uint32_t cpus = static_cast<uint32_t>(options.cpus < 1 ? 1 : options.cpus);
  const uint32_t core_bits = Bits(static_cast<int>(cpus));
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size());
  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC ID, [23:16] addressable logical CPUs.
        e.ebx = (e.ebx & 0xffff) | (apic_id << 24) | (((1u << core_bits) & 0xff) << 16);
        if (cpus > 1) {
          e.edx |= 1u << 28;  // HTT: EBX[23:16] is valid
        } else {
          e.edx &= ~(1u << 28);
        }
        if (options.tsc_deadline) {
          e.ecx |= kLeaf1EcxTscDeadline;
        } else {
          e.ecx &= ~kLeaf1EcxTscDeadline;
        }
        break;
      case 4:
        // Deterministic cache parameters: cores per package, and which
        // caches they share (L3 by all, L1/L2 by none).
        if ((e.eax & 0x1f) != 0) {
          const uint32_t level = (e.eax >> 5) & 0x7;
          const uint32_t sharing = level >= 3 ? (1u << core_bits) - 1 : 0;
          e.eax = (e.eax & 0x3fff) | (sharing << 14) | (((1u << core_bits) - 1) << 26);
        }
        break;
      case 0xb:
      case 0x1f:
        // Extended topology: level 0 = SMT (one thread per core), level 1 =
        // core (all CPUs in one package), then the invalid level.
        if (e.index == 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (1u << 8) | 0;
        } else if (e.index == 1) {
          e.eax = core_bits;
          e.ebx = cpus;
          e.ecx = (2u << 8) | 1;
        } else {
          e.eax = 0;
          e.ebx = 0;
          e.ecx = e.index & 0xff;
        }
        e.edx = apic_id;
        break;
      case 0x80000008:
        // AMD: ECX[7:0] cores per package - 1, [15:12] APIC ID bits for cores.
        e.ecx = (cpus - 1) | (core_bits << 12);
        break;
      case 0x8000001e:
        // AMD: extended APIC ID; core (compute unit) ID, one thread each; node 0.
        e.eax = apic_id;
        e.ebx = apic_id & 0xff;
        e.ecx = 0;
        break;
      case 0xd:
        if (drop_xsave_leaf) continue;
        break;
      case 0x80000026:
        continue;  // AMD extended CPU topology: not modelled, so not offered
      default:
        break;
    }
    for (const CpuidBit& b : cleared) {
      if (b.leaf == e.function && b.subleaf == e.index) Reg(e, b.reg) &= ~(1u << b.bit);
    }
    out.push_back(e);
  }
  return out;
}

bool EnqcmdSupported(const std::vector<kvm_cpuid_entry2>& supported) {
  for (const kvm_cpuid_entry2& e : supported) {
    if (e.function == 7 && e.index == 0) return e.ecx & kLeaf7EcxEnqcmd;
  }
  return false;
}

int GuestPhysAddrBits(const std::vector<kvm_cpuid_entry2>& cpuid) {
  for (const kvm_cpuid_entry2& e : cpuid) {
    if (e.function == 0x80000008) {
      const int bits = static_cast<int>(e.eax & 0xff);
      if (bits >= 32 && bits <= 52) return bits;
    }
  }
  return 36;
}

std::vector<MsrValue> BootMsrs(int phys_addr_bits) {
  const uint64_t phys_mask = (uint64_t{1} << phys_addr_bits) - 1;
  // Like a PC BIOS: RAM write-back by default, the 1 GiB below 4 GiB (PCI
  // MMIO, ECAM, IOAPIC, LAPIC) uncached. KVM honours these once a device
  // with non-coherent DMA is assigned.
  const uint64_t hole_size = 4 * kGiB - kPciHoleStart;
  return {
      {kMsrMiscEnable, kMiscEnableFastString},
      {kMsrMtrrPhysBase0, kPciHoleStart | kMtrrTypeUncached},
      {kMsrMtrrPhysMask0, (~(hole_size - 1) & phys_mask) | kMtrrMaskValid},
      {kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack},
  };
}

absl::Status SetupVcpuState(int vcpu_fd, int index, int phys_addr_bits, bool mp_state) {
  const std::vector<MsrValue> msrs = BootMsrs(phys_addr_bits);
  std::vector<uint8_t> buf(sizeof(kvm_msrs) + msrs.size() * sizeof(kvm_msr_entry));
  auto* list = reinterpret_cast<kvm_msrs*>(buf.data());
  list->nmsrs = static_cast<uint32_t>(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) {
    list->entries[i].index = msrs[i].index;
    list->entries[i].data = msrs[i].value;
  }
  const int set = Ioctl(vcpu_fd, KVM_SET_MSRS, list);
  if (set < 0) return ErrnoError(absl::StrCat("KVM_SET_MSRS on vCPU ", index));
  if (static_cast<size_t>(set) != msrs.size()) {
    return absl::InternalError(absl::StrCat("KVM_SET_MSRS on vCPU ", index, ": KVM refused MSR 0x",
                                            absl::Hex(msrs[set].index)));
  }

  kvm_lapic_state lapic{};
  if (Ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) != 0) {
    return ErrnoError(absl::StrCat("KVM_GET_LAPIC on vCPU ", index));
  }
  auto set_mode = [&lapic](size_t reg, uint32_t mode) {
    uint32_t v;
    std::memcpy(&v, &lapic.regs[reg], 4);
    v = (v & ~kDeliveryModeMask) | mode;
    std::memcpy(&lapic.regs[reg], &v, 4);
  };
  set_mode(kLapicLvtLint0, kDeliveryExtInt);
  set_mode(kLapicLvtLint1, kDeliveryNmi);
  if (Ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) != 0) {
    return ErrnoError(absl::StrCat("KVM_SET_LAPIC on vCPU ", index));
  }

  if (index > 0 && mp_state) {
    // With the in-kernel LAPIC KVM already parks APs until INIT/SIPI; make
    // sure of it rather than let an AP run from the reset vector.
    kvm_mp_state state{};
    if (Ioctl(vcpu_fd, KVM_GET_MP_STATE, &state) != 0) {
      return ErrnoError(absl::StrCat("KVM_GET_MP_STATE on vCPU ", index));
    }
    if (state.mp_state != KVM_MP_STATE_UNINITIALIZED) {
      state.mp_state = KVM_MP_STATE_UNINITIALIZED;
      if (Ioctl(vcpu_fd, KVM_SET_MP_STATE, &state) != 0) {
        return ErrnoError(absl::StrCat("KVM_SET_MP_STATE on vCPU ", index));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace passage
