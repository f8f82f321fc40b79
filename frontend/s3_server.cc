#include "frontend/s3_server.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "backend/base/log.h"
#include "backend/config/config.h"
#include "frontend/s3_error.h"
#include "frontend/s3_metrics.h"
#include "frontend/s3_util.h"

namespace cairn::frontend {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr size_t kBodyBuffer = 1 << 20;

std::string_view Std(beast::string_view text) { return {text.data(), text.size()}; }

// A connection's socket with a bound on every wait for the client. Asio's
// blocking calls wait in poll() without end once SO_RCVTIMEO ends a recv,
// so the socket is made non-blocking and the waiting is done here. It is a
// Beast SyncStream, and the next layer of a TLS stream.
class TimedSocket {
 public:
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket::lowest_layer_type;

  TimedSocket(tcp::socket& socket, absl::Duration wait_limit)
      : socket_(socket), wait_limit_(wait_limit) {
    beast::error_code ignored;
    socket_.non_blocking(true, ignored);
  }

  // Until cleared, waits also end at `deadline` (a handshake trickled byte
  // by byte must still end).
  void set_deadline(absl::Time deadline) { deadline_ = deadline; }
  void clear_deadline() { deadline_ = absl::InfiniteFuture(); }

  executor_type get_executor() { return socket_.get_executor(); }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }
  const lowest_layer_type& lowest_layer() const { return socket_.lowest_layer(); }

  template <class Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    return Retry(POLLIN, ec, [&] { return socket_.read_some(buffers, ec); });
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers, beast::error_code& ec) {
    return Retry(POLLOUT, ec, [&] { return socket_.write_some(buffers, ec); });
  }
  // The throwing forms, which Beast's stream concepts ask for.
  template <class Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }
  template <class Buffers>
  size_t write_some(const Buffers& buffers) {
    beast::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  template <class Attempt>
  size_t Retry(short events, beast::error_code& ec, Attempt attempt) {
    for (;;) {
      size_t n = attempt();
      if (ec != asio::error::would_block && ec != asio::error::try_again) return n;
      absl::Duration wait = std::min(wait_limit_, deadline_ - absl::Now());
      if (wait <= absl::ZeroDuration()) {
        ec = asio::error::timed_out;
        return 0;
      }
      pollfd ready{socket_.native_handle(), events, 0};
      int polled = ::poll(&ready, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)) + 1);
      if (polled == 0) {  // the wait limit or the deadline passed
        ec = asio::error::timed_out;
        return 0;
      }
      if (polled < 0 && errno != EINTR) {
        ec = beast::error_code(errno, beast::system_category());
        return 0;
      }
    }
  }

  tcp::socket& socket_;
  const absl::Duration wait_limit_;
  absl::Time deadline_ = absl::InfiniteFuture();
};

// The request body as the handler reads it: raw bytes from the parser,
// aws-chunked framing removed, and the signed SHA-256 checked at the end.
template <class Stream>
class RequestBody final : public BodyReader {
 public:
  RequestBody(Stream& stream, beast::flat_buffer& buffer,
              http::request_parser<http::buffer_body>& parser, const Authenticated& auth,
              std::string trailer, const std::map<std::string, std::string>& headers,
              std::atomic<uint64_t>& bytes_received)
      : stream_(stream), buffer_(buffer), parser_(parser), auth_(auth),
        bytes_received_(bytes_received), raw_(kBodyBuffer, '\0') {
    // A checksum sent as a header covers the body as decoded.
    for (const auto& [name, value] : headers) {
      if (std::unique_ptr<PayloadChecksum> checksum = PayloadChecksum::For(name)) {
        header_checksum_ = std::move(checksum);
        expected_checksum_ = {name, value};
        break;
      }
    }
    switch (auth.payload) {
      case PayloadKind::kSha256:
        sha256_ = EVP_MD_CTX_new();
        EVP_DigestInit_ex(sha256_, EVP_sha256(), nullptr);
        break;
      case PayloadKind::kUnsigned:
        break;
      default:
        chunked_.emplace(auth, std::move(trailer));
    }
  }
  ~RequestBody() override {
    if (sha256_) EVP_MD_CTX_free(sha256_);
  }

