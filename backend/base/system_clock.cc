// Clock::Default(): the system's clocks.
#include <time.h>

#include "absl/time/clock.h"
#include "backend/base/clock.h"

namespace cairn {
namespace {

class SystemClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  int64_t MonotonicNanos() override {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  void SleepFor(absl::Duration duration) override { absl::SleepFor(duration); }
};

}  // namespace

Clock* Clock::Default() {
  static SystemClock clock;
  return &clock;
}

}  // namespace cairn
