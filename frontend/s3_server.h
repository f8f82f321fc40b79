// The S3 frontend's HTTP side: a listener on a TCP address, one thread per
// connection (at most Options::max_connections; more wait in the kernel's
// backlog), HTTP/1.1 with keep-alive through Boost.Beast. It reads a
// request's head, authenticates it (SigV4, the keys file), streams the
// body through a fixed buffer (aws-chunked decoding and checksums on the
// way) into S3Handler, and streams the answer back. No body is ever held
// whole in memory. With a certificate and key it speaks HTTPS instead (TLS
// 1.2 and up), on the same code path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "frontend/s3_auth.h"
#include "frontend/s3_handler.h"
#include "frontend/s3_metrics.h"

namespace cairn::frontend {

struct S3ServerStats {
  uint64_t requests = 0;
  uint64_t client_errors = 0;  // answered 4xx
  uint64_t server_errors = 0;  // answered 5xx
  uint64_t bytes_received = 0;  // request bodies, as sent
  uint64_t bytes_sent = 0;      // response bodies
  uint64_t connections = 0;     // open now
  bool tls = false;             // serving HTTPS
  uint64_t tls_handshake_failures = 0;
};

class S3Server {
 public:
  struct Options {
    std::string listen;  // "HOST:PORT" (as [metrics] listen); port 0 takes a free one
    std::string region = "us-east-1";
    std::string keys_file;
    size_t max_connections = 128;
    // A connection that sends nothing for this long is closed.
    int idle_timeout_seconds = 60;
    // TLS: a PEM certificate chain (the server's first) and the PEM private
    // key that goes with it, readable by the owner alone. Both empty: plain
    // HTTP.
    std::string tls_cert_file;
    std::string tls_key_file;
    // A TLS handshake not done in this long is given up.
    int handshake_timeout_seconds = 10;
  };
  // Listens and serves until destroyed. `handler` must outlive the server.
  static absl::StatusOr<std::unique_ptr<S3Server>> Start(S3Handler& handler, Options options);
  // Stops listening, closes every connection and waits for their threads.
  ~S3Server();

  // "HOST:PORT" it listens on (the port it took when asked for 0).
  std::string address() const;
  // "https://ADDRESS" with TLS, else "http://ADDRESS".
  std::string url() const;
  S3ServerStats stats() const;
  // Per operation, for the Prometheus metrics.
  const S3Metrics& metrics() const;

  class Impl;

 private:
  explicit S3Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::frontend
