// Small helpers for tests that drive a mount with syscalls directly.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>

#include "gtest/gtest.h"

namespace cairn_it {

// Expects `call` to fail with -1 and errno `expected_errno`.
#define EXPECT_ERRNO(call, expected_errno)                                    \
  do {                                                                        \
    errno = 0;                                                                \
    long rc_ = static_cast<long>(call);                                       \
    int errno_ = errno;                                                       \
    EXPECT_EQ(rc_, -1) << #call;                                              \
    EXPECT_EQ(errno_, expected_errno)                                         \
        << #call << ": expected " << strerrorname_np(expected_errno)          \
        << ", got " << (errno_ ? strerrorname_np(errno_) : "success");        \
  } while (0)

// An fd closed when it goes out of scope, so a failing test leaves no open
// file that would keep the mount busy.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  int Close() {
    int rc = fd_ >= 0 ? close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

inline void WriteFile(const std::string& path, const std::string& data,
                      mode_t mode = 0644) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode));
  ASSERT_TRUE(fd.ok()) << path << ": " << strerror(errno);
  ASSERT_EQ(write(fd.get(), data.data(), data.size()),
            static_cast<ssize_t>(data.size()))
      << path << ": " << strerror(errno);
  ASSERT_EQ(fd.Close(), 0) << path << ": " << strerror(errno);
}

// Everything readable from `fd` from offset 0, by pread.
inline std::string ReadFd(int fd) {
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), static_cast<off_t>(out.size()));
    if (n < 0) return out + "<read failed: " + strerror(errno) + ">";
    if (n == 0) return out;
    out.append(buf, n);
  }
}

inline std::string ReadFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY));
  if (!fd.ok()) return "<open failed: " + std::string(strerror(errno)) + ">";
  return ReadFd(fd.get());
}

inline struct stat Lstat(const std::string& path) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path << ": " << strerror(errno);
  return st;
}

inline int Renameat2(const std::string& from, const std::string& to,
                     unsigned flags) {
  return static_cast<int>(syscall(SYS_renameat2, AT_FDCWD, from.c_str(),
                                  AT_FDCWD, to.c_str(), flags));
}

// Drops the kernel's cached pages of `path` so the next read asks the
// filesystem (only clean pages go; callers make them clean first).
inline void DropPageCache(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY));
  if (fd.ok()) posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
}

// Runs `body` in a forked child and returns its exit code (its return
// value), or -1 if it crashed or ran longer than `timeout_seconds`. The child
// must only make syscalls: it leaves with _exit and no gtest assertions.
inline int RunInChild(const std::function<int()>& body, int timeout_seconds = 30) {
  pid_t child = fork();
  if (child == 0) _exit(body());
  if (child < 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int status = 0;
  for (;;) {
    pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return -1;
    }
    usleep(10000);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace cairn_it
