// The one seam a volume reaches the world through: its files (Env), its
// clock, and the object stores of its buckets. The daemon and the commands
// pass the real ones; tests pass an in-memory file system that can lose
// power, a clock they move, and in-memory buckets that fail on cue.
#pragma once

#include "backend/base/clock.h"
#include "backend/base/env.h"
#include "backend/s3/object_store.h"

namespace cairn {

struct Io {
  Env* env = Env::Default();
  Clock* clock = Clock::Default();
  s3::ObjectStoreFactory* remote = s3::ObjectStoreFactory::Default();
};

}  // namespace cairn
