// QMP stop/cont's gate (vmm/vcpu.h VcpuPause), with threads standing in for
// vCPU loops: no KVM needed.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "vmm/vcpu.h"

namespace passage {
namespace {

// A vCPU loop's shape: park while paused, else "run" (count iterations).
class FakeVcpus {
 public:
  FakeVcpus(VcpuPause& pause, int n) : pause_(pause) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this] {
        while (!stop_.load()) {
          if (pause_.ParkIfPaused()) continue;
          runs_.fetch_add(1);
          absl::SleepFor(absl::Microseconds(100));
        }
        pause_.Ended();
      });
    }
  }
  ~FakeVcpus() { Stop(); }
  void Stop() {
    stop_ = true;
    pause_.Close();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  long runs() const { return runs_.load(); }

 private:
  VcpuPause& pause_;
  std::atomic<bool> stop_{false};
  std::atomic<long> runs_{0};
  std::vector<std::thread> threads_;
};

TEST(VcpuPause, StopParksEveryVcpuAndContReleasesThem) {
  VcpuPause pause;
  FakeVcpus vcpus(pause, 3);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(pause.paused());
  pause.Pause();
  ASSERT_TRUE(pause.AwaitParked(3, absl::Seconds(5)));
  EXPECT_TRUE(pause.paused());
  const long parked_at = vcpus.runs();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(vcpus.runs(), parked_at) << "a parked vCPU ran";
  // A poke (a state dump) wakes them for a moment; they park again.
  pause.Poke();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(vcpus.runs(), parked_at);
  EXPECT_TRUE(pause.AwaitParked(3, absl::Seconds(5)));
  pause.Resume();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_GT(vcpus.runs(), parked_at);
}

TEST(VcpuPause, AwaitParkedTimesOutWhenAVcpuIsMissing) {
  VcpuPause pause;
  FakeVcpus vcpus(pause, 2);
  pause.Pause();
  EXPECT_TRUE(pause.AwaitParked(2, absl::Seconds(5)));
  EXPECT_FALSE(pause.AwaitParked(3, absl::Milliseconds(50)));
}

TEST(VcpuPause, CloseReleasesParkedVcpusForGood) {
  VcpuPause pause;
  FakeVcpus vcpus(pause, 2);
  pause.Pause();
  ASSERT_TRUE(pause.AwaitParked(2, absl::Seconds(5)));
  vcpus.Stop();  // joins: the threads left their park
  EXPECT_FALSE(pause.paused());
  pause.Pause();  // no effect once closed
  EXPECT_FALSE(pause.paused());
  EXPECT_TRUE(pause.AwaitParked(2, absl::Milliseconds(1)));  // ended count
}

}  // namespace
}  // namespace passage
