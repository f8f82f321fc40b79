// How to reach a bucket: endpoint, addressing, credentials, and the retry,
// timeout and transfer limits of the client.
#pragma once

#include <cstdint>
#include <string>

#include "backend/s3/sigv4.h"

namespace cairn::s3 {

struct S3Options {
  // "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000". Plain
  // http only when the endpoint says so.
  std::string endpoint;
  std::string bucket;
  std::string region = "us-east-1";
  // Path style (endpoint/bucket/key) or virtual-hosted (bucket.endpoint/key).
  bool path_style = true;
  Credentials credentials;
  std::string ca_file;  // empty: the system's CA store
  std::string storage_class;  // x-amz-storage-class of new objects; "" for the default
  // Retries: at most this many attempts, the last one at
  // max_retry_seconds after the first at the latest.
  int max_attempts = 6;
  double max_retry_seconds = 60;
  double first_backoff_seconds = 0.1;
  double max_backoff_seconds = 8;
  int64_t connect_timeout_ms = 5000;
  // A transfer slower than 1 KiB/s for this long is a stall: aborted and
  // retried.
  int64_t stall_seconds = 15;
  int max_connections = 8;
  // Objects larger than this go up in parts of part_bytes, in parallel.
  uint64_t multipart_threshold = 16 << 20;
  uint64_t part_bytes = 8 << 20;
};

}  // namespace cairn::s3
