// An Env that passes every call to another: the base of Envs that change a
// few calls (fault injection, counting) and leave the rest alone.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/base/env.h"

namespace cairn {

class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* base) : base_(base) {}
  Env* base() const { return base_; }

  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode,
                                             uint32_t permissions) override {
    return base_->Open(path, mode, permissions);
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    return base_->Rename(from, to);
  }
  absl::Status Link(const std::string& existing, const std::string& new_path) override {
    return base_->Link(existing, new_path);
  }
  absl::Status Remove(const std::string& path) override { return base_->Remove(path); }
  absl::Status SetPermissions(const std::string& path, uint32_t permissions) override {
    return base_->SetPermissions(path, permissions);
  }
  absl::Status SetModifiedTime(const std::string& path, int64_t unix_seconds) override {
    return base_->SetModifiedTime(path, unix_seconds);
  }
  absl::Status CreateDir(const std::string& path, uint32_t permissions) override {
    return base_->CreateDir(path, permissions);
  }
  absl::Status RemoveDir(const std::string& path) override { return base_->RemoveDir(path); }
  absl::Status SyncDir(const std::string& path) override { return base_->SyncDir(path); }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }
  absl::StatusOr<std::unique_ptr<Directory>> OpenDirectory(const std::string& path) override {
    return base_->OpenDirectory(path);
  }
  absl::StatusOr<FileInfo> Stat(const std::string& path, bool follow_symlinks) override {
    return base_->Stat(path, follow_symlinks);
  }
  bool Exists(const std::string& path) override { return base_->Exists(path); }
  absl::StatusOr<SpaceInfo> StatFs(const std::string& path) override {
    return base_->StatFs(path);
  }
  absl::Status SyncFilesystem(const std::string& path) override {
    return base_->SyncFilesystem(path);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(const std::string& path,
                                                     uint32_t permissions) override {
    return base_->LockFile(path, permissions);
  }
  absl::StatusOr<bool> IsLocked(const std::string& path) override {
    return base_->IsLocked(path);
  }

 private:
  Env* const base_;
};

}  // namespace cairn
