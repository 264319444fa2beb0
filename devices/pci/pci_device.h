// A PCI function as the bus sees it, with the handling every device shares:
// the standard header with its masks, BAR registers (sizing, guest
// reprogramming, decode gated by the command register), INTx, and hooks for
// capabilities that react to config writes (MSI, MSI-X, virtio).
// Devices (emulated, VFIO) derive from it; config accesses can be
// overridden whole (VFIO passes some of them to hardware).
#ifndef PASSAGE_DEVICES_PCI_PCI_DEVICE_H_
#define PASSAGE_DEVICES_PCI_PCI_DEVICE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"
#include "devices/pci/pci_bar.h"
#include "devices/pci/pci_config_space.h"

namespace passage {

struct PciIds {
  uint16_t vendor = 0;
  uint16_t device = 0;
  uint32_t class_code = 0;  // base class, subclass, prog-if (24 bits)
  uint8_t revision = 0;
  uint16_t subsystem_vendor = 0;
  uint16_t subsystem = 0;
  uint8_t interrupt_pin = 0;  // 0 none, 1..4 INTA..INTD
};

// A capability with behaviour: lays itself out in config space, then
// reacts to guest config accesses that touch it. PciDevice calls these with
// its config lock held, so config writes reach handlers one at a time.
class PciCapabilityHandler {
 public:
  virtual ~PciCapabilityHandler() = default;
  // Appends the capability to `config` (values and write masks); returns
  // its offset. Called once, by PciDevice::AddCapability.
  virtual absl::StatusOr<uint32_t> AddTo(PciConfigSpace& config) = 0;
  // Bytes from the capability's offset the handler covers.
  virtual uint32_t size() const = 0;
  // Before a guest read of the capability: refresh dynamic bits in `config`.
  virtual void BeforeRead(PciConfigSpace& config) { (void)config; }
  // After a guest write (masks applied) overlapping the capability.
  virtual void AfterWrite(PciConfigSpace& config, uint32_t offset, uint32_t size) = 0;
};

// Where a function's INTx pin goes: a level-triggered GSI.
struct PciIntxRoute {
  InterruptController* irq = nullptr;
  uint32_t gsi = 0;
};

class PciDevice {
 public:
  static constexpr int kNumBars = 6;
  // The expansion ROM BAR (config offset 0x30) as BAR index 6: a 32-bit
  // memory BAR that decodes only while its enable bit and memory decoding
  // are both on. Loops over every BAR go to kNumBarIndices.
  static constexpr int kRomBar = 6;
  static constexpr int kNumBarIndices = 7;

  PciDevice(std::string name, const PciIds& ids);
  virtual ~PciDevice() = default;
  PciDevice(const PciDevice&) = delete;
  PciDevice& operator=(const PciDevice&) = delete;

  // For messages: "virtio-rng-pci id=rng0".
  const std::string& name() const { return name_; }

