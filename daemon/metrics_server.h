// A minimal HTTP server for Prometheus scrapes: GET /metrics answers with
// what `render` returns, anything else with an error status. One thread,
// one connection at a time, "Connection: close"; a scraper polls every few
// seconds, which needs nothing more. Written on plain sockets so the daemon
// carries no HTTP library for one URL.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace cairn {

class MetricsServer {
 public:
  // The metrics text, made on the server's thread at each scrape.
  using Render = std::function<std::string()>;

  struct Options {
    // A client gets this long to send its request and take the answer, so
    // one stuck client delays the next scrape by at most this much.
    int client_timeout_millis = 5000;
  };

  // Listens on `listen` ("HOST:PORT", see ParseListenAddress; port 0 picks a
  // free one) and serves until destroyed. Fails if the address cannot be
  // bound (in use, not an address of this machine), saying which and why.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              Render render,
                                                              Options options);
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              Render render) {
    return Start(listen, std::move(render), Options());
  }

  // Stops the thread promptly, also in the middle of a slow client.
  ~MetricsServer();

  // The port listened on (the one chosen, when port 0 was asked for).
  int port() const { return port_; }

  // Requests larger than this are refused (431) without reading further.
  static constexpr size_t kMaxRequestBytes = 8 * 1024;

 private:
  MetricsServer(int listen_fd, int port, Render render, Options options);
  void Loop();
  void Serve(int client_fd);
  void CloseGently(int client_fd);

  const int listen_fd_;
  const int port_;
  const Render render_;
  const Options options_;
  int stop_pipe_[2] = {-1, -1};  // a byte written to [1] ends Loop
  std::thread thread_;
};

}  // namespace cairn
