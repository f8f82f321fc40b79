#include "daemon/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backend/base/log.h"
#include "backend/config/config.h"
#include "daemon/metrics_text.h"

namespace cairn {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string Response(const char* status, const char* content_type, const std::string& body,
                     bool head_only, const char* extra_headers = "") {
  std::string out = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                                 "\r\nContent-Length: ", body.size(),
                                 "\r\nConnection: close\r\n", extra_headers, "\r\n");
  if (!head_only) out += body;
  return out;
}

std::string PlainError(const char* status, const std::string& why) {
  return Response(status, "text/plain; charset=utf-8", why + "\n", false);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                     Render render,
                                                                     Options options) {
  absl::StatusOr<ListenAddress> address = ParseListenAddress(listen);
  if (!address.ok()) return address.status();
  sockaddr_storage storage;
  memset(&storage, 0, sizeof(storage));
  socklen_t length;
  if (address->ipv6) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(address->port));
    inet_pton(AF_INET6, address->host.c_str(), &v6->sin6_addr);
    length = sizeof(*v6);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(address->port));
    inet_pton(AF_INET, address->host.c_str(), &v4->sin_addr);
    length = sizeof(*v4);
  }
  auto fail = [&](const char* what, int fd) {
    int err = errno;
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot ", what, " ", listen, ": ", strerror(err)));
  };
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("open a socket for", -1);
  // A restarted daemon can listen again at once, despite connections of the
  // previous one in TIME_WAIT.
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (address->ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) return fail("listen on", fd);
  if (::listen(fd, 16) != 0) return fail("listen on", fd);
  sockaddr_storage bound;
  socklen_t bound_length = sizeof(bound);
  int port = address->port;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) == 0) {
    port = ntohs(bound.ss_family == AF_INET6
                     ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                     : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  std::unique_ptr<MetricsServer> server(
      new MetricsServer(fd, port, std::move(render), options));
  if (pipe2(server->stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

MetricsServer::MetricsServer(int listen_fd, int port, Render render, Options options)
    : listen_fd_(listen_fd), port_(port), render_(std::move(render)), options_(options) {}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    char byte = 's';
    [[maybe_unused]] ssize_t n = write(stop_pipe_[1], &byte, 1);
    thread_.join();
  }
  close(listen_fd_);
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

void MetricsServer::Loop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int ready = poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      LogError("metrics server stops: poll: %s", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) {
      // EAGAIN: the client gave up first; ECONNABORTED and the like concern
      // one connection only. Out of descriptors: wait rather than spin.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        pollfd stop = {stop_pipe_[0], POLLIN, 0};
        if (poll(&stop, 1, 100) > 0) return;
      }
      continue;
    }
    Serve(client);
    CloseGently(client);
  }
}

// Closing a socket with unread request bytes makes the kernel send a reset,
// which can destroy the answer before the client reads it (an oversized or
// garbage request). So: end our side, then read what the client still
// sends, briefly, before closing.
void MetricsServer::CloseGently(int client) {
  shutdown(client, SHUT_WR);
  const SteadyClock::time_point deadline = SteadyClock::now() + std::chrono::milliseconds(500);
  char buf[4096];
  size_t drained = 0;
  while (drained < 64 * 1024) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) break;
    pollfd fds[2] = {{client, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    int ready = poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[1].revents != 0) break;
    ssize_t n = recv(client, buf, sizeof(buf), 0);
    if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
    if (n > 0) drained += static_cast<size_t>(n);
  }
  close(client);
}

// Reads one request (up to the blank line ending its headers) and answers
// it. Every wait is bounded by the client deadline and ends on a stop.
void MetricsServer::Serve(int client) {
  const SteadyClock::time_point deadline =
      SteadyClock::now() + std::chrono::milliseconds(options_.client_timeout_millis);
  // Waits until `client` is ready for `events`; false on timeout, stop or
  // a connection error.
  auto wait_for = [&](short events) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - SteadyClock::now());
      if (left.count() <= 0) return false;
      pollfd fds[2] = {{client, events, 0}, {stop_pipe_[0], POLLIN, 0}};
      int ready = poll(fds, 2, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0 || fds[1].revents != 0) return false;
      return (fds[0].revents & (events | POLLHUP | POLLERR)) != 0;
    }
  };
  auto send_all = [&](const std::string& data) {
    size_t sent = 0;
    while (sent < data.size()) {
      ssize_t n = send(client, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_for(POLLOUT)) return;
      } else {
        return;  // the client went away
      }
    }
  };

  std::string request;
  size_t header_end = std::string::npos;
  char buf[2048];
  while (header_end == std::string::npos) {
    ssize_t n = recv(client, buf, sizeof(buf), 0);
    if (n > 0) {
      request.append(buf, static_cast<size_t>(n));
      size_t crlf = request.find("\r\n\r\n");
      size_t lf = request.find("\n\n");
      header_end = std::min(crlf, lf);
      if (header_end == std::string::npos && request.size() > kMaxRequestBytes) {
        return send_all(PlainError("431 Request Header Fields Too Large",
                                   absl::StrCat("requests are limited to ", kMaxRequestBytes,
                                                " bytes")));
      }
    } else if (n == 0) {
      // Closed before the headers ended: a half request gets no answer
      // unless its request line is complete, as HTTP/1.0 tools may send it
      // and shut down their side.
      if (request.find('\n') == std::string::npos) return;
      header_end = request.size();
    } else if (errno == EAGAIN || errno == EINTR) {
      if (!wait_for(POLLIN)) return;
    } else {
      return;
    }
  }
  if (header_end > kMaxRequestBytes) {
    return send_all(PlainError("431 Request Header Fields Too Large",
                               absl::StrCat("requests are limited to ", kMaxRequestBytes,
                                            " bytes")));
  }

  // The request line: METHOD SP TARGET SP HTTP/1.x
  std::string line = request.substr(0, request.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  size_t first_space = line.find(' ');
  size_t second_space =
      first_space == std::string::npos ? std::string::npos : line.find(' ', first_space + 1);
  if (second_space == std::string::npos ||
      line.compare(second_space + 1, 7, "HTTP/1.") != 0 ||
      line.size() != second_space + 9) {
    return send_all(PlainError("400 Bad Request", "expected an HTTP/1.x request line"));
  }
  std::string method = line.substr(0, first_space);
  std::string target = line.substr(first_space + 1, second_space - first_space - 1);
  size_t query = target.find('?');
  std::string path = query == std::string::npos ? target : target.substr(0, query);
  if (path != "/metrics") {
    return send_all(PlainError("404 Not Found", "cairn serves its metrics at /metrics only"));
  }
  bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return send_all(Response("405 Method Not Allowed", "text/plain; charset=utf-8",
                             "use GET\n", false, "Allow: GET, HEAD\r\n"));
  }
  send_all(Response("200 OK", kMetricsContentType, render_(), head));
}

}  // namespace cairn
