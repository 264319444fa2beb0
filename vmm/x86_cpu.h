// Per-vCPU state a firmware would set up before an OS runs: the CPUID the
// guest sees (KVM's supported set, i.e. "-cpu host", with the topology made
// consistent with -smp), the MSRs (fast strings, MTRRs: write-back RAM,
// uncached 32-bit device hole), the local APIC's LINT0/LINT1 wiring, and the
// application processors waiting for INIT/SIPI.
#ifndef PASSAGE_VMM_X86_CPU_H_
#define PASSAGE_VMM_X86_CPU_H_

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace passage {

struct CpuidOptions {
  int index = 0;              // vCPU index = APIC ID
  int cpus = 1;               // -smp: one package, one thread per core
  bool tsc_deadline = false;  // KVM_CAP_TSC_DEADLINE_TIMER: advertise the TSC-deadline timer
  std::vector<std::string> disabled;  // -cpu host,-FEATURE (see CpuFeatureNames)
};

// Features -cpu host,-NAME can take away: x2apic, tsc-deadline, xsave (and
// with it everything whose state XSAVE manages: AVX*, PKU, leaf 0xD), avx
// (AVX, FMA, F16C, AVX2, AVX-512F), avx2, avx512f, pku, la57.
const std::vector<std::string>& CpuFeatureNames();
bool IsCpuFeature(absl::string_view name);

// The CPUID table for one vCPU, from KVM_GET_SUPPORTED_CPUID's entries:
// topology leaves (1, 4, 0xB, 0x1F, 0x80000008, 0x8000001E) describe `cpus`
// cores in one package with this vCPU's APIC ID; leaf 0x80000026 (AMD
// extended topology, not modelled) is dropped; the TSC-deadline bit follows
// `tsc_deadline`. Pure function: the unit tests check it.
std::vector<kvm_cpuid_entry2> GuestCpuid(const std::vector<kvm_cpuid_entry2>& supported,
                                         const CpuidOptions& options);

// ENQCMD: CPUID.(EAX=7,ECX=0):ECX[29]. GuestCpuid passes KVM's bit through
// and never sets it otherwise: a guest may use ENQCMD only when KVM handles
// its IA32_PASID MSR (and the PASID translation) for it.
constexpr uint32_t kLeaf7EcxEnqcmd = 1u << 29;
bool EnqcmdSupported(const std::vector<kvm_cpuid_entry2>& supported);
// Why the guest has no ENQCMD when KVM does not offer it (query, README).
inline constexpr char kEnqcmdOffReason[] =
    "KVM_GET_SUPPORTED_CPUID does not report ENQCMD: upstream KVM does not virtualize IA32_PASID "
    "or translate guest PASIDs for ENQCMD";

// The guest's physical address width from CPUID 0x80000008 (36 if absent).
int GuestPhysAddrBits(const std::vector<kvm_cpuid_entry2>& cpuid);

// MSR values at power-on (after KVM_SET_CPUID2, which enables the MTRR MSRs).
struct MsrValue {
  uint32_t index;
  uint64_t value;
};
std::vector<MsrValue> BootMsrs(int phys_addr_bits);

// Applies BootMsrs, the LAPIC LINT0 = ExtINT / LINT1 = NMI delivery modes
// and, for an application processor (index > 0), the wait-for-SIPI MP state.
// `mp_state` says whether KVM_CAP_MP_STATE is available.
absl::Status SetupVcpuState(int vcpu_fd, int index, int phys_addr_bits, bool mp_state);

}  // namespace passage

#endif  // PASSAGE_VMM_X86_CPU_H_
