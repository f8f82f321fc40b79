// An Env that fails on command, for durability tests: the Nth read, write or
// sync fails, every I/O fails, or writes run out of space after a byte
// budget. Everything else
// passes through to the wrapped Env.
#pragma once

#include <atomic>
#include <memory>

#include "absl/synchronization/notification.h"
#include "backend/base/env_wrapper.h"
#include "backend/base/fs_error.h"

namespace cairn {

class FaultEnv : public EnvWrapper {
 public:
  explicit FaultEnv(Env* base) : EnvWrapper(base) {}

  // 0 = never. Counted over all files from now on.
  std::atomic<int> fail_write_number{0};
  std::atomic<int> fail_sync_number{0};
  std::atomic<int> fail_read_number{0};
  // Every read, write and fsync fails with EIO (a disk that died).
  std::atomic<bool> fail_all_io{false};
  // Bytes that may still be written before ENOSPC; negative = unlimited.
  std::atomic<int64_t> space_left{-1};
  // While set, every write waits for it (a disk that stalls).
  std::atomic<absl::Notification*> writes_wait_for{nullptr};

  std::atomic<int> writes{0};
  std::atomic<int> syncs{0};
  std::atomic<int> reads{0};

  absl::StatusOr<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode,
                                             uint32_t permissions) override;

 private:
  friend class FaultFile;
};

}  // namespace cairn
