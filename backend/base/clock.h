// The wall clock, behind a seam so tests can control time.
#pragma once

#include <time.h>

#include "backend/base/types.h"

namespace cairn {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Timespec Now() = 0;
};

// CLOCK_REALTIME; the process-wide default.
class SystemClock final : public Clock {
 public:
  Timespec Now() override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return Timespec{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
  }
  static SystemClock* Default() {
    static SystemClock clock;
    return &clock;
  }
};

}  // namespace cairn
