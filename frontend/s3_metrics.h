// Counters of the S3 requests the frontend serves, by operation: relaxed
// atomics in a fixed array, as the FUSE requests' (fs/fuse_metrics.h).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "fs/fuse_metrics.h"
#include "frontend/s3_handler.h"

namespace cairn::frontend {

// The S3 operations, as metric labels (op="PutObject", AWS's names).
enum class S3Op {
  kListBuckets,
  kCreateBucket,
  kDeleteBucket,
  kHeadBucket,
  kGetBucketLocation,
  kGetBucketVersioning,
  kListObjects,
  kListObjectsV2,
  kListObjectVersions,
  kListMultipartUploads,
  kPutObject,
  kCopyObject,
  kGetObject,
  kHeadObject,
  kDeleteObject,
  kDeleteObjects,
  kCreateMultipartUpload,
  kUploadPart,
  kUploadPartCopy,
  kCompleteMultipartUpload,
  kAbortMultipartUpload,
  kListParts,
  kOther,  // a request that is no S3 operation cairn serves
  kCount,  // not an operation: the number of them
};
inline constexpr size_t kS3OpCount = static_cast<size_t>(S3Op::kCount);

const char* S3OpName(S3Op op);
// Which operation a parsed request asks for (from its method, bucket, key
// and query, as the handler routes it).
S3Op ClassifyS3Request(const S3Request& request);

struct alignas(64) S3OpCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> client_errors{0};  // answered 4xx
  std::atomic<uint64_t> server_errors{0};  // answered 5xx
  LatencyHistogram latency;                // request head read to answer sent
};

struct S3Metrics {
  // Counts one answered request of `op` with HTTP `status`, `nanos` long.
  void Record(S3Op op, int status, uint64_t nanos) {
    S3OpCounters& c = ops[static_cast<size_t>(op)];
    c.requests.fetch_add(1, std::memory_order_relaxed);
    if (status >= 500) c.server_errors.fetch_add(1, std::memory_order_relaxed);
    else if (status >= 400) c.client_errors.fetch_add(1, std::memory_order_relaxed);
    c.latency.Record(nanos);
  }
  std::array<S3OpCounters, kS3OpCount> ops;
  std::atomic<uint64_t> bytes_received{0};  // request bodies, as sent
  std::atomic<uint64_t> bytes_sent{0};      // response bodies
  std::atomic<uint64_t> connections{0};     // open now
  // Connections closed before a TLS session was set up: plain HTTP sent to
  // the HTTPS port, a client that refused the certificate, or one too slow.
  std::atomic<uint64_t> tls_handshake_failures{0};
};

}  // namespace cairn::frontend
