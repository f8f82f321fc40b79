// Env::Default(): the real files, through POSIX calls.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backend/base/env.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

absl::Status ErrnoError(int err, const std::string& what,
                        const std::string& path) {
  FsErrorKind kind = (err == ENOSPC || err == EDQUOT) ? FsErrorKind::kNoSpace
                     : err == ENOENT                  ? FsErrorKind::kNotFound
                     : err == EEXIST                  ? FsErrorKind::kExists
                                                      : FsErrorKind::kIo;
  return FsError(kind, absl::StrCat(what, " ", path, ": ", strerror(err)));
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override {
    if (fd_ >= 0) close(fd_);
  }

  absl::Status PWrite(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = pwrite(fd_, data.data(), data.size(), offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "write", path_);
      }
      data.remove_prefix(n);
      offset += n;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> PRead(uint64_t offset,
                                    uint64_t length) override {
    std::string out(length, '\0');
    size_t done = 0;
    while (done < length) {
      ssize_t n = pread(fd_, out.data() + done, length - done, offset + done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "read", path_);
      }
      if (n == 0) break;
      done += n;
    }
    out.resize(done);
    return out;
  }

  absl::Status Sync() override {
    if (fdatasync(fd_) != 0) return ErrnoError(errno, "fdatasync", path_);
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      return ErrnoError(errno, "truncate", path_);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Size() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) return ErrnoError(errno, "stat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && close(fd) != 0) return ErrnoError(errno, "close", path_);
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv final : public Env {
 public:
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path,
                                             OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::kRead: flags |= O_RDONLY; break;
      case OpenMode::kCreateExclusive: flags |= O_RDWR | O_CREAT | O_EXCL; break;
      case OpenMode::kReadWrite: flags |= O_RDWR | O_CREAT; break;
      case OpenMode::kCreateExclusiveDirect:
        flags |= O_RDWR | O_CREAT | O_EXCL | O_DIRECT;
        break;
    }
    int fd = open(path.c_str(), flags, 0644);
    if (fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
      // tmpfs and some others refuse O_DIRECT; aligned writes work anyway.
      fd = open(path.c_str(), flags & ~O_DIRECT, 0644);
    }
    if (fd < 0) return ErrnoError(errno, "open", path);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoError(errno, "rename to " + to + " of", from);
    }
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& path) override {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno, "remove", path);
    }
    return absl::OkStatus();
  }

  absl::Status CreateDir(const std::string& path) override {
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError(errno, "mkdir", path);
    }
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "open directory", path);
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return ErrnoError(err, "fsync directory", path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& path) override {
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) return ErrnoError(errno, "list", path);
    std::vector<std::string> names;
    while (struct dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    closedir(dir);
    return names;
  }

  bool Exists(const std::string& path) override {
    return access(path.c_str(), F_OK) == 0;
  }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

}  // namespace cairn
