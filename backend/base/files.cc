#include "backend/base/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode) {
  std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("create " + temp);
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) {
    errno = err;
    return Errno("write " + temp);
  }
  chmod(temp.c_str(), mode);  // whatever the umask took away
  if (rename(temp.c_str(), path.c_str()) != 0) return Errno("rename " + temp);
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return FsError(FsErrorKind::kIo, absl::StrCat("cannot read ", path));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return FsError(FsErrorKind::kIo, absl::StrCat("cannot read ", path));
  return data;
}

absl::Status WriteFileSynced(const std::string& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return FsError(FsErrorKind::kIo, absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      return FsError(err == ENOSPC ? FsErrorKind::kNoSpace : FsErrorKind::kIo,
                     absl::StrCat("cannot write ", path, ": ", strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  int synced = fsync(fd);
  close(fd);
  if (synced != 0) return FsError(FsErrorKind::kIo, absl::StrCat("cannot sync ", path));
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return FsError(FsErrorKind::kIo, absl::StrCat("cannot open ", dir, ": ", strerror(errno)));
  int rc = fsync(fd);
  int err = errno;
  close(fd);
  if (rc != 0) return FsError(FsErrorKind::kIo, absl::StrCat("cannot fsync ", dir, ": ", strerror(err)));
  return absl::OkStatus();
}

}  // namespace cairn
