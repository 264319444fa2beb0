// The small platform devices: ACPI sleep/reset registers, the i8042 reset
// line, the CMOS RTC.
#include <gtest/gtest.h>

#include <vector>

#include "devices/acpi/acpi_pm_device.h"
#include "devices/cmos_rtc.h"
#include "devices/i8042.h"
#include "memory/guest_memory.h"
#include "vmm/firmware.h"

namespace passage {
namespace {

uint8_t ReadByte(IoHandler& h, uint64_t offset) {
  uint8_t v = 0xaa;
  h.Read(offset, {&v, 1});
  return v;
}

void WriteByte(IoHandler& h, uint64_t offset, uint8_t v) { h.Write(offset, {&v, 1}); }

TEST(AcpiPmDevice, S5PowersOffOtherSleepStatesDoNot) {
  int off = 0, reset = 0;
  AcpiPmDevice pm([&] { ++off; }, [&] { ++reset; });
  WriteByte(pm, AcpiPmDevice::kSleepControl, 5 << 2);  // S5 type without SLP_EN
  WriteByte(pm, AcpiPmDevice::kSleepControl, (3 << 2) | 0x20);  // S3: not offered
  WriteByte(pm, AcpiPmDevice::kSleepStatus, 0x80);  // WAK_STS clear: ignored
  EXPECT_EQ(off, 0);
  WriteByte(pm, AcpiPmDevice::kSleepControl, (5 << 2) | 0x20);  // what Linux writes
  EXPECT_EQ(off, 1);
  EXPECT_EQ(reset, 0);
  EXPECT_EQ(ReadByte(pm, AcpiPmDevice::kSleepStatus), 0);
}

TEST(AcpiPmDevice, ResetRegisterNeedsTheResetValue) {
  int off = 0, reset = 0;
  AcpiPmDevice pm([&] { ++off; }, [&] { ++reset; });
  WriteByte(pm, AcpiPmDevice::kReset, 0x06);
  EXPECT_EQ(reset, 0);
  WriteByte(pm, AcpiPmDevice::kReset, AcpiPmDevice::kResetValue);
  EXPECT_EQ(reset, 1);
  // A 4-byte write over the block hits each register with its own byte.
  const std::vector<uint8_t> word = {0x34, 0x00, AcpiPmDevice::kResetValue, 0x00};
  pm.Write(0, word);
  EXPECT_EQ(off, 1);
  EXPECT_EQ(reset, 2);
}

TEST(I8042, PulseResetLineEndsTheVm) {
  int reset = 0;
  I8042 kbc([&] { ++reset; });
  EXPECT_EQ(ReadByte(kbc, I8042::kCommand), 0);  // input buffer empty: no spinning
  WriteByte(kbc, I8042::kCommand, 0xd1);
  WriteByte(kbc, I8042::kData, 0xfe);             // 0xFE on the data port is not a command
  EXPECT_EQ(reset, 0);
  WriteByte(kbc, I8042::kCommand, 0xfe);
  EXPECT_EQ(reset, 1);
  EXPECT_EQ(ReadByte(kbc, 1), 0xff);  // 0x61 is not ours
}

TEST(CmosRtc, ReportsTheClockInBcdAndBinary) {
  // 2026-11-30 13:45:56 UTC, a Monday.
  CmosRtc rtc([] { return std::time_t{1796046356}; });
  auto reg = [&](uint8_t r) {
    WriteByte(rtc, 0, r | 0x80);  // bit 7 (NMI mask) must be ignored
    return ReadByte(rtc, 1);
  };
  EXPECT_EQ(reg(CmosRtc::kSeconds), 0x56);
  EXPECT_EQ(reg(CmosRtc::kMinutes), 0x45);
  EXPECT_EQ(reg(CmosRtc::kHours), 0x13);
  EXPECT_EQ(reg(CmosRtc::kDay), 0x30);
  EXPECT_EQ(reg(CmosRtc::kMonth), 0x11);
  EXPECT_EQ(reg(CmosRtc::kYear), 0x26);
  EXPECT_EQ(reg(CmosRtc::kCentury), 0x20);
  EXPECT_EQ(reg(CmosRtc::kWeekday), 2);
  EXPECT_EQ(reg(CmosRtc::kRegA) & 0x80, 0);  // never an update in progress
  EXPECT_EQ(reg(CmosRtc::kRegD), 0x80);
  // Binary mode.
  WriteByte(rtc, 0, CmosRtc::kRegB);
  WriteByte(rtc, 1, CmosRtc::kRegBBinary);
  EXPECT_EQ(reg(CmosRtc::kRegB), CmosRtc::kRegBBinary | CmosRtc::kRegB24Hour);  // 24h forced
  EXPECT_EQ(reg(CmosRtc::kMinutes), 45);
  EXPECT_EQ(reg(CmosRtc::kYear), 26);
  // Setting the clock is ignored; NVRAM keeps what is written.
  WriteByte(rtc, 0, CmosRtc::kMinutes);
  WriteByte(rtc, 1, 7);
  EXPECT_EQ(reg(CmosRtc::kMinutes), 45);
  WriteByte(rtc, 0, 0x40);
  WriteByte(rtc, 1, 0x5a);
  EXPECT_EQ(reg(0x40), 0x5a);
  EXPECT_EQ(ReadByte(rtc, 0), 0xff);  // the index port is write-only
}

TEST(ResetVector, StubPulsesTheI8042ResetLine) {
  auto mem = GuestMemory::Create({16 * kMiB, false});
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(WriteResetVectorStub(**mem).ok());
  const std::vector<uint8_t> stub = ResetVectorStub();
  EXPECT_LE(kResetVectorAddr + stub.size(), 1 * kMiB);  // F000:FFF0 .. below 1 MiB
  std::vector<uint8_t> back(stub.size());
  ASSERT_TRUE((*mem)->Read(kResetVectorAddr, back).ok());
  EXPECT_EQ(back, stub);
  // mov al, I8042::kCmdPulseReset; out I8042::kBase + I8042::kCommand, al
  ASSERT_GE(stub.size(), 4u);
  EXPECT_EQ(stub[0], 0xb0);
  EXPECT_EQ(stub[1], I8042::kCmdPulseReset);
  EXPECT_EQ(stub[2], 0xe6);
  EXPECT_EQ(stub[3], I8042::kBase + I8042::kCommand);
}

}  // namespace
}  // namespace passage
