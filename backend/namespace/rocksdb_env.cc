#include "backend/namespace/rocksdb_env.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "rocksdb/file_system.h"
#include "rocksdb/system_clock.h"

namespace cairn {
namespace {

using rocksdb::FileOptions;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

IOStatus ToIOStatus(const absl::Status& status) {
  if (status.ok()) return IOStatus::OK();
  const std::string message(status.message());
  if (IsNotFoundError(status)) return IOStatus::PathNotFound(message);
  if (GetFsErrorKind(status) == FsErrorKind::kNoSpace) {
    // PosixFileSystem marks ENOSPC retryable; so does this, so RocksDB meets
    // a full disk the same way whichever Env it runs on.
    IOStatus no_space = IOStatus::NoSpace(message);
    no_space.SetRetryable(true);
    return no_space;
  }
  return IOStatus::IOError(message);
}

// Where RocksDB tells "absent" from "failed" by IsNotFound (FileExists,
// GetChildren), not by the PathNotFound of the other calls.
IOStatus ToIOStatusAbsentIsNotFound(const absl::Status& status) {
  if (IsNotFoundError(status)) return IOStatus::NotFound(std::string(status.message()));
  return ToIOStatus(status);
}

class RocksSequentialFile final : public rocksdb::FSSequentialFile {
 public:
  explicit RocksSequentialFile(std::unique_ptr<File> file) : file_(std::move(file)) {}

  IOStatus Read(size_t n, const IOOptions&, Slice* result, char* scratch,
                IODebugContext*) override {
    absl::StatusOr<std::string> data = file_->PRead(offset_, n);
    if (!data.ok()) {
      *result = Slice(scratch, 0);
      return ToIOStatus(data.status());
    }
    memcpy(scratch, data->data(), data->size());
    *result = Slice(scratch, data->size());
    offset_ += data->size();
    return IOStatus::OK();
  }

  IOStatus Skip(uint64_t n) override {
    absl::StatusOr<uint64_t> size = file_->Size();
    if (!size.ok()) return ToIOStatus(size.status());
    offset_ = std::min(offset_ + n, std::max(offset_, *size));
    return IOStatus::OK();
  }

 private:
  std::unique_ptr<File> file_;
  uint64_t offset_ = 0;
};

class RocksRandomAccessFile final : public rocksdb::FSRandomAccessFile {
 public:
  explicit RocksRandomAccessFile(std::unique_ptr<File> file) : file_(std::move(file)) {}

  IOStatus Read(uint64_t offset, size_t n, const IOOptions&, Slice* result, char* scratch,
                IODebugContext*) const override {
    absl::StatusOr<std::string> data = file_->PRead(offset, n);
    if (!data.ok()) {
      *result = Slice(scratch, 0);
      return ToIOStatus(data.status());
    }
    memcpy(scratch, data->data(), data->size());
    *result = Slice(scratch, data->size());
    return IOStatus::OK();
  }

 private:
  const std::unique_ptr<File> file_;
};

// Appends at an offset of its own: cairn::File writes only where it is told.
class RocksWritableFile final : public rocksdb::FSWritableFile {
 public:
  RocksWritableFile(std::unique_ptr<File> file, uint64_t size, const FileOptions& options)
      : rocksdb::FSWritableFile(options), file_(std::move(file)), size_(size) {}

  IOStatus Append(const Slice& data, const IOOptions&, IODebugContext*) override {
    const uint64_t offset = size_.load(std::memory_order_relaxed);
    // A failed write leaves the offset where it was; RocksDB gives up on the
    // file after it anyway.
    absl::Status written = file_->PWrite(offset, std::string_view(data.data(), data.size()));
    if (!written.ok()) return ToIOStatus(written);
    size_.store(offset + data.size(), std::memory_order_relaxed);
    return IOStatus::OK();
  }

  IOStatus Truncate(uint64_t size, const IOOptions&, IODebugContext*) override {
    if (absl::Status s = file_->Truncate(size); !s.ok()) return ToIOStatus(s);
    size_.store(size, std::memory_order_relaxed);
    return IOStatus::OK();
  }

  IOStatus Close(const IOOptions&, IODebugContext*) override { return ToIOStatus(file_->Close()); }

  // cairn::File keeps no bytes of its own to push out.
  IOStatus Flush(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }

  IOStatus Sync(const IOOptions&, IODebugContext*) override { return ToIOStatus(file_->Sync()); }
  IOStatus Fsync(const IOOptions&, IODebugContext*) override { return ToIOStatus(file_->Sync()); }

  // DB::SyncWAL refuses files that say otherwise: it syncs the log while
  // writers append to it.
  bool IsSyncThreadSafe() const override { return true; }

  uint64_t GetFileSize(const IOOptions&, IODebugContext*) override {
    return size_.load(std::memory_order_relaxed);
  }

 private:
  const std::unique_ptr<File> file_;
  // Where the next append goes; read by GetFileSize from other threads.
  std::atomic<uint64_t> size_;
};

class RocksDirectory final : public rocksdb::FSDirectory {
 public:
  RocksDirectory(Env* env, std::string path) : env_(env), path_(std::move(path)) {}

  IOStatus Fsync(const IOOptions&, IODebugContext*) override {
    return ToIOStatus(env_->SyncDir(path_));
  }
  IOStatus Close(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }

 private:
  Env* const env_;
  const std::string path_;
};

class RocksFileLock final : public rocksdb::FileLock {
 public:
  explicit RocksFileLock(std::unique_ptr<cairn::FileLock> lock) : lock_(std::move(lock)) {}

 private:
  std::unique_ptr<cairn::FileLock> lock_;
};

// RocksDB's info log, as lines of cairn's log.
class InfoLog final : public rocksdb::Logger {
 public:
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    Write(level, format, ap);
  }

 private:
  static void Write(rocksdb::InfoLogLevel level, const char* format, va_list ap) {
    if (!LogEnabled(LogLevel::kDebug)) return;
    static const char* const kLevelNames[] = {"debug", "info", "warning", "error", "fatal",
                                              "header"};
    const size_t index = static_cast<size_t>(level);
    std::string line = absl::StrCat(
        "rocksdb ", index < std::size(kLevelNames) ? kLevelNames[index] : "?", ": ");
    const size_t prefix = line.size();
    char buffer[512];
    va_list copy;
    va_copy(copy, ap);
    const int length = vsnprintf(buffer, sizeof(buffer), format, copy);
    va_end(copy);
    if (length < 0) return;
    if (static_cast<size_t>(length) < sizeof(buffer)) {
      line.append(buffer, length);
    } else {
      line.resize(prefix + length + 1);
      va_copy(copy, ap);
      vsnprintf(line.data() + prefix, length + 1, format, copy);
      va_end(copy);
      line.resize(prefix + length);
    }
    LogLine(LogLevel::kDebug, line);
  }
};

class CairnFileSystem final : public rocksdb::FileSystem {
 public:
  explicit CairnFileSystem(Env* env) : env_(env) {}

  const char* Name() const override { return "CairnFileSystem"; }

  IOStatus NewSequentialFile(const std::string& fname, const FileOptions&,
                             std::unique_ptr<rocksdb::FSSequentialFile>* result,
                             IODebugContext*) override {
    absl::StatusOr<std::unique_ptr<File>> file = env_->Open(fname, OpenMode::kRead);
    if (!file.ok()) return ToIOStatus(file.status());
    *result = std::make_unique<RocksSequentialFile>(std::move(*file));
    return IOStatus::OK();
  }

  IOStatus NewRandomAccessFile(const std::string& fname, const FileOptions&,
                               std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                               IODebugContext*) override {
    absl::StatusOr<std::unique_ptr<File>> file = env_->Open(fname, OpenMode::kRead);
    if (!file.ok()) return ToIOStatus(file.status());
    *result = std::make_unique<RocksRandomAccessFile>(std::move(*file));
    return IOStatus::OK();
  }

  IOStatus NewWritableFile(const std::string& fname, const FileOptions& options,
                           std::unique_ptr<rocksdb::FSWritableFile>* result,
                           IODebugContext*) override {
    absl::StatusOr<std::unique_ptr<File>> file = env_->Open(fname, OpenMode::kCreateOrTruncate);
    if (!file.ok()) return ToIOStatus(file.status());
    *result = std::make_unique<RocksWritableFile>(std::move(*file), 0, options);
    return IOStatus::OK();
  }

  IOStatus ReopenWritableFile(const std::string& fname, const FileOptions& options,
                              std::unique_ptr<rocksdb::FSWritableFile>* result,
                              IODebugContext*) override {
    absl::StatusOr<std::unique_ptr<File>> file = env_->Open(fname, OpenMode::kReadWrite);
    if (!file.ok()) return ToIOStatus(file.status());
    absl::StatusOr<uint64_t> size = (*file)->Size();
    if (!size.ok()) return ToIOStatus(size.status());
    *result = std::make_unique<RocksWritableFile>(std::move(*file), *size, options);
    return IOStatus::OK();
  }

  // A recycled log is overwritten from its start, not emptied first, as
  // PosixFileSystem does: its reader tells old records from new ones.
  IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                             const FileOptions& options,
                             std::unique_ptr<rocksdb::FSWritableFile>* result,
                             IODebugContext*) override {
    if (absl::Status s = env_->Rename(old_fname, fname); !s.ok()) return ToIOStatus(s);
    absl::StatusOr<std::unique_ptr<File>> file = env_->Open(fname, OpenMode::kReadWrite);
    if (!file.ok()) return ToIOStatus(file.status());
    *result = std::make_unique<RocksWritableFile>(std::move(*file), 0, options);
    return IOStatus::OK();
  }

  IOStatus NewDirectory(const std::string& name, const IOOptions&,
                        std::unique_ptr<rocksdb::FSDirectory>* result,
                        IODebugContext*) override {
    absl::StatusOr<FileInfo> info = env_->Stat(name);
    if (!info.ok()) return ToIOStatus(info.status());
    if (!info->is_directory) return IOStatus::IOError(absl::StrCat(name, " is not a directory"));
    *result = std::make_unique<RocksDirectory>(env_, name);
    return IOStatus::OK();
  }

  IOStatus FileExists(const std::string& fname, const IOOptions&, IODebugContext*) override {
    return ToIOStatusAbsentIsNotFound(env_->Stat(fname).status());
  }

  IOStatus GetChildren(const std::string& dir, const IOOptions&,
                       std::vector<std::string>* result, IODebugContext*) override {
    absl::StatusOr<std::vector<std::string>> names = env_->ListDir(dir);
    if (!names.ok()) return ToIOStatusAbsentIsNotFound(names.status());
    *result = std::move(*names);
    return IOStatus::OK();
  }

  IOStatus DeleteFile(const std::string& fname, const IOOptions&, IODebugContext*) override {
    return ToIOStatus(env_->Remove(fname));
  }

  IOStatus CreateDir(const std::string& dirname, const IOOptions&, IODebugContext*) override {
    // Env::CreateDir accepts an existing directory; RocksDB's contract does
    // not (a checkpoint relies on it to notice a leftover).
    if (env_->Exists(dirname)) return IOStatus::IOError(absl::StrCat(dirname, " exists"));
    return ToIOStatus(env_->CreateDir(dirname));
  }

  IOStatus CreateDirIfMissing(const std::string& dirname, const IOOptions& options,
                              IODebugContext* dbg) override {
    if (absl::Status s = env_->CreateDir(dirname); !s.ok()) return ToIOStatus(s);
    bool is_directory = false;
    if (IOStatus s = IsDirectory(dirname, options, &is_directory, dbg); !s.ok()) return s;
    if (!is_directory) return IOStatus::IOError(absl::StrCat(dirname, " is not a directory"));
    return IOStatus::OK();
  }

  IOStatus DeleteDir(const std::string& dirname, const IOOptions&, IODebugContext*) override {
    return ToIOStatus(env_->RemoveDir(dirname));
  }

  IOStatus GetFileSize(const std::string& fname, const IOOptions&, uint64_t* file_size,
                       IODebugContext*) override {
    absl::StatusOr<FileInfo> info = env_->Stat(fname);
    if (!info.ok()) return ToIOStatus(info.status());
    *file_size = info->size;
    return IOStatus::OK();
  }

  IOStatus GetFileModificationTime(const std::string& fname, const IOOptions&,
                                   uint64_t* file_mtime, IODebugContext*) override {
    absl::StatusOr<FileInfo> info = env_->Stat(fname);
    if (!info.ok()) return ToIOStatus(info.status());
    *file_mtime = static_cast<uint64_t>(info->modified_sec);
    return IOStatus::OK();
  }

  IOStatus RenameFile(const std::string& src, const std::string& target, const IOOptions&,
                      IODebugContext*) override {
    return ToIOStatus(env_->Rename(src, target));
  }

  IOStatus LinkFile(const std::string& src, const std::string& target, const IOOptions&,
                    IODebugContext*) override {
    return ToIOStatus(env_->Link(src, target));
  }

  IOStatus AreFilesSame(const std::string& first, const std::string& second, const IOOptions&,
                        bool* same, IODebugContext*) override {
    absl::StatusOr<FileInfo> a = env_->Stat(first);
    if (!a.ok()) return ToIOStatus(a.status());
    absl::StatusOr<FileInfo> b = env_->Stat(second);
    if (!b.ok()) return ToIOStatus(b.status());
    *same = a->device == b->device && a->inode == b->inode;
    return IOStatus::OK();
  }

  IOStatus LockFile(const std::string& fname, const IOOptions&, rocksdb::FileLock** lock,
                    IODebugContext*) override {
    *lock = nullptr;
    absl::StatusOr<std::unique_ptr<cairn::FileLock>> held = env_->LockFile(fname);
    if (!held.ok()) return ToIOStatus(held.status());
    *lock = new RocksFileLock(std::move(*held));
    return IOStatus::OK();
  }

