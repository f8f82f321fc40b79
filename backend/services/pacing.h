// Bounding a background pass's read rate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "absl/time/time.h"
#include "backend/base/clock.h"

namespace cairn {

// Sleeps until `bytes` read since `start` (the clock's monotonic seconds)
// are no more than `bytes_per_second` allows (0: no bound). Sleeps in
// slices so a stop request is seen promptly, and for at least a
// millisecond at a time, so a clock of coarse ticks cannot stall the loop.
inline void PaceReads(Clock* clock, double start, uint64_t bytes, uint64_t bytes_per_second,
                      const std::function<bool()>& should_stop) {
  if (bytes_per_second == 0) return;
  const double due = start + static_cast<double>(bytes) / static_cast<double>(bytes_per_second);
  for (double ahead = due - clock->MonotonicSeconds(); ahead > 0 && !(should_stop && should_stop());
       ahead = due - clock->MonotonicSeconds()) {
    clock->SleepFor(absl::Seconds(std::clamp(ahead, 0.001, 0.2)));
  }
}

}  // namespace cairn
