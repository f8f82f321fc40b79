// The line protocol between the cairn commands (scrub, disk replace, tier,
// backup) and the daemon serving a volume: a unix socket at
// VOLUME_DIR/control. The volume directory is owner-only, so only root and
// the volume's owner can reach the socket, and no other user can put one
// there; each volume directory has its own, so two copies of a volume (a
// restore beside its original) are never confused.
//
// The client sends one line, "volume VOLUME_ID<TAB>REQUEST"; the daemon
// refuses a request for another volume and answers with any number of
// "progress JSON" lines and ends with "done JSON" or "error MESSAGE". The
// client trusts an answer only from the daemon holding the volume's lock
// (SO_PEERCRED: its pid, and the volume directory owner's uid).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/env.h"

namespace cairn {

// The socket's name in the volume directory.
inline constexpr char kControlSocketName[] = "control";

class ControlServer {
 public:
  // `reply` sends one line; `stopping` turns true when the daemon shuts down.
  using Handler = std::function<void(const std::string& request,
                                     const std::function<void(const std::string&)>& reply,
                                     const std::function<bool()>& stopping)>;

  // Listens at VOLUME_DIR/control, replacing a socket a dead daemon left
  // (the caller holds the volume's lock). An error says why it cannot; the
  // daemon then refuses to mount.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(const std::string& volume_dir,
                                                              const std::string& volume_id,
                                                              Handler handler);
  // Stops accepting, asks handlers to stop, joins them, removes the socket.
  ~ControlServer();

 private:
  ControlServer() = default;
  void AcceptLoop();
  void Serve(int fd);

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::string volume_id_;
  std::string socket_path_;
  std::unique_ptr<Directory> volume_dir_;  // held open: the socket's path goes through it
  Handler handler_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

// Who must answer at VOLUME_DIR/control: the daemon holding the volume's
// lock (its pid, from the lock file) serving volume `volume_id`.
struct ControlTarget {
  std::string volume_dir;
  std::string volume_id;
  pid_t daemon_pid = 0;
};

// Sends `request` to the daemon serving the volume and calls `on_line` with
// every line of the answer until "done" or "error" (included).
// kUnavailable when no daemon listens; kFailedPrecondition when the process
// listening is not the daemon holding the volume's lock.
absl::Status ControlRequest(const ControlTarget& target, const std::string& request,
                            const std::function<void(const std::string&)>& on_line);

}  // namespace cairn
