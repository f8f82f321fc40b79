#include "tests/support/s3rver.h"

#include "tests/support/loopback.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace cairn {

std::unique_ptr<S3rver> S3rver::Start(const std::string& bucket, std::string* why_not) {
  const char* binary = getenv("CAIRN_S3RVER");
#ifdef CAIRN_DEFAULT_S3RVER
  if (binary == nullptr) binary = CAIRN_DEFAULT_S3RVER;
#endif
  if (binary == nullptr || access(binary, X_OK) != 0) {
    *why_not = "s3rver is not installed (CAIRN_S3RVER; tests/run-all.sh installs it)";
    return nullptr;
  }
  std::unique_ptr<S3rver> server(new S3rver());
  server->binary_ = binary;
  server->bucket_ = bucket;
  char templ[] = "/tmp/cairn-s3rver-XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    *why_not = "mkdtemp failed";
    return nullptr;
  }
  server->dir_ = templ;
  server->port_ = FreeLoopbackPort();
  if (!server->Launch(why_not)) return nullptr;
  return server;
}

bool S3rver::Launch(std::string* why_not) {
  pid_ = fork();
  if (pid_ == 0) {
    int null_fd = open("/dev/null", O_RDWR);
    dup2(null_fd, STDIN_FILENO);
    dup2(null_fd, STDOUT_FILENO);
    dup2(null_fd, STDERR_FILENO);
    std::string port = std::to_string(port_);
    // s3rver makes list continuation tokens with DES, which Node's OpenSSL 3
    // keeps in its legacy provider.
    setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
    execl(binary_.c_str(), binary_.c_str(), "-d", dir_.c_str(), "-a", "127.0.0.1", "-p",
          port.c_str(), "--silent", "--configure-bucket", bucket_.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (LoopbackListening(port_)) return true;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      *why_not = "s3rver exited at start";
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  *why_not = "s3rver did not listen within 20 s";
  return false;
}

void S3rver::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool S3rver::Restart(std::string* why_not) {
  Stop();
  return Launch(why_not);
}

S3rver::~S3rver() {
  Stop();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string S3rver::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

}  // namespace cairn
