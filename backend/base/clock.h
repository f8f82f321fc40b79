// Time, behind a seam: every reading of the clock and every timed wait of
// cairn's own goes through a Clock, so tests run time forward at will
// (tests/support/fake_clock.h) and age-based decisions (flush after
// dirty_flush_seconds, free after gc_grace_seconds, move out after
// cold_after_seconds, a backup every interval) can be tested without
// waiting.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "backend/base/types.h"

namespace cairn {

class Clock {
 public:
  virtual ~Clock() = default;
  // The system's clock (CLOCK_REALTIME, CLOCK_MONOTONIC, real sleeps).
  static Clock* Default();

  // Wall-clock time: for timestamps users see and ages stored on disk.
  virtual absl::Time Now() = 0;
  // For measuring durations: never goes back.
  virtual int64_t MonotonicNanos() = 0;
  // Waits `duration` (a fake clock moves its time on instead).
  virtual void SleepFor(absl::Duration duration) = 0;

  Timespec NowTimespec() {
    const absl::Time now = Now();
    const int64_t nanos = absl::ToUnixNanos(now);
    const int64_t sec = nanos >= 0 ? nanos / 1000000000 : -((-nanos + 999999999) / 1000000000);
    return Timespec{sec, static_cast<uint32_t>(nanos - sec * 1000000000)};
  }
  int64_t NowSeconds() { return absl::ToUnixSeconds(Now()); }
  double MonotonicSeconds() { return static_cast<double>(MonotonicNanos()) / 1e9; }
};

}  // namespace cairn
