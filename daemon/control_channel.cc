#include "daemon/control_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backend/base/log.h"

namespace cairn {
namespace {

// The socket's address; a path through the held directory when the
// volume's own path would not fit in sun_path (108 bytes).
absl::StatusOr<socklen_t> SocketAddress(const std::string& path, sockaddr_un* address) {
  memset(address, 0, sizeof(*address));
  address->sun_family = AF_UNIX;
  if (path.size() >= sizeof(address->sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  memcpy(address->sun_path, path.data(), path.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
}

// VOLUME_DIR/control, spelled so that it fits in an address.
std::string SocketPath(const std::string& volume_dir, const Directory* held) {
  std::string direct = volume_dir + "/" + kControlSocketName;
  if (direct.size() < sizeof(sockaddr_un::sun_path) || held == nullptr) return direct;
  return held->path() + "/" + kControlSocketName;
}

bool WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

// Reads one line (without the newline); false at end of stream.
bool ReadLine(int fd, std::string* buffer, std::string* line) {
  for (;;) {
    size_t newline = buffer->find('\n');
    if (newline != std::string::npos) {
      *line = buffer->substr(0, newline);
      buffer->erase(0, newline + 1);
      return true;
    }
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer->append(chunk, n);
    if (buffer->size() > (1 << 20)) return false;  // not our protocol
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& volume_dir,
                                                                    const std::string& volume_id,
                                                                    Handler handler) {
  std::unique_ptr<ControlServer> server(new ControlServer());
  server->handler_ = std::move(handler);
  server->volume_id_ = volume_id;
  Env* env = Env::Default();
  absl::StatusOr<std::unique_ptr<Directory>> dir = env->OpenDirectory(volume_dir);
  if (!dir.ok()) return dir.status();
  server->volume_dir_ = std::move(*dir);
  server->socket_path_ = SocketPath(volume_dir, server->volume_dir_.get());
  // A socket left by a daemon that died: ours now, since we hold the lock.
  if (absl::Status s = env->Remove(server->socket_path_); !s.ok()) return s;
  server->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_un address;
  absl::StatusOr<socklen_t> length = SocketAddress(server->socket_path_, &address);
  if (!length.ok()) return length.status();
  if (bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&address), *length) != 0 ||
      listen(server->listen_fd_, 8) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen for cairn commands at ", volume_dir, "/", kControlSocketName,
                     ": ", strerror(errno)));
  }
  if (pipe2(server->wake_pipe_, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

ControlServer::~ControlServer() {
  stopping_ = true;
  if (wake_pipe_[1] >= 0) {
    [[maybe_unused]] ssize_t n = write(wake_pipe_[1], "x", 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    // Best effort: a socket nobody listens on only refuses connections.
    Env::Default()->Remove(socket_path_).IgnoreError();
  }
  for (int fd : wake_pipe_) {
    if (fd >= 0) close(fd);
  }
}

void ControlServer::AcceptLoop() {
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0 || stopping_) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // The directory keeps others out; this keeps out whoever else it lets
    // in (a group, should an operator open the directory up).
    ucred peer{};
    socklen_t peer_length = sizeof(peer);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) != 0 ||
        (peer.uid != 0 && peer.uid != getuid())) {
      WriteAll(fd, "error only root or the user serving the volume may do that\n");
      close(fd);
      continue;
    }
    absl::MutexLock lock(&mu_);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void ControlServer::Serve(int fd) {
  std::string buffer, line;
  if (ReadLine(fd, &buffer, &line)) {
    auto reply = [fd](const std::string& text) { WriteAll(fd, text + "\n"); };
    const std::string prefix = "volume ";
    size_t tab = line.find('\t');
    if (line.rfind(prefix, 0) != 0 || tab == std::string::npos) {
      reply("error the request names no volume (cairn and its daemon differ in version?)");
    } else if (std::string id = line.substr(prefix.size(), tab - prefix.size()); id != volume_id_) {
      reply(absl::StrCat("error this daemon serves volume ", volume_id_, ", not ", id));
    } else {
      handler_(line.substr(tab + 1), reply, [this] { return stopping_.load(); });
    }
  }
  close(fd);
}

absl::Status ControlRequest(const ControlTarget& target, const std::string& request,
                            const std::function<void(const std::string&)>& on_line) {
  absl::StatusOr<std::unique_ptr<Directory>> dir = Env::Default()->OpenDirectory(target.volume_dir);
  if (!dir.ok()) return dir.status();
  const std::string path = SocketPath(target.volume_dir, dir->get());
  sockaddr_un address;
  absl::StatusOr<socklen_t> length = SocketAddress(path, &address);
  if (!length.ok()) return length.status();
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), *length) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("the daemon serving the volume does not answer (", strerror(err), ")"));
  }
  // Only the daemon holding the volume's lock, running as the volume's
  // owner, may answer: an answer from anyone else could hide a fault.
  ucred peer{};
  socklen_t peer_length = sizeof(peer);
  absl::StatusOr<FileInfo> owner = Env::Default()->Stat(target.volume_dir);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) != 0 || !owner.ok() ||
      peer.pid != target.daemon_pid || peer.uid != owner->uid) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "the process answering at ", target.volume_dir, "/", kControlSocketName, " (pid ",
        peer.pid, ", uid ", peer.uid, ") is not the daemon holding the volume's lock (pid ",
        target.daemon_pid, "); its answer is not trusted. Check who runs it"));
  }
  if (!WriteAll(fd, absl::StrCat("volume ", target.volume_id, "\t", request, "\n"))) {
    close(fd);
    return absl::UnavailableError("the daemon closed the connection");
  }
  std::string buffer, line;
  bool ended = false;
  while (ReadLine(fd, &buffer, &line)) {
    on_line(line);
    if (line.rfind("done", 0) == 0 || line.rfind("error", 0) == 0) {
      ended = true;
      break;
    }
  }
  close(fd);
  if (!ended) return absl::UnavailableError("the daemon stopped before answering");
  return absl::OkStatus();
}

}  // namespace cairn