  absl::StatusOr<size_t> Read(char* out, size_t size) override {
    absl::StatusOr<size_t> n = ReadDecoded(out, size);
    if (!n.ok() || !header_checksum_) return n;
    if (*n > 0) {
      header_checksum_->Update(std::string_view(out, *n));
    } else if (!checksum_checked_) {
      checksum_checked_ = true;
      std::string computed = header_checksum_->Finish();
      if (computed != expected_checksum_.second) {
        return S3Error(S3ErrorCode::kBadDigest,
                       absl::StrCat("the body's ", expected_checksum_.first, " is ", computed,
                                    ", not the ", expected_checksum_.second, " sent"));
      }
    }
    return n;
  }

  std::optional<std::pair<std::string, std::string>> Checksum() const override {
    if (checksum_checked_) return expected_checksum_;
    if (chunked_ && chunked_->done()) return chunked_->trailer_checksum();
    return std::nullopt;
  }

  bool done() const { return parser_.is_done(); }

 private:
  absl::StatusOr<size_t> ReadDecoded(char* out, size_t size) {
    if (!chunked_) {
      absl::StatusOr<size_t> n = ReadRaw(out, size);
      if (!n.ok()) return n.status();
      if (*n == 0) {
        if (absl::Status s = CheckSha256(); !s.ok()) return s;
      }
      return n;
    }
    while (decoded_.size() == decoded_at_) {
      decoded_.clear();
      decoded_at_ = 0;
      absl::StatusOr<size_t> n = ReadRaw(raw_.data(), raw_.size());
      if (!n.ok()) return n.status();
      if (*n == 0) {
        if (absl::Status s = chunked_->Finish(); !s.ok()) return s;
        return 0;
      }
      if (absl::Status s = chunked_->Feed(std::string_view(raw_.data(), *n), decoded_); !s.ok()) {
        return s;
      }
    }
    size_t n = std::min(size, decoded_.size() - decoded_at_);
    std::copy_n(decoded_.data() + decoded_at_, n, out);
    decoded_at_ += n;
    return n;
  }

  // Up to `size` bytes of the body as sent; 0 at its end.
  absl::StatusOr<size_t> ReadRaw(char* out, size_t size) {
    while (!parser_.is_done()) {
      parser_.get().body().data = out;
      parser_.get().body().size = size;
      beast::error_code ec;
      http::read(stream_, buffer_, parser_, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        return S3Error(S3ErrorCode::kIncompleteBody,
                       absl::StrCat("the body ended early: ", ec.message()));
      }
      size_t got = size - parser_.get().body().size;
      if (got > 0) {
        bytes_received_ += got;
        if (sha256_) EVP_DigestUpdate(sha256_, out, got);
        return got;
      }
    }
    return 0;
  }

  absl::Status CheckSha256() {
    if (!sha256_ || checked_) return absl::OkStatus();
    checked_ = true;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(sha256_, digest, &length);
    std::string hex = absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(digest), length));
    if (hex != auth_.payload_sha256) {
      return S3Error(S3ErrorCode::kXAmzContentSHA256Mismatch,
                     "the body's SHA-256 differs from x-amz-content-sha256");
    }
    return absl::OkStatus();
  }

  Stream& stream_;
  beast::flat_buffer& buffer_;
  http::request_parser<http::buffer_body>& parser_;
  const Authenticated& auth_;
  std::atomic<uint64_t>& bytes_received_;
  EVP_MD_CTX* sha256_ = nullptr;
  bool checked_ = false;
  std::optional<AwsChunkedDecoder> chunked_;
  std::string raw_;
  std::string decoded_;
  size_t decoded_at_ = 0;
  std::unique_ptr<PayloadChecksum> header_checksum_;
  std::pair<std::string, std::string> expected_checksum_;
  bool checksum_checked_ = false;
};

// A body for requests that carry none (GET, HEAD, DELETE).
class NoBody final : public BodyReader {
 public:
  absl::StatusOr<size_t> Read(char*, size_t) override { return 0; }
};

}  // namespace

class S3Server::Impl {
 public:
  Impl(S3Handler& handler, Options options)
      : handler_(handler), options_(std::move(options)), keys_(options_.keys_file),
        acceptor_(io_) {}

  ~Impl() { Stop(); }