  IOStatus UnlockFile(rocksdb::FileLock* lock, const IOOptions&, IODebugContext*) override {
    delete static_cast<RocksFileLock*>(lock);
    return IOStatus::OK();
  }

  IOStatus GetTestDirectory(const IOOptions&, std::string* path, IODebugContext*) override {
    *path = absl::StrCat("/tmp/cairn-rocksdb-test-", geteuid());
    return ToIOStatus(env_->CreateDir(*path));
  }

  IOStatus NewLogger(const std::string&, const IOOptions&,
                     std::shared_ptr<rocksdb::Logger>* result, IODebugContext*) override {
    *result = std::make_shared<InfoLog>();
    return IOStatus::OK();
  }

  IOStatus GetAbsolutePath(const std::string& db_path, const IOOptions&,
                           std::string* output_path, IODebugContext*) override {
    if (!db_path.empty() && db_path[0] == '/') {
      *output_path = db_path;
      return IOStatus::OK();
    }
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) {
      return IOStatus::IOError(absl::StrCat("getcwd: ", strerror(errno)));
    }
    *output_path = absl::StrCat(cwd, "/", db_path);
    return IOStatus::OK();
  }

  IOStatus GetFreeSpace(const std::string& path, const IOOptions&, uint64_t* free_bytes,
                        IODebugContext*) override {
    absl::StatusOr<SpaceInfo> space = env_->StatFs(path);
    if (!space.ok()) return ToIOStatus(space.status());
    *free_bytes = space->available_bytes;
    return IOStatus::OK();
  }

  IOStatus IsDirectory(const std::string& path, const IOOptions&, bool* is_dir,
                       IODebugContext*) override {
    absl::StatusOr<FileInfo> info = env_->Stat(path);
    if (!info.ok()) return ToIOStatus(info.status());
    *is_dir = info->is_directory;
    return IOStatus::OK();
  }

 private:
  Env* const env_;
};

class CairnSystemClock final : public rocksdb::SystemClock {
 public:
  explicit CairnSystemClock(Clock* clock) : clock_(clock) {}

  const char* Name() const override { return "CairnSystemClock"; }

  // Wall time, as PosixClock's gettimeofday: RocksDB stores it in files and
  // adds timeouts to it.
  uint64_t NowMicros() override { return static_cast<uint64_t>(absl::ToUnixMicros(clock_->Now())); }
  // For durations only, so the monotonic clock.
  uint64_t NowNanos() override { return static_cast<uint64_t>(clock_->MonotonicNanos()); }
  void SleepForMicroseconds(int micros) override { clock_->SleepFor(absl::Microseconds(micros)); }
  rocksdb::Status GetCurrentTime(int64_t* unix_time) override {
    *unix_time = clock_->NowSeconds();
    return rocksdb::Status::OK();
  }
  std::string TimeToString(uint64_t unix_seconds) override {
    return absl::FormatTime("%Y/%m/%d-%H:%M:%S",
                            absl::FromUnixSeconds(static_cast<int64_t>(unix_seconds)),
                            absl::LocalTimeZone());
  }

 private:
  Clock* const clock_;
};

// NewCompositeEnv(fs) supplies the rest of an Env (threads, host name) but
// takes no clock in 7.8, and the composite class that does is not
// installed; so the clock is put in here, and the Env-level time calls that
// EnvWrapper would send to Env::Default()'s clock are sent to it too.
class CairnRocksEnv final : public rocksdb::EnvWrapper {
 public:
  CairnRocksEnv(const std::shared_ptr<rocksdb::FileSystem>& fs,
                const std::shared_ptr<rocksdb::SystemClock>& clock)
      : rocksdb::EnvWrapper(rocksdb::NewCompositeEnv(fs)) {
    file_system_ = fs;
    system_clock_ = clock;
  }

  const char* Name() const override { return "CairnRocksEnv"; }

  uint64_t NowMicros() override { return system_clock_->NowMicros(); }
  uint64_t NowNanos() override { return system_clock_->NowNanos(); }
  uint64_t NowCPUNanos() override { return system_clock_->CPUNanos(); }
  void SleepForMicroseconds(int micros) override { system_clock_->SleepForMicroseconds(micros); }
  rocksdb::Status GetCurrentTime(int64_t* unix_time) override {
    return system_clock_->GetCurrentTime(unix_time);
  }
  std::string TimeToString(uint64_t time) override { return system_clock_->TimeToString(time); }
};

}  // namespace

std::unique_ptr<rocksdb::Env> NewRocksDbEnv(Env* env, Clock* clock) {
  return std::make_unique<CairnRocksEnv>(std::make_shared<CairnFileSystem>(env),
                                         std::make_shared<CairnSystemClock>(clock));
}

}  // namespace cairn
