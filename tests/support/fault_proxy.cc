#include "tests/support/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace cairn {
namespace {

bool SendAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += n;
  }
  return true;
}

// Reads one HTTP message (head and Content-Length body) from `fd`.
// Responses without a length are read to the end of the stream.
bool ReadMessage(int fd, std::string* message, bool is_response) {
  char buffer[65536];
  size_t head_end = std::string::npos;
  uint64_t body_length = 0;
  bool has_length = false;
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = message->find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = message->substr(0, head_end);
        for (char& c : head) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        size_t at = head.find("\r\ncontent-length:");
        if (at != std::string::npos) {
          has_length = true;
          body_length = strtoull(head.c_str() + at + 17, nullptr, 10);
        }
        // HEAD responses and 204/304 carry no body whatever their length says.
        if (is_response && (head.find(" 204 ") != std::string::npos ||
                            head.find(" 304 ") != std::string::npos)) {
          has_length = true;
          body_length = 0;
        }
      }
    }
    if (head_end != std::string::npos && (has_length || !is_response) &&
        message->size() >= head_end + 4 + body_length) {
      return true;
    }
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) return head_end != std::string::npos && is_response;
    if (n < 0) return false;
    message->append(buffer, n);
  }
}

std::string ErrorResponse(int status, const char* reason, const char* code) {
  std::string body = std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>") +
                     code + "</Code><Message>injected by the test proxy</Message></Error>";
  return "HTTP/1.1 " + std::to_string(status) + " " + reason +
         "\r\nContent-Type: application/xml\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

bool Take(std::atomic<int>& counter) {
  int value = counter.load();
  while (value > 0) {
    if (counter.compare_exchange_weak(value, value - 1)) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<FaultProxy> FaultProxy::Start(int upstream_port) {
  std::unique_ptr<FaultProxy> proxy(new FaultProxy());
  proxy->upstream_port_ = upstream_port;
  proxy->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(proxy->listen_fd_, 64) != 0 ||
      getsockname(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return nullptr;
  }
  proxy->port_ = ntohs(address.sin_port);
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
}

namespace {

// The value of `name` in the query of a request line, "" if absent.
std::string QueryValue(const std::string& request_line, const std::string& name) {
  size_t query = request_line.find('?');
  if (query == std::string::npos) return "";
  size_t end = request_line.find(' ', query);
  std::string q = request_line.substr(query + 1, end - query - 1);
  for (size_t at = 0; at <= q.size();) {
    size_t amp = q.find('&', at);
    if (amp == std::string::npos) amp = q.size();
    std::string pair = q.substr(at, amp - at);
    if (pair.rfind(name + "=", 0) == 0) return pair.substr(name.size() + 1);
    at = amp + 1;
  }
  return "";
}

bool HasQueryKey(const std::string& request_line, const std::string& name) {
  size_t query = request_line.find('?');
  if (query == std::string::npos) return false;
  std::string rest = request_line.substr(query);
  return rest.find("?" + name) != std::string::npos || rest.find("&" + name) != std::string::npos;
}

}  // namespace

void FaultProxy::NoteUploads(const std::string& request_line, const std::string& response) {
  if (request_line.rfind("DELETE ", 0) == 0) {
    // Asked to abort: counts whatever the answer (s3rver refuses with 405).
    if (std::string id = QueryValue(request_line, "uploadId"); !id.empty()) {
      std::lock_guard lock(mu_);
      open_uploads_.erase(id);
    }
    return;
  }
  const bool ok = response.rfind("HTTP/1.1 2", 0) == 0 || response.rfind("HTTP/1.0 2", 0) == 0;
  if (!ok) return;
  if (request_line.rfind("POST ", 0) == 0 && HasQueryKey(request_line, "uploads")) {
    size_t start = response.find("<UploadId>");
    size_t end = response.find("</UploadId>");
    if (start == std::string::npos || end == std::string::npos) return;
    start += strlen("<UploadId>");
    uploads_started_++;
    std::lock_guard lock(mu_);
    open_uploads_.insert(response.substr(start, end - start));
    return;
  }
  std::string id = QueryValue(request_line, "uploadId");
  if (id.empty()) return;
  if (request_line.rfind("POST ", 0) == 0) {
    std::lock_guard lock(mu_);
    open_uploads_.erase(id);  // completed
  }
}

std::set<std::string> FaultProxy::OpenUploads() {
  std::lock_guard lock(mu_);
  return open_uploads_;
}

std::string FaultProxy::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 200) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    workers_.emplace_back([this, fd] {
      Serve(fd);
      close(fd);
    });
  }
}

void FaultProxy::Serve(int client_fd) {
  if (refuse) {
    faults++;
    return;
  }
  std::string request;
  if (!ReadMessage(client_fd, &request, false)) return;
  requests++;
  if (outage_after > 0 && outage_after.fetch_sub(1) == 1) refuse = true;
  const std::string request_line = request.substr(0, request.find("\r\n"));
  const bool part_upload = request_line.rfind("PUT ", 0) == 0 &&
                           request_line.find("uploadId=") != std::string::npos;
  const bool may_fault = part_upload || !faults_only_on_parts;
  auto take = [&](std::atomic<int>& counter) { return may_fault && Take(counter); };
  if (take(slow_down)) {
    faults++;
    SendAll(client_fd, ErrorResponse(503, "Slow Down", "SlowDown"));
    return;
  }
  if ((request.rfind("GET ", 0) == 0 && take(server_error_on_get)) ||
      (part_upload && Take(server_error_on_part)) || take(server_error)) {
    faults++;
    SendAll(client_fd, ErrorResponse(500, "Internal Server Error", "InternalError"));
    return;
  }
  // One request per upstream connection too: keep-alive would need framing
  // of every response.
  size_t line_end = request.find("\r\n");
  std::string rewritten = request.substr(0, line_end + 2) + "Connection: close\r\n" +
                          request.substr(line_end + 2);
  int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(upstream_port_);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  bool head_request = request.rfind("HEAD ", 0) == 0;
  if (connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      SendAll(upstream, rewritten)) {
    if (head_request) {
      char buffer[65536];
      for (ssize_t n; (n = recv(upstream, buffer, sizeof(buffer), 0)) > 0;) response.append(buffer, n);
    } else {
      ReadMessage(upstream, &response, true);
    }
  }
  close(upstream);
  if (response.empty()) {
    SendAll(client_fd, ErrorResponse(502, "Bad Gateway", "BadGateway"));
    return;
  }
  // What the server did counts, whatever the client is told next.
  NoteUploads(request_line, response);
  if (take(stall)) {
    faults++;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(stall_seconds.load());
    while (!stopping_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (take(reset_mid_body)) {
    faults++;
    SendAll(client_fd, response.substr(0, response.size() / 2));
    linger hard{1, 0};  // close with RST, as a dying peer does
    setsockopt(client_fd, SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
    return;
  }
  // Tell the client this connection ends here.
  size_t head_end = response.find("\r\n\r\n");
  if (head_end != std::string::npos) response.insert(head_end, "\r\nConnection: close");
  SendAll(client_fd, response);
}

}  // namespace cairn
