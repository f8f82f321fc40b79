// Page-aligned buffers of blob size, for direct I/O.
//
// A shard write copies its header and payload into one aligned buffer of up
// to 4 MiB and hands it to O_DIRECT. From malloc, such buffers either come
// from an arena, where their short lives between long-lived cache entries
// leave holes that stay resident (most of the daemon's memory beyond its
// caches under 8 fio writers), or, above the mmap threshold, cost a fresh
// mapping with a page fault per 4 KiB and a TLB shootdown per free. These
// are mapped on their own and kept in a small pool for the next write.
//
// Promises: thread-safe; a buffer is page-aligned, at least the size asked
// for and not zeroed; the pool holds at most kMaxPooledBytes, and
// TrimLargeBufferPool unmaps what sat unused since its previous call.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn {

class LargeBuffer {
 public:
  LargeBuffer() = default;
  ~LargeBuffer();
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;

  char* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  explicit operator bool() const { return data_ != nullptr; }

 private:
  friend LargeBuffer AcquireLargeBuffer(size_t bytes);
  LargeBuffer(char* data, size_t capacity) : data_(data), capacity_(capacity) {}

  char* data_ = nullptr;
  size_t capacity_ = 0;
};

inline constexpr size_t kMaxPooledBytes = 16u << 20;

// An empty buffer when the system has no memory for it.
LargeBuffer AcquireLargeBuffer(size_t bytes);

// Unmaps the pooled buffers nobody took since the previous call, so an idle
// daemon holds none of them.
void TrimLargeBufferPool();

// What the pool holds now, for tests and status.
uint64_t LargeBufferPoolBytes();

}  // namespace cairn
