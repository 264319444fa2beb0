#include "devices/uart_8250.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace passage {
namespace {

class UartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(pipe2(pipe_, O_NONBLOCK), 0);
    uart_ = std::make_unique<Uart8250>(pipe_[1], [this](bool level) { irq_.push_back(level); });
  }
  void TearDown() override {
    close(pipe_[0]);
    close(pipe_[1]);
  }
  uint8_t In(uint64_t reg) {
    uint8_t v = 0;
    uart_->Read(reg, std::span<uint8_t>(&v, 1));
    return v;
  }
  void Out(uint64_t reg, uint8_t v) { uart_->Write(reg, std::span<const uint8_t>(&v, 1)); }
  std::string Drain() {
    char buf[256];
    ssize_t n = read(pipe_[0], buf, sizeof(buf));
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

  int pipe_[2];
  std::unique_ptr<Uart8250> uart_;
  std::vector<bool> irq_;
};

TEST_F(UartTest, TransmitsBytes) {
  for (char c : std::string("hi\n")) Out(0, static_cast<uint8_t>(c));
  EXPECT_EQ(Drain(), "hi\n");
  EXPECT_EQ(In(5) & 0x60, 0x60);  // THRE | TEMT
}

TEST_F(UartTest, DivisorLatchDoesNotTransmit) {
  Out(3, 0x80);  // DLAB
  Out(0, 0x01);
  Out(1, 0x00);
  EXPECT_EQ(In(0), 0x01);
  Out(3, 0x03);
  Out(0, 'x');
  EXPECT_EQ(Drain(), "x");
}

TEST_F(UartTest, LoopbackLooksLikeA16550ToLinuxProbe) {
  Out(4, 0x10 | 0x0a);  // LOOP | RTS | OUT2
  EXPECT_EQ(In(6) & 0xf0, 0x90);
  Out(4, 0x10 | 0x1f);
  EXPECT_EQ(In(6) & 0xf0, 0xf0);
  Out(2, 0x01);  // enable FIFO
  EXPECT_EQ(In(2) & 0xc0, 0xc0);
  Out(7, 0x5a);
  EXPECT_EQ(In(7), 0x5a);
}

TEST_F(UartTest, ThreInterruptRaisedAndAcknowledgedByIirRead) {
  Out(4, 0x08);  // OUT2 gates the IRQ
  Out(1, 0x02);  // THRI
  ASSERT_FALSE(irq_.empty());
  EXPECT_TRUE(irq_.back());
  EXPECT_EQ(In(2) & 0x0f, 0x02);  // THRE pending; reading acknowledges
  EXPECT_FALSE(irq_.back());
  EXPECT_EQ(In(2) & 0x0f, 0x01);  // nothing pending now
  Out(0, 'a');
  EXPECT_TRUE(irq_.back());
}

TEST_F(UartTest, ReceiveRaisesDataReadyAndInterrupt) {
  Out(4, 0x08);
  Out(1, 0x01);  // RDI
  EXPECT_EQ(In(5) & 0x01, 0);
  const uint8_t in[2] = {'o', 'k'};
  uart_->PushInput(in);
  EXPECT_TRUE(irq_.back());
  EXPECT_EQ(In(5) & 0x01, 1);
  EXPECT_EQ(In(2) & 0x0f, 0x04);
  EXPECT_EQ(In(0), 'o');
  EXPECT_EQ(In(0), 'k');
  EXPECT_EQ(In(5) & 0x01, 0);
  EXPECT_FALSE(irq_.back());
}

TEST_F(UartTest, OutOfRangeOffsetsAreHarmless) {
  uint8_t v = 0;
  uart_->Read(8, std::span<uint8_t>(&v, 1));
  EXPECT_EQ(v, 0xff);
  Out(200, 1);
  EXPECT_EQ(Drain().size(), 0u);
}

}  // namespace
}  // namespace passage
