// A private s3rver (the npm package, a small S3 server) for tests: its own
// data directory, a bucket, 127.0.0.1 on a free port, stopped and removed
// with the object. tests/run-all.sh installs it (npm install s3rver) into
// the build directory, where the tests look (CMake tells them; CAIRN_S3RVER
// names another executable).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

namespace cairn {

class S3rver {
 public:
  // nullptr, with `why_not` set, when s3rver is not installed or does not
  // come up within 20 s.
  static std::unique_ptr<S3rver> Start(const std::string& bucket, std::string* why_not);
  ~S3rver();

  std::string endpoint() const;  // "http://127.0.0.1:PORT"
  int port() const { return port_; }
  // Where it keeps its buckets (one file per object, for tests to count).
  const std::string& dir() const { return dir_; }
  // s3rver's fixed credentials.
  static constexpr const char* kAccessKey = "S3RVER";
  static constexpr const char* kSecretKey = "S3RVER";

  // Stops the server (as a crash would) and starts it again on the same
  // port and data, for tests of a remote that goes away.
  void Stop();
  bool Restart(std::string* why_not);

 private:
  S3rver() = default;
  bool Launch(std::string* why_not);

  std::string binary_;
  std::string dir_;
  std::string bucket_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace cairn
