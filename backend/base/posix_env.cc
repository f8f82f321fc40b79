// Env::Default(): the real files, through POSIX calls.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "backend/base/env.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

absl::Status PathError(int err, const std::string& what, const std::string& path) {
  return ErrnoError(err, absl::StrCat(what, " ", path));
}

FileInfo InfoOf(const struct stat& st) {
  FileInfo info;
  info.is_directory = S_ISDIR(st.st_mode);
  info.is_regular = S_ISREG(st.st_mode);
  info.is_symlink = S_ISLNK(st.st_mode);
  info.size = static_cast<uint64_t>(st.st_size);
  info.permissions = st.st_mode & 07777;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.device = st.st_dev;
  info.inode = st.st_ino;
  info.modified_sec = st.st_mtim.tv_sec;
  return info;
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd() const { return fd_; }
  ~PosixFile() override {
    if (fd_ >= 0) close(fd_);
  }

  absl::Status PWrite(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PathError(errno, "write", path_);
      }
      data.remove_prefix(n);
      offset += n;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> PRead(uint64_t offset, uint64_t length) override {
    std::string out(length, '\0');
    size_t done = 0;
    while (done < length) {
      ssize_t n = pread(fd_, out.data() + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PathError(errno, "read", path_);
      }
      if (n == 0) break;
      done += n;
    }
    out.resize(done);
    return out;
  }

  absl::Status Sync() override {
    if (fdatasync(fd_) != 0) return PathError(errno, "fdatasync", path_);
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return PathError(errno, "truncate", path_);
    return absl::OkStatus();
  }

  absl::Status Allocate(uint64_t length) override {
    int err = posix_fallocate(fd_, 0, static_cast<off_t>(length));
    if (err == EOPNOTSUPP || err == EINVAL) return File::Allocate(length);
    if (err != 0) return PathError(err, "allocate", path_);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Size() override {
    struct stat st;
    if (fstat(fd_, &st) != 0) return PathError(errno, "stat", path_);
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && close(fd) != 0) return PathError(errno, "close", path_);
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(std::unique_ptr<File> file) : file_(std::move(file)) {}
  // Closing the descriptor releases the flock.
  File& file() override { return *file_; }

 private:
  std::unique_ptr<File> file_;
};

class PosixDirectory final : public Directory {
 public:
  PosixDirectory(int fd, const FileInfo& info)
      : fd_(fd), path_(absl::StrCat("/proc/self/fd/", fd)), info_(info) {}
  ~PosixDirectory() override { close(fd_); }
  const std::string& path() const override { return path_; }
  const FileInfo& info() const override { return info_; }

 private:
  const int fd_;
  const std::string path_;
  const FileInfo info_;
};

class PosixEnv final : public Env {
 public:
  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode,
                                             uint32_t permissions) override {
    // Never through a symlink: see the promise in env.h.
    int flags = O_CLOEXEC | O_NOFOLLOW;
    switch (mode) {
      case OpenMode::kRead: flags |= O_RDONLY; break;
      case OpenMode::kWriteExisting: flags |= O_WRONLY; break;
      case OpenMode::kReadWrite: flags |= O_RDWR | O_CREAT; break;
      case OpenMode::kCreateOrTruncate: flags |= O_RDWR | O_CREAT | O_TRUNC; break;
      case OpenMode::kCreateExclusive: flags |= O_RDWR | O_CREAT | O_EXCL; break;
      case OpenMode::kCreateExclusiveDirect:
        flags |= O_RDWR | O_CREAT | O_EXCL | O_DIRECT;
        break;
    }
    int fd = open(path.c_str(), flags, permissions);
    if (fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
      // tmpfs and some others refuse O_DIRECT; aligned writes work anyway.
      fd = open(path.c_str(), flags & ~O_DIRECT, permissions);
    }
    if (fd < 0) return PathError(errno, "open", path);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (rename(from.c_str(), to.c_str()) != 0) {
      return PathError(errno, "rename to " + to + " of", from);
    }
    return absl::OkStatus();
  }

  absl::Status Link(const std::string& existing, const std::string& new_path) override {
    if (link(existing.c_str(), new_path.c_str()) != 0) {
      return PathError(errno, "link to " + new_path + " of", existing);
    }
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& path) override {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return PathError(errno, "remove", path);
    return absl::OkStatus();
  }

  absl::Status SetPermissions(const std::string& path, uint32_t permissions) override {
    if (chmod(path.c_str(), permissions) != 0) return PathError(errno, "chmod", path);
    return absl::OkStatus();
  }

  absl::Status SetModifiedTime(const std::string& path, int64_t unix_seconds) override {
    struct timespec times[2];
    times[0].tv_sec = 0;
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_sec = unix_seconds;
    times[1].tv_nsec = 0;
    if (utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) return PathError(errno, "utimensat", path);
    return absl::OkStatus();
  }

  absl::Status CreateDir(const std::string& path, uint32_t permissions) override {
    if (mkdir(path.c_str(), permissions) != 0 && errno != EEXIST) {
      return PathError(errno, "mkdir", path);
    }
    return absl::OkStatus();
  }

  absl::Status RemoveDir(const std::string& path) override {
    if (rmdir(path.c_str()) != 0 && errno != ENOENT) return PathError(errno, "rmdir", path);
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PathError(errno, "open directory", path);
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return PathError(err, "fsync directory", path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) return PathError(errno, "list", path);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    int err = errno;
    closedir(dir);
    if (err != 0) return PathError(err, "list", path);
    return names;
  }

  absl::StatusOr<std::unique_ptr<Directory>> OpenDirectory(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PathError(errno, "open directory", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return PathError(err, "stat", path);
    }
    return std::unique_ptr<Directory>(new PosixDirectory(fd, InfoOf(st)));
  }

  absl::StatusOr<FileInfo> Stat(const std::string& path, bool follow_symlinks) override {
    struct stat st;
    int rc = follow_symlinks ? stat(path.c_str(), &st) : lstat(path.c_str(), &st);
    if (rc != 0) return PathError(errno, "stat", path);
    return InfoOf(st);
  }

  bool Exists(const std::string& path) override { return access(path.c_str(), F_OK) == 0; }

  absl::StatusOr<SpaceInfo> StatFs(const std::string& path) override {
    struct statvfs vfs;
    if (statvfs(path.c_str(), &vfs) != 0) return PathError(errno, "statvfs", path);
    SpaceInfo space;
    space.capacity_bytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    space.available_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    return space;
  }

  absl::Status SyncFilesystem(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PathError(errno, "open", path);
    int rc = syncfs(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return PathError(err, "syncfs", path);
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path,
                                                     uint32_t permissions) override {
    absl::StatusOr<std::unique_ptr<File>> file = Open(path, OpenMode::kReadWrite, permissions);
    if (!file.ok()) return file.status();
    int fd = Descriptor(**file);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) return PathError(errno, "lock", path);
    return std::unique_ptr<FileLock>(new PosixFileLock(std::move(*file)));
  }

  absl::StatusOr<bool> IsLocked(const std::string& path) override {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return false;
      return PathError(errno, "open", path);
    }
    bool locked = false;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
      flock(fd, LOCK_UN);
    } else if (errno == EWOULDBLOCK) {
      locked = true;
    } else {
      int err = errno;
      close(fd);
      return PathError(err, "lock", path);
    }
    close(fd);
    return locked;
  }

 private:
  static int Descriptor(File& file) { return static_cast<PosixFile&>(file).fd(); }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv env;
  return &env;
}

}  // namespace cairn