  // Guest config access; the caller has checked PciConfigSpace::ValidAccess.
  virtual uint32_t ConfigRead(uint32_t offset, uint32_t size) ABSL_LOCKS_EXCLUDED(mu_);
  virtual void ConfigWrite(uint32_t offset, uint32_t size, uint32_t value)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- Set-up (device construction, then the bus acting as firmware) ---
  // Declares BAR `index` (a 64-bit BAR also takes index+1; kRomBar takes a
  // kMem32 spec, never prefetchable). Set-up only: before the device is
  // attached or shared between threads.
  absl::Status DeclareBar(int index, PciBarSpec spec) ABSL_LOCKS_EXCLUDED(mu_);
  // Null when BAR `index` is unused or the upper half of a 64-bit BAR.
  const PciBarSpec* bar_spec(int index) const;
  // The address in BAR `index`'s register(s), as the guest last left it
  // (for the ROM: without the enable bit).
  uint64_t BarAddress(int index) const ABSL_LOCKS_EXCLUDED(mu_);
  void SetBarAddress(int index, uint64_t address) ABSL_LOCKS_EXCLUDED(mu_);
  // Sets the command register's I/O and memory decode bits.
  void EnableDecoding(bool io, bool memory) ABSL_LOCKS_EXCLUDED(mu_);
  void SetMultifunction(bool on) ABSL_LOCKS_EXCLUDED(mu_);
  // Joins a bus: decoded BARs are mapped through `decoder` from now on.
  // Virtual so passthrough devices can wire their INTx to the route; an
  // error means the function cannot work on this bus (the caller detaches
  // it and fails).
  virtual absl::Status Attach(PciBarDecoder* decoder, PciIntxRoute intx) ABSL_LOCKS_EXCLUDED(mu_);
  // Leaves it: every mapped BAR is unmapped, INTx lowered.
  void Detach() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether BAR `index` currently decodes (mapped through the decoder). A
  // ROM BAR does not until the guest sets its enable bit.
  bool BarMapped(int index) const ABSL_LOCKS_EXCLUDED(mu_);
  uint8_t interrupt_pin() const { return interrupt_pin_; }
  PciIds ids() const { return ids_; }

  // Drives the INTx pin (no-op without a pin or while the guest has set
  // INTx-disable). Thread-safe; reflected in the status register.
  void SetIntx(bool asserted) ABSL_LOCKS_EXCLUDED(intx_mu_);

 protected:
  // --- Set-up: a subclass builds its capability list with these ---
  // Lets `handler` lay out its capability (PciCapabilityHandler::AddTo) and
  // registers it for guest accesses to it; returns the capability's offset.
  // `handler` must outlive the device's config accesses.
  absl::StatusOr<uint32_t> AddCapability(PciCapabilityHandler* handler) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends a read-only capability: `id`, then `body` (the bytes after the
  // ID and next-pointer bytes, e.g. copied from a real device).
  absl::StatusOr<uint32_t> AddReadOnlyCapability(uint8_t id, std::span<const uint8_t> body)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Registers `handler` for guest accesses overlapping [offset, offset+size)
  // of a capability the subclass laid out itself.
  void AddCapabilityHandler(uint32_t offset, uint32_t size, PciCapabilityHandler* handler)
      ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  PciConfigSpace config_ ABSL_GUARDED_BY(mu_);

 private:
  struct BarState {
    bool mapped = false;
    uint64_t mapped_at = 0;
  };
  struct CapabilityHook {
    uint32_t offset;
    uint32_t size;
    PciCapabilityHandler* handler;
  };

  uint64_t BarAddressLocked(int index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Maps/unmaps/moves every BAR so decoding matches the command register
  // and the BAR registers.
  void UpdateDecoding() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(intx_mu_);

  const std::string name_;
  const PciIds ids_;
  const uint8_t interrupt_pin_;
  // Written only by DeclareBar during set-up, before the device is shared.
  std::array<std::optional<PciBarSpec>, kNumBarIndices> specs_;
  std::array<bool, kNumBarIndices> upper_half_{};  // the high dword of the BAR below
  std::array<BarState, kNumBarIndices> bars_ ABSL_GUARDED_BY(mu_);
  std::vector<CapabilityHook> cap_hooks_ ABSL_GUARDED_BY(mu_);
  PciBarDecoder* decoder_ ABSL_GUARDED_BY(mu_) = nullptr;

  absl::Mutex intx_mu_ ABSL_ACQUIRED_AFTER(mu_);
  PciIntxRoute intx_ ABSL_GUARDED_BY(intx_mu_);
  bool intx_level_ ABSL_GUARDED_BY(intx_mu_) = false;
  bool intx_disabled_ ABSL_GUARDED_BY(intx_mu_) = false;
  bool intx_driven_ ABSL_GUARDED_BY(intx_mu_) = false;  // what the line was last set to
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_DEVICE_H_
