#include "daemon/memory_trimmer.h"

#include <malloc.h>

#include <utility>

#include "backend/base/large_buffer.h"

namespace cairn {

MemoryTrimmer::MemoryTrimmer(MemoryTrimmerOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.interval)) {
      if (options_.trim) {
        options_.trim();
      } else {
        TrimLargeBufferPool();
        malloc_trim(0);
      }
      rounds_.fetch_add(1, std::memory_order_relaxed);
    }
  });
}

MemoryTrimmer::~MemoryTrimmer() {
  stop_.Notify();
  thread_.join();
}

}  // namespace cairn
