// One memslot numbering for guest RAM and device memory.
#include "vmm/kvm_memslots.h"

#include <gtest/gtest.h>

#include <map>

namespace passage {
namespace {

class KvmMemslotsTest : public ::testing::Test {
 protected:
  KvmMemslots::SetRegion Recorder() {
    return [this](const kvm_userspace_memory_region& r) {
      if (fail_next_) {
        fail_next_ = false;
        errno = EINVAL;
        return -1;
      }
      if (r.memory_size == 0) {
        EXPECT_EQ(set_.erase(r.slot), 1u) << "deleted slot " << r.slot << " was not set";
      } else {
        EXPECT_EQ(set_.count(r.slot), 0u) << "slot " << r.slot << " set twice";
        set_[r.slot] = r.guest_phys_addr;
      }
      return 0;
    };
  }
  std::map<uint32_t, uint64_t> set_;  // what KVM would hold: slot -> gpa
  bool fail_next_ = false;
  uint8_t host_[4096] = {};
};

TEST_F(KvmMemslotsTest, RamAndDeviceMemoryShareOneNumbering) {
  {
    KvmMemslots slots(4, Recorder());
    ASSERT_TRUE(slots.OnRegionAdded({0, 1 << 20, host_, -1, 0}).ok());
    auto bar = slots.Map(0xc0000000, 4096, host_);
    ASSERT_TRUE(bar.ok()) << bar.status();
    EXPECT_EQ(*bar, 1u);
    ASSERT_TRUE(slots.OnRegionAdded({1ull << 32, 1 << 20, host_, -1, 0}).ok());
    EXPECT_EQ(set_, (std::map<uint32_t, uint64_t>{{0, 0}, {1, 0xc0000000}, {2, 1ull << 32}}));
    slots.Unmap(*bar);
    auto again = slots.Map(0xc0001000, 4096, host_);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, 1u) << "a freed slot is reused";
    auto last = slots.Map(0xc0002000, 4096, host_);
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(*last, 3u);
    auto full = slots.Map(0xc0003000, 4096, host_);
    EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(full.status().message().find("device memory at 0xc0003000"), absl::string_view::npos);
    slots.OnRegionRemoved({1ull << 32, 1 << 20, host_, -1, 0});
    EXPECT_EQ(set_.count(2), 0u);
  }
  EXPECT_TRUE(set_.empty()) << "every slot is deleted with the allocator";
}

TEST_F(KvmMemslotsTest, AFailedSetLeavesTheSlotFree) {
  KvmMemslots slots(2, Recorder());
  fail_next_ = true;
  auto bad = slots.Map(0xc0000000, 4096, host_);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("KVM_SET_USER_MEMORY_REGION for device memory at 0xc0000000"),
            absl::string_view::npos) << bad.status();
  auto ok = slots.Map(0xc0000000, 4096, host_);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 0u);
}

}  // namespace
}  // namespace passage
