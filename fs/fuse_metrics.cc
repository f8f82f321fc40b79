#include "fs/fuse_metrics.h"

namespace cairn {
namespace {

constexpr const char* kFuseOpNames[kFuseOpCount] = {
    "lookup",     "forget",    "batch_forget", "getattr",    "setattr",  "readlink",
    "mknod",      "mkdir",     "symlink",      "unlink",     "rmdir",    "rename",
    "link",       "open",      "create",       "read",       "write",    "flush",
    "release",    "fsync",     "opendir",      "readdir",    "readdirplus",
    "releasedir", "fsyncdir",  "statfs",       "setxattr",   "getxattr", "listxattr",
    "removexattr", "fallocate",
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

void AppendFuseMetrics(const FuseMetrics& metrics, MetricsText* out) {
  auto each_used_op = [&](auto fn) {
    for (size_t i = 0; i < kFuseOpCount; ++i) {
      const FuseOpCounters& c = metrics.ops[i];
      if (c.requests.load(std::memory_order_relaxed) == 0) continue;
      fn(kFuseOpNames[i], c);
    }
  };
  out->Family("cairn_fuse_requests_total", MetricType::kCounter,
              "FUSE requests served, by operation.");
  each_used_op([&](const char* op, const FuseOpCounters& c) {
    out->Value("cairn_fuse_requests_total", c.requests.load(std::memory_order_relaxed),
               {{"op", op}});
  });
  out->Family("cairn_fuse_errors_total", MetricType::kCounter,
              "FUSE requests answered with an error (errno), by operation.");
  each_used_op([&](const char* op, const FuseOpCounters& c) {
    out->Value("cairn_fuse_errors_total", c.errors.load(std::memory_order_relaxed),
               {{"op", op}});
  });
  out->Family("cairn_fuse_request_duration_seconds", MetricType::kHistogram,
              "Time from a FUSE request reaching its handler to the reply, by operation.");
  each_used_op([&](const char* op, const FuseOpCounters& c) {
    LatencyHistogram::Snapshot s = c.latency.Read();
    out->Histogram("cairn_fuse_request_duration_seconds", kLatencyBucketSeconds, s.counts,
                   s.sum_seconds, {{"op", op}});
  });
  out->Family("cairn_read_bytes_total", MetricType::kCounter,
              "Bytes returned by FUSE read requests.");
  out->Value("cairn_read_bytes_total", metrics.read_bytes.load(std::memory_order_relaxed));
  out->Family("cairn_written_bytes_total", MetricType::kCounter,
              "Bytes accepted by FUSE write requests.");
  out->Value("cairn_written_bytes_total",
             metrics.written_bytes.load(std::memory_order_relaxed));
}

}  // namespace cairn
