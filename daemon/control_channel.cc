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

socklen_t AbstractAddress(const std::string& volume_id, sockaddr_un* address) {
  memset(address, 0, sizeof(*address));
  address->sun_family = AF_UNIX;
  std::string name = "cairn-control-" + volume_id;
  // sun_path[0] == 0: the abstract namespace.
  memcpy(address->sun_path + 1, name.data(), name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
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

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& volume_id,
                                                                    Handler handler) {
  std::unique_ptr<ControlServer> server(new ControlServer());
  server->handler_ = std::move(handler);
  server->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_un address;
  socklen_t length = AbstractAddress(volume_id, &address);
  if (bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(server->listen_fd_, 8) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot listen for cairn commands (", strerror(errno),
                     "); is another daemon serving this volume?"));
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
  if (listen_fd_ >= 0) close(listen_fd_);
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
    ucred peer;
    socklen_t peer_length = sizeof(peer);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &peer_length) != 0 ||
        (peer.uid != 0 && peer.uid != getuid())) {
      WriteAll(fd, "error only root or the user serving the volume may do that\n");
      close(fd);
      continue;
    }
    absl::MutexLock lock(&mu_);
    workers_.emplace_back([this, fd] {
      std::string buffer, request;
      if (ReadLine(fd, &buffer, &request)) {
        auto reply = [fd](const std::string& line) { WriteAll(fd, line + "\n"); };
        handler_(request, reply, [this] { return stopping_.load(); });
      }
      close(fd);
    });
  }
}

absl::Status ControlRequest(const std::string& volume_id, const std::string& request,
                            const std::function<void(const std::string&)>& on_line) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  sockaddr_un address;
  socklen_t length = AbstractAddress(volume_id, &address);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    int err = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("the daemon serving the volume does not answer (", strerror(err), ")"));
  }
  if (!WriteAll(fd, request + "\n")) {
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
