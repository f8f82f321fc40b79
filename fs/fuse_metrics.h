// Counters of the FUSE requests a mount serves, updated on the request path:
// a fixed array indexed by operation, relaxed atomics, no locks and no
// allocation, so counting costs a few nanoseconds per request.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>


namespace cairn {

// The FUSE operations cairn serves (fuse_lowlevel_ops), as metric labels.
enum class FuseOp {
  kLookup,
  kForget,
  kBatchForget,
  kGetattr,
  kSetattr,
  kReadlink,
  kMknod,
  kMkdir,
  kSymlink,
  kUnlink,
  kRmdir,
  kRename,
  kLink,
  kOpen,
  kCreate,
  kRead,
  kWrite,
  kFlush,
  kRelease,
  kFsync,
  kOpendir,
  kReaddir,
  kReaddirplus,
  kReleasedir,
  kFsyncdir,
  kStatfs,
  kSetxattr,
  kGetxattr,
  kListxattr,
  kRemovexattr,
  kFallocate,
  kLseek,
  kGetlk,
  kSetlk,
  kFlock,
  kCount,  // not an operation: the number of them
};
inline constexpr size_t kFuseOpCount = static_cast<size_t>(FuseOp::kCount);

// The op="..." label: libfuse's name of the operation ("read", "batch_forget").
const char* FuseOpName(FuseOp op);

// Upper bounds of the request latency buckets, in seconds (+Inf follows):
// from a cached getattr (~10 us) to an fsync that waits for a slow disk.
inline constexpr std::array<double, 10> kLatencyBucketSeconds = {
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

// A latency histogram many threads record into at once. Buckets are kept
// per bucket (not cumulative) and the count is their sum when read, so a
// scrape always shows +Inf == _count even while requests complete.
class LatencyHistogram {
 public:
  void Record(uint64_t nanos);

  struct Snapshot {
    std::array<uint64_t, kLatencyBucketSeconds.size() + 1> counts{};  // last: +Inf
    double sum_seconds = 0;
  };
  Snapshot Read() const;

 private:
  std::array<std::atomic<uint64_t>, kLatencyBucketSeconds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_nanos_{0};
};

// One cache line each, so threads serving different operations do not
// contend for the same line.
struct alignas(64) FuseOpCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};  // requests answered with an errno
  LatencyHistogram latency;         // handler entry to reply
};

struct FuseMetrics {
  FuseOpCounters& op(FuseOp which) { return ops[static_cast<size_t>(which)]; }
  // Counts one request of `which` that took `nanos`, failed or not.
  void Record(FuseOp which, uint64_t nanos, bool failed) {
    FuseOpCounters& c = op(which);
    c.requests.fetch_add(1, std::memory_order_relaxed);
    if (failed) c.errors.fetch_add(1, std::memory_order_relaxed);
    c.latency.Record(nanos);
  }

  std::array<FuseOpCounters, kFuseOpCount> ops;
  std::atomic<uint64_t> read_bytes{0};     // returned by read requests
  std::atomic<uint64_t> written_bytes{0};  // accepted by write requests
};

}  // namespace cairn
