#include "backend/base/large_buffer.h"

#include <sys/mman.h>

#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/synchronization/mutex.h"

namespace cairn {
namespace {

// Sizes are rounded up to whole MiB, so the shards of full blobs (header
// and padding included) share one size.
constexpr size_t kGranule = 1u << 20;

struct PooledBuffer {
  char* data;
  size_t capacity;
  int idle_trims;  // trims seen while waiting in the pool
};

absl::Mutex pool_mu(absl::kConstInit);

struct PoolState {
  std::vector<PooledBuffer> free;
  size_t bytes = 0;
};

PoolState& State() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu) {
  static PoolState* state = new PoolState;  // lives as long as the process
  return *state;
}

void Unmap(char* data, size_t capacity) { munmap(data, capacity); }

void GiveBack(char* data, size_t capacity) {
  {
    absl::MutexLock lock(&pool_mu);
    PoolState& pool = State();
    if (pool.bytes + capacity <= kMaxPooledBytes) {
      pool.free.push_back({data, capacity, 0});
      pool.bytes += capacity;
      return;
    }
  }
  Unmap(data, capacity);
}

}  // namespace

LargeBuffer::~LargeBuffer() {
  if (data_ != nullptr) GiveBack(data_, capacity_);
}

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) GiveBack(data_, capacity_);
    data_ = std::exchange(other.data_, nullptr);
    capacity_ = std::exchange(other.capacity_, 0);
  }
  return *this;
}

LargeBuffer AcquireLargeBuffer(size_t bytes) {
  const size_t capacity = (std::max<size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule;
  {
    absl::MutexLock lock(&pool_mu);
    PoolState& pool = State();
    // The smallest that fits: a big buffer is not spent on a small write.
    size_t best = pool.free.size();
    for (size_t i = 0; i < pool.free.size(); ++i) {
      if (pool.free[i].capacity >= capacity &&
          (best == pool.free.size() || pool.free[i].capacity < pool.free[best].capacity)) {
        best = i;
      }
    }
    if (best != pool.free.size()) {
      PooledBuffer found = pool.free[best];
      pool.free[best] = pool.free.back();
      pool.free.pop_back();
      pool.bytes -= found.capacity;
      return LargeBuffer(found.data, found.capacity);
    }
  }
  void* data = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) return LargeBuffer();
  return LargeBuffer(static_cast<char*>(data), capacity);
}

void TrimLargeBufferPool() {
  std::vector<PooledBuffer> idle;
  {
    absl::MutexLock lock(&pool_mu);
    PoolState& pool = State();
    std::vector<PooledBuffer> kept;
    for (PooledBuffer& buffer : pool.free) {
      if (buffer.idle_trims++ >= 1) {
        idle.push_back(buffer);
        pool.bytes -= buffer.capacity;
      } else {
        kept.push_back(buffer);
      }
    }
    pool.free.swap(kept);
  }
  for (const PooledBuffer& buffer : idle) Unmap(buffer.data, buffer.capacity);
}

uint64_t LargeBufferPoolBytes() {
  absl::MutexLock lock(&pool_mu);
  return State().bytes;
}

}  // namespace cairn
