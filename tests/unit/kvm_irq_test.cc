#include "vmm/kvm_irq.h"

#include <gtest/gtest.h>

#include <set>

namespace passage {
namespace {

// KVM_SET_GSI_ROUTING replaces the whole table, so the table passage sends
// must keep what KVM_CREATE_IRQCHIP installed: GSI 0-15 on a PIC pin and the
// same IOAPIC pin, GSI 16-23 on the IOAPIC only.
TEST(KvmIrqRouting, DefaultRoutesMatchKvmCreateIrqchip) {
  const auto routes = DefaultIrqRoutes();
  EXPECT_EQ(routes.size(), 24u + 16u);
  std::set<std::pair<uint32_t, uint32_t>> ioapic, pic;
  for (const auto& e : routes) {
    ASSERT_EQ(e.type, static_cast<uint32_t>(KVM_IRQ_ROUTING_IRQCHIP));
    if (e.u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
      EXPECT_EQ(e.u.irqchip.pin, e.gsi);
      ioapic.insert({e.gsi, e.u.irqchip.pin});
    } else {
      ASSERT_LT(e.gsi, 16u);
      EXPECT_EQ(e.u.irqchip.irqchip, e.gsi < 8 ? uint32_t{KVM_IRQCHIP_PIC_MASTER} : uint32_t{KVM_IRQCHIP_PIC_SLAVE});
      EXPECT_EQ(e.u.irqchip.pin, e.gsi % 8);
      pic.insert({e.gsi, e.u.irqchip.pin});
    }
  }
  EXPECT_EQ(ioapic.size(), 24u);
  EXPECT_EQ(pic.size(), 16u);
}

}  // namespace
}  // namespace passage
