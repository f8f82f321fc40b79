#include "fs/fuse_metrics.h"

namespace cairn {
namespace {

constexpr const char* kFuseOpNames[kFuseOpCount] = {
    "lookup",     "forget",    "batch_forget", "getattr",    "setattr",  "readlink",
    "mknod",      "mkdir",     "symlink",      "unlink",     "rmdir",    "rename",
    "link",       "open",      "create",       "read",       "write",    "flush",
    "release",    "fsync",     "opendir",      "readdir",    "readdirplus",
    "releasedir", "fsyncdir",  "statfs",       "setxattr",   "getxattr", "listxattr",
    "removexattr", "fallocate", "lseek",    "getlk",      "setlk",    "flock",
};

// Bucket bounds in nanoseconds, for comparing without floating point on the
// request path.
constexpr std::array<uint64_t, kLatencyBucketSeconds.size()> BoundsNanos() {
  std::array<uint64_t, kLatencyBucketSeconds.size()> nanos{};
  for (size_t i = 0; i < nanos.size(); ++i) {
    nanos[i] = static_cast<uint64_t>(kLatencyBucketSeconds[i] * 1e9 + 0.5);
  }
  return nanos;
}
constexpr std::array<uint64_t, kLatencyBucketSeconds.size()> kBoundsNanos = BoundsNanos();

}  // namespace

const char* FuseOpName(FuseOp op) {
  size_t i = static_cast<size_t>(op);
  return i < kFuseOpCount ? kFuseOpNames[i] : "unknown";
}

void LatencyHistogram::Record(uint64_t nanos) {
  size_t bucket = 0;
  while (bucket < kBoundsNanos.size() && nanos > kBoundsNanos[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(nanos, std::memory_order_relaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::Read() const {
  Snapshot s;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    s.counts[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  s.sum_seconds = sum_nanos_.load(std::memory_order_relaxed) / 1e9;
  return s;
}

}  // namespace cairn
