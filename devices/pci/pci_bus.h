// PCI bus 0: functions addressed by slot and function, configuration
// accesses routed to them, BARs placed at boot (the firmware's job), INTx
// pins routed to IOAPIC pins.
//
// INTx routing (what the ACPI _PRT tells the guest): the pin of slot S,
// INTA..INTD = 1..4, drives GSI 16 + (S + pin - 1) mod 8, i.e. IOAPIC pins
// 16-23, level-triggered (PCI IRQs are shared and level-sensitive).
#ifndef PASSAGE_DEVICES_PCI_PCI_BUS_H_
#define PASSAGE_DEVICES_PCI_PCI_BUS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "devices/irq.h"
#include "devices/pci/pci_bar_allocator.h"
#include "devices/pci/pci_device.h"

namespace passage {

struct PciAddress {
  uint8_t bus = 0;
  uint8_t slot = 0;      // 0..31
  uint8_t function = 0;  // 0..7
  uint8_t devfn() const { return static_cast<uint8_t>(slot << 3 | function); }
  std::string ToString() const;  // "00:03.0"
  bool operator==(const PciAddress&) const = default;
};

class PciBus {
 public:
  static constexpr int kSlots = 32;
  static constexpr int kFunctions = 8;
  static constexpr uint32_t kFirstIntxGsi = 16;
  static constexpr uint32_t kIntxGsiCount = 8;

  // `irq` may be null (no INTx delivery).
  PciBus(PciBarAllocator& allocator, PciBarDecoder& decoder, InterruptController* irq)
      : allocator_(allocator), decoder_(decoder), irq_(irq) {}
  ~PciBus();

  // Places the device's BARs, enables their decoding, routes its INTx pin
  // and puts it at `address` (bus 0 only). Errors name the device and BDF;
  // on an error nothing of it stays (BAR ranges freed, device detached).
  // BARs avoid the ranges the functions already there decode now (the
  // guest may have moved them since they were placed).
  absl::Status Add(const PciAddress& address, std::shared_ptr<PciDevice> device)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Hot-unplug: takes every function out of `slot` (configuration accesses
  // miss them from now on), frees the BAR ranges Add placed, and detaches
  // each (BARs unmapped, INTx lowered). Returns them; a vCPU may still hold
  // one for an access in flight.
  std::vector<std::shared_ptr<PciDevice>> Remove(uint8_t slot) ABSL_LOCKS_EXCLUDED(mu_);
  // The lowest slot >= 1 with no function in it.
  std::optional<PciAddress> FreeSlot() const ABSL_LOCKS_EXCLUDED(mu_);

  // Configuration access by bus/devfn: absent functions read all-ones,
  // malformed accesses are dropped.
  uint32_t ConfigRead(uint8_t bus, uint8_t devfn, uint32_t offset, uint32_t size) const
      ABSL_LOCKS_EXCLUDED(mu_);
  void ConfigWrite(uint8_t bus, uint8_t devfn, uint32_t offset, uint32_t size, uint32_t value)
      ABSL_LOCKS_EXCLUDED(mu_);

  struct Entry {
    PciAddress address;
    std::shared_ptr<PciDevice> device;
    uint32_t intx_gsi = 0;  // 0: no pin
  };
  std::vector<Entry> Devices() const ABSL_LOCKS_EXCLUDED(mu_);

  static uint32_t IntxGsi(uint8_t slot, uint8_t pin);

 private:
  std::shared_ptr<PciDevice> Find(uint8_t bus, uint8_t devfn) const ABSL_LOCKS_EXCLUDED(mu_);

  PciBarAllocator& allocator_ ABSL_GUARDED_BY(mu_);
  PciBarDecoder& decoder_;
  InterruptController* const irq_;
  mutable absl::Mutex mu_;
  std::array<std::shared_ptr<PciDevice>, kSlots * kFunctions> functions_ ABSL_GUARDED_BY(mu_);
  // The addresses Add took from the allocator, per function (freed by Remove).
  std::array<std::vector<uint64_t>, kSlots * kFunctions> placed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace passage

#endif  // PASSAGE_DEVICES_PCI_PCI_BUS_H_
