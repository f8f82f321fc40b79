// The line protocol between `cairn scrub` / `cairn disk replace` and the
// daemon serving the volume: an abstract unix socket named after the volume
// id (no path to clean up or outgrow sun_path), open only to root and the
// daemon's own user (checked with SO_PEERCRED).
//
// The client sends one request line; the daemon answers with any number of
// "progress JSON" lines and ends with "done JSON" or "error MESSAGE".
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace cairn {

class ControlServer {
 public:
  // `reply` sends one line; `stopping` turns true when the daemon shuts down.
  using Handler = std::function<void(const std::string& request,
                                     const std::function<void(const std::string&)>& reply,
                                     const std::function<bool()>& stopping)>;

  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(const std::string& volume_id,
                                                              Handler handler);
  ~ControlServer();  // stops accepting, asks handlers to stop, joins them

 private:
  ControlServer() = default;
  void AcceptLoop();

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  Handler handler_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

// Sends `request` to the daemon serving `volume_id` and calls `on_line`
// with every line of the answer until "done" or "error" (included).
// kUnavailable when no daemon listens.
absl::Status ControlRequest(const std::string& volume_id, const std::string& request,
                            const std::function<void(const std::string&)>& on_line);

}  // namespace cairn
