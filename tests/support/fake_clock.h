// A Clock that stands still until a test moves it. SleepFor moves it on at
// once, so code that waits (a backup waiting for the replicator, a paced
// scrub) runs without real delay. Thread-safe: services may read it while
// the test moves it.
#pragma once

#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend/base/clock.h"

namespace cairn {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(Timespec start = Timespec{1700000000, 0}) { Set(start); }

  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  int64_t MonotonicNanos() override {
    absl::MutexLock lock(&mu_);
    return absl::ToInt64Nanoseconds(elapsed_);
  }
  void SleepFor(absl::Duration duration) override { Advance(duration); }

  void Advance(absl::Duration duration) {
    absl::MutexLock lock(&mu_);
    now_ += duration;
    elapsed_ += duration;
  }
  // Wall time jumps to `time` (it may go back, as a real clock may); the
  // monotonic clock is not affected.
  void Set(Timespec time) {
    absl::MutexLock lock(&mu_);
    now_ = absl::FromUnixSeconds(time.sec) + absl::Nanoseconds(time.nsec);
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Duration elapsed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn
