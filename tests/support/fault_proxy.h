// An HTTP proxy of the tests' own between a client and an S3 server
// (s3rver), on 127.0.0.1, that injects the remote faults the client must
// survive: throttling (503 SlowDown), server errors (500), connections
// reset in the middle of a response, stalls, and refused connections. One
// request per connection (it answers "Connection: close"), which libcurl
// handles by reconnecting.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cairn {

class FaultProxy {
 public:
  // Listens on a free port of 127.0.0.1 and forwards to 127.0.0.1:upstream_port.
  static std::unique_ptr<FaultProxy> Start(int upstream_port);
  ~FaultProxy();

  std::string endpoint() const;  // "http://127.0.0.1:PORT"

  // Each counts down: the next N requests get that fault.
  std::atomic<int> slow_down{0};     // 503 SlowDown
  std::atomic<int> server_error{0};  // 500 InternalError
  std::atomic<int> server_error_on_get{0};  // 500 for GETs only (reads back)
  std::atomic<int> server_error_on_part{0};  // 500 for multipart part uploads only
  std::atomic<int> reset_mid_body{0};  // half the response, then a TCP reset
  std::atomic<int> stall{0};         // nothing for stall_seconds, then the response
  std::atomic<int> stall_seconds{3};
  std::atomic<bool> refuse{false};   // close every connection at once
  // An outage after this many more requests (0: none): then `refuse` turns
  // on by itself, as a remote that goes away in the middle of a job.
  std::atomic<int> outage_after{0};
  // The faults above hit only multipart part uploads (PUT ...?uploadId=).
  std::atomic<bool> faults_only_on_parts{false};

  std::atomic<int> requests{0};      // requests seen
  std::atomic<int> faults{0};        // faults injected

  // Multipart uploads started through the proxy that the client neither
  // completed nor asked to abort (what the server would list as orphans;
  // s3rver can neither list uploads nor abort them: it answers 405).
  std::set<std::string> OpenUploads();
  int uploads_started() { return uploads_started_; }

 private:
  FaultProxy() = default;
  void AcceptLoop();
  void Serve(int client_fd);
  void NoteUploads(const std::string& request, const std::string& response);

  int listen_fd_ = -1;
  int port_ = 0;
  int upstream_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::set<std::string> open_uploads_;  // guarded by mu_
  std::atomic<int> uploads_started_{0};
};

}  // namespace cairn
