#include "tests/support/fault_env.h"

namespace cairn {

class FaultFile : public File {
 public:
  FaultFile(std::unique_ptr<File> base, FaultEnv* env, std::string path)
      : base_(std::move(base)), env_(env), path_(std::move(path)) {}

  absl::Status PWrite(uint64_t offset, std::string_view data) override {
    if (absl::Notification* gate = env_->writes_wait_for.load()) gate->WaitForNotification();
    int n = ++env_->writes;
    if (env_->fail_write_number == n || env_->fail_all_io) {
      return FsError(FsErrorKind::kIo, "injected write failure on " + path_);
    }
    int64_t left = env_->space_left.load();
    if (left >= 0) {
      if (static_cast<int64_t>(data.size()) > left) {
        // A partial write, as a full disk gives.
        base_->PWrite(offset, data.substr(0, left)).IgnoreError();
        env_->space_left = 0;
        return FsError(FsErrorKind::kNoSpace, "injected ENOSPC on " + path_);
      }
      env_->space_left -= data.size();
    }
    return base_->PWrite(offset, data);
  }
  absl::StatusOr<std::string> PRead(uint64_t offset, uint64_t length) override {
    int n = ++env_->reads;
    if (env_->fail_read_number == n || env_->fail_all_io) {
      return FsError(FsErrorKind::kIo, "injected read failure on " + path_);
    }
    return base_->PRead(offset, length);
  }
  absl::Status Sync() override {
    int n = ++env_->syncs;
    if (env_->fail_sync_number == n || env_->fail_all_io) {
      return FsError(FsErrorKind::kIo, "injected fsync failure on " + path_);
    }
    return base_->Sync();
  }
  absl::StatusOr<uint64_t> Size() override { return base_->Size(); }
  absl::Status Truncate(uint64_t size) override { return base_->Truncate(size); }
  absl::Status Close() override { return base_->Close(); }

 private:
  std::unique_ptr<File> base_;
  FaultEnv* env_;
  std::string path_;
};

absl::StatusOr<std::unique_ptr<File>> FaultEnv::Open(const std::string& path, OpenMode mode,
                                                     uint32_t permissions) {
  absl::StatusOr<std::unique_ptr<File>> file = base()->Open(path, mode, permissions);
  if (!file.ok()) return file.status();
  return std::unique_ptr<File>(new FaultFile(std::move(*file), this, path));
}

}  // namespace cairn