  absl::Status Listen() {
    absl::StatusOr<ListenAddress> address = ParseListenAddress(options_.listen);
    if (!address.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("[s3] listen: ", std::string(address.status().message())));
    }
    beast::error_code ec;
    asio::ip::address ip = asio::ip::make_address(address->host, ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat("[s3] listen: '", address->host,
                                                     "' is not an IP address"));
    }
    tcp::endpoint endpoint(ip, static_cast<uint16_t>(address->port));
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) acceptor_.non_blocking(true, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("[s3] listen: cannot listen on ",
                                                 options_.listen, ": ", ec.message()));
    }
    tcp::endpoint bound = acceptor_.local_endpoint(ec);
    address_ = bound.address().is_v6()
                   ? absl::StrCat("[", bound.address().to_string(), "]:", bound.port())
                   : absl::StrCat(bound.address().to_string(), ":", bound.port());
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  // Reads the certificate and key now: a pair that cannot serve refuses
  // the start, instead of failing every client's handshake later.
  absl::Status LoadTls() {
    const std::string& cert = options_.tls_cert_file;
    const std::string& key = options_.tls_key_file;
    if (cert.empty() && key.empty()) return absl::OkStatus();
    if (cert.empty() || key.empty()) {
      return absl::InvalidArgumentError(
          "[s3]: TLS needs both tls_cert and tls_key; set both, or neither for plain HTTP");
    }
    for (const auto& [name, path] : {std::pair{"tls_cert", cert}, std::pair{"tls_key", key}}) {
      FILE* file = std::fopen(path.c_str(), "r");
      if (file == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("[s3] ", name, ": cannot read ", path, ": ", std::strerror(errno)));
      }
      std::fclose(file);
    }
    // The key is the server's identity: as the keys file, owner-only.
    struct stat st;
    if (::stat(key.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("[s3] tls_key: %s is readable by others (mode %04o): chmod 600 %s", key,
                          st.st_mode & 07777, key));
    }
    auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* ctx = context->native_handle();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    // A renegotiation the client starts costs the server a handshake each.
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // An encrypted key would have OpenSSL ask for its passphrase on the
    // terminal of a daemon; it fails to load instead.
    context->set_password_callback(
        [](size_t, asio::ssl::context::password_purpose) { return std::string(); });
    // The key first: loaded after the certificate, a key that is not its
    // own would fail as if it were no key at all.
    beast::error_code ec;
    context->use_private_key_file(key, asio::ssl::context::pem, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "[s3] tls_key: ", key, " is not an unencrypted PEM private key (", ec.message(),
          "); openssl pkey -in ", key, " -out NEW_FILE writes one"));
    }
    context->use_certificate_chain_file(cert, ec);
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "[s3] tls_cert: ", cert, " is not a PEM certificate chain (", ec.message(),
          "): it must hold the server's certificate and then any intermediate ones, each "
          "from -----BEGIN CERTIFICATE-----"));
    }
    // OpenSSL drops a key that does not match the certificate loaded after it.
    if (SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      return absl::FailedPreconditionError(
          absl::StrCat("[s3]: the private key in ", key, " does not go with the certificate in ",
                       cert, ": give tls_key the key the certificate was issued for"));
    }
    tls_ = std::move(context);
    return absl::OkStatus();
  }

  absl::Status CheckKeys() {
    absl::StatusOr<std::optional<S3Key>> probe = keys_.Find("");
    if (!probe.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("[s3]: ", std::string(probe.status().message()),
                       " (docs/S3.md says what the keys file holds)"));
    }
    return absl::OkStatus();
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    if (accept_thread_.joinable()) accept_thread_.join();
    std::list<Connection> connections;
    {
      absl::MutexLock lock(&mu_);
      for (Connection& c : connections_) ::shutdown(c.fd, SHUT_RDWR);
      connections.splice(connections.end(), connections_);
    }
    for (Connection& c : connections) c.thread.join();
  }

  const std::string& address() const { return address_; }
  std::string url() const { return absl::StrCat(tls_ ? "https://" : "http://", address_); }

  S3ServerStats stats() const {
    S3ServerStats stats;
    for (const S3OpCounters& c : metrics_.ops) {
      stats.requests += c.requests.load(std::memory_order_relaxed);
      stats.client_errors += c.client_errors.load(std::memory_order_relaxed);
      stats.server_errors += c.server_errors.load(std::memory_order_relaxed);
    }
    stats.bytes_received = metrics_.bytes_received;
    stats.bytes_sent = metrics_.bytes_sent;
    stats.connections = metrics_.connections;
    stats.tls = tls_ != nullptr;
    stats.tls_handshake_failures = metrics_.tls_handshake_failures;
    return stats;
  }

  const S3Metrics& metrics() const { return metrics_; }

 private:
  struct Connection {
    std::thread thread;
    int fd = -1;
    std::shared_ptr<std::atomic<bool>> done;
  };

  void AcceptLoop() {
    const int listen_fd = acceptor_.native_handle();
    while (!stopping_) {
      ReapFinished();
      pollfd wait{listen_fd, POLLIN, 0};
      if (::poll(&wait, 1, 200) <= 0) continue;
      if (metrics_.connections >= options_.max_connections) {
        // The backlog holds the rest until a connection ends.
        absl::SleepFor(absl::Milliseconds(10));
        continue;
      }
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) continue;  // would block, or a client that gave up
      // A response goes out as its header and then its body: with Nagle's
      // algorithm the body waits for the header's ACK, which the client
      // delays up to 40 ms (a 4 KiB GET took 46 ms, a HEAD 3).
      socket.set_option(tcp::no_delay(true), ec);
      const int fd = socket.native_handle();
      auto done = std::make_shared<std::atomic<bool>>(false);
      metrics_.connections++;
      absl::MutexLock lock(&mu_);
      connections_.push_back(Connection{
          std::thread([this, s = std::move(socket), done]() mutable {
            Serve(s);
            metrics_.connections--;
            *done = true;
          }),
          fd, done});
    }
  }

  void ReapFinished() {
    std::list<Connection> finished;
    {
      absl::MutexLock lock(&mu_);
      for (auto it = connections_.begin(); it != connections_.end();) {
        if (*it->done) {
          auto next = std::next(it);
          finished.splice(finished.end(), connections_, it);
          it = next;
        } else {
          ++it;
        }
      }
    }
    for (Connection& c : finished) c.thread.join();
  }

  // One connection, from accept to close.
  void Serve(tcp::socket& socket) {
    TimedSocket timed(socket, absl::Seconds(options_.idle_timeout_seconds));
    if (tls_) {
      ServeTls(timed);
    } else {
      ServeRequests(timed);
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
  }

  void ServeTls(TimedSocket& timed) {
    asio::ssl::stream<TimedSocket&> stream(timed, *tls_);
    timed.set_deadline(absl::Now() + absl::Seconds(options_.handshake_timeout_seconds));
    beast::error_code ec;
    stream.handshake(asio::ssl::stream_base::server, ec);
    if (ec) {
      metrics_.tls_handshake_failures++;
      LogDebug("S3: a TLS handshake failed: %s", ec.message());
      // OpenSSL knows an HTTP request when it sees one; the client, set up
      // with http://, is told what to use instead of seeing a reset.
      if (ec.category() == asio::error::get_ssl_category() &&
          ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_HTTP_REQUEST) {
        AnswerPlainHttp(timed);
      }
      return;
    }
    timed.clear_deadline();
    ServeRequests(stream);
    // close_notify tells the client the last answer was whole; its own is
    // not waited for long.
    timed.set_deadline(absl::Now() + absl::Seconds(1));
    stream.shutdown(ec);
  }

  void AnswerPlainHttp(TimedSocket& timed) {
    const std::string text = absl::StrCat("This port serves S3 over TLS: use https://",
                                          address_, "\n");
    const std::string answer = absl::StrCat(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ",
        text.size(), "\r\nConnection: close\r\n\r\n", text);
    timed.set_deadline(absl::Now() + absl::Seconds(1));
    beast::error_code ec;
    asio::write(timed, asio::buffer(answer), ec);
    if (ec) return;
    // Closed with the rest of the request unread, the socket would send a
    // reset that can overtake the answer: read to the client's end first.
    timed.lowest_layer().shutdown(tcp::socket::shutdown_send, ec);
    char discard[4096];
    while (!ec) timed.read_some(asio::buffer(discard), ec);
  }

  // Requests one after another while the client keeps the connection.
  template <class Stream>
  void ServeRequests(Stream& stream) {
    beast::flat_buffer buffer;
    while (!stopping_) {
      http::request_parser<http::buffer_body> parser;
      parser.body_limit(boost::none);  // the handler bounds what it takes
      parser.header_limit(64 * 1024);
      beast::error_code ec;
      http::read_header(stream, buffer, parser, ec);
      if (ec) break;  // closed, timed out, or not HTTP
      if (!ServeOne(stream, buffer, parser)) break;
    }
  }

  // Answers one request; false when the connection must close.
  template <class Stream>
  bool ServeOne(Stream& stream, beast::flat_buffer& buffer,
                http::request_parser<http::buffer_body>& parser) {
    // Counted when the answer is out (or the connection gave up on it).
    struct Recorder {
      S3Metrics& metrics;
      absl::Time start = absl::Now();
      S3Op op = S3Op::kOther;
      int status = 0;
      ~Recorder() {
        metrics.Record(op, status,
                       static_cast<uint64_t>(absl::ToInt64Nanoseconds(absl::Now() - start)));
      }
    } recorder{metrics_};
    const auto& head = parser.get();
    const std::string request_id = absl::StrFormat("%016X", request_counter_++);
    S3Request request;
    request.method = std::string(Std(head.method_string()));
    const std::string target(Std(head.target()));
    SignedRequest signed_request{request.method, target, {}};
    for (const auto& field : head) {
      std::string name(Std(field.name_string()));
      std::string value(Std(field.value()));
      signed_request.headers.emplace_back(name, value);
      std::string lower = absl::AsciiStrToLower(name);
      auto [it, inserted] = request.headers.emplace(lower, value);
      if (!inserted) it->second += "," + value;
    }
    const bool has_body = parser.content_length().value_or(0) > 0 || parser.chunked();
    bool keep_alive = head.keep_alive();

    auto answer_error = [&](const absl::Status& status, const std::string& resource) {
      S3ErrorCode code = S3ErrorCodeOf(status);
      int http_status = S3ErrorHttpStatus(code);
      // A failure of the volume is the operator's to read, in the log; the
      // client learns which request to look for.
      std::string message(status.message());
      if (code == S3ErrorCode::kInternalError) {
        LogError("S3 request %s (%s %s) failed: %s", request_id, request.method, target,
                 status.ToString());
        message = absl::StrCat("the server failed; its log names request ", request_id);
      }
      // A body we did not read cannot be skipped cheaply: close instead.
      if (has_body && !parser.is_done()) keep_alive = false;
      std::string body;
      if (request.method != "HEAD" && http_status != 304) {
        body = absl::StrCat(kXmlHeader, "<Error><Code>", Absl(S3ErrorName(code)),
                            "</Code><Message>", XmlEscape(message),
                            "</Message><Resource>", XmlEscape(resource),
                            "</Resource><RequestId>", request_id, "</RequestId></Error>");
      }
      recorder.status = http_status;
      return WriteSimple(stream, http_status, {{"Content-Type", "application/xml"}}, body,
                         request_id, keep_alive, request.method == "HEAD");
    };

    // Path-style addressing: /BUCKET/KEY?QUERY.
    std::string_view path = target;
    std::string_view query;
    if (size_t q = path.find('?'); q != std::string_view::npos) {
      query = path.substr(q + 1);
      path = path.substr(0, q);
    }
    if (path.empty() || path[0] != '/') {
      return answer_error(S3Error(S3ErrorCode::kInvalidRequest, "the path must start with '/'"),
                          std::string(path));
    }
    std::string decoded_path = PercentDecode(path.substr(1));
    size_t slash = decoded_path.find('/');
    request.bucket = decoded_path.substr(0, slash);
    if (slash != std::string::npos) request.key = decoded_path.substr(slash + 1);
    for (absl::string_view pair : absl::StrSplit(Absl(query), '&', absl::SkipEmpty())) {
      size_t eq = pair.find('=');
      std::string name = PercentDecode(std::string_view(pair.data(), pair.size()).substr(0, eq));
      std::string value = eq == absl::string_view::npos
                              ? ""
                              : PercentDecode(std::string_view(pair.data(), pair.size()).substr(eq + 1));
      request.query[name] = value;
    }
    const std::string resource = std::string(path);
    recorder.op = ClassifyS3Request(request);

    absl::StatusOr<Authenticated> auth =
        Authenticate(signed_request, keys_, options_.region, absl::Now());
    if (!auth.ok()) return answer_error(auth.status(), resource);
    request.key_owner = auth->key;

    // The client waits for this before it sends the body; only a request
    // that passed authentication gets it.
    auto expect = request.headers.find("expect");
    if (expect != request.headers.end() && absl::AsciiStrToLower(expect->second) == "100-continue" &&
        has_body) {
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      asio::write(stream, asio::buffer(kContinue, sizeof kContinue - 1), ec);
      if (ec) return false;
    }
    std::string trailer;
    if (auto it = request.headers.find("x-amz-trailer"); it != request.headers.end()) {
      trailer = absl::AsciiStrToLower(it->second);
    }
    RequestBody<Stream> body(stream, buffer, parser, *auth, trailer, request.headers,
                     metrics_.bytes_received);
    NoBody no_body;
    request.body = has_body ? static_cast<BodyReader*>(&body) : &no_body;

    absl::StatusOr<S3Response> response = handler_.Handle(request);
    if (!response.ok()) return answer_error(response.status(), resource);
    recorder.status = response->status;
    if (has_body && !parser.is_done()) keep_alive = false;
    if (!response->stream) {
      return WriteSimple(stream, response->status, response->headers, response->body,
                         request_id, keep_alive, request.method == "HEAD");
    }
    return WriteStream(stream, *response, request_id, keep_alive, request.method == "HEAD");
  }

  template <class Message>
  void SetCommonFields(Message& message, const std::vector<std::pair<std::string, std::string>>& headers,
                       const std::string& request_id, bool keep_alive) {
    message.set(http::field::server, "cairn");
    message.set("x-amz-request-id", request_id);
    message.set(http::field::date, Std(HttpNow()));
    for (const auto& [name, value] : headers) message.insert(name, value);
    message.keep_alive(keep_alive);
  }

  static std::string HttpNow() {
    return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now(), absl::UTCTimeZone());
  }

  template <class Stream>
  bool WriteSimple(Stream& stream, int status,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::string& body, const std::string& request_id, bool keep_alive,
                   bool head) {
    http::response<http::string_body> response(static_cast<http::status>(status), 11);
    SetCommonFields(response, headers, request_id, keep_alive);
    if (head || status == 304 || status == 204) {
      if (status != 304 && status != 204) response.content_length(body.size());
      http::response_serializer<http::string_body> serializer(response);
      beast::error_code ec;
      http::write_header(stream, serializer, ec);
      return !ec && keep_alive;
    }
    response.body() = body;
    response.prepare_payload();
    beast::error_code ec;
    http::write(stream, response, ec);
    metrics_.bytes_sent += body.size();
    return !ec && keep_alive;
  }

  template <class Stream>
  bool WriteStream(Stream& stream, S3Response& answer, const std::string& request_id,
                   bool keep_alive, bool head) {
    http::response<http::empty_body> response(static_cast<http::status>(answer.status), 11);
    SetCommonFields(response, answer.headers, request_id, keep_alive);
    response.content_length(answer.stream_length);
    http::response_serializer<http::empty_body> serializer(response);
    beast::error_code ec;
    http::write_header(stream, serializer, ec);
    if (ec) return false;
    if (head) return keep_alive;
    uint64_t sent = 0;
    while (sent < answer.stream_length) {
      absl::StatusOr<std::string> chunk = answer.stream();
      if (!chunk.ok()) {
        // The head is gone: the client can only see a short body.
        LogError("S3 GET (request %s) failed after %d bytes: %s", request_id, sent,
                 chunk.status().ToString());
        return false;
      }
      if (chunk->empty()) return false;
      asio::write(stream, asio::buffer(*chunk), ec);
      if (ec) return false;
      sent += chunk->size();
      metrics_.bytes_sent += chunk->size();
    }
    return keep_alive;
  }

  S3Handler& handler_;
  const Options options_;
  KeysFile keys_;
  std::unique_ptr<asio::ssl::context> tls_;  // null: plain HTTP
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::string address_;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  std::list<Connection> connections_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> request_counter_{1};
  S3Metrics metrics_;
};

S3Server::S3Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Server::~S3Server() = default;

absl::StatusOr<std::unique_ptr<S3Server>> S3Server::Start(S3Handler& handler, Options options) {
  auto impl = std::make_unique<Impl>(handler, std::move(options));
  // A keys file that is missing or unsafe now would refuse every request:
  // say so at the start.
  if (absl::Status s = impl->CheckKeys(); !s.ok()) return s;
  if (absl::Status s = impl->LoadTls(); !s.ok()) return s;
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  return std::unique_ptr<S3Server>(new S3Server(std::move(impl)));
}

std::string S3Server::address() const { return impl_->address(); }
std::string S3Server::url() const { return impl_->url(); }
S3ServerStats S3Server::stats() const { return impl_->stats(); }
const S3Metrics& S3Server::metrics() const { return impl_->metrics(); }

}  // namespace cairn::frontend
