// Hands the memory malloc holds free back to the system, every interval.
//
// glibc keeps freed memory inside its arenas (the daemon allows 4) and
// gives back only what lies at the top of one; blobs held by the read cache
// and dirty runs sit anywhere in them, so the memory freed around them stays
// resident. Under 8 fio writers with scrubs and a metadata loop that was
// 200-270 MiB free but resident, never returned when the mount went idle.
// malloc_trim releases the free pages wherever they are; reusing them costs
// a page fault each, so the interval bounds both what can pile up and what
// the trimming costs.
//
// Promises: `trim` runs about once per interval on one thread of its own,
// from construction until destruction, which returns promptly.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cairn {

struct MemoryTrimmerOptions {
  absl::Duration interval = absl::Seconds(1);
  // What a round does; unless a test replaces it, the large buffers pooled
  // for a whole interval are unmapped and then malloc_trim(0).
  std::function<void()> trim;
};

class MemoryTrimmer {
 public:
  explicit MemoryTrimmer(MemoryTrimmerOptions options);
  ~MemoryTrimmer();

  MemoryTrimmer(const MemoryTrimmer&) = delete;
  MemoryTrimmer& operator=(const MemoryTrimmer&) = delete;

  uint64_t rounds() const { return rounds_.load(std::memory_order_relaxed); }

 private:
  const MemoryTrimmerOptions options_;
  std::atomic<uint64_t> rounds_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cairn
