#include "backend/volume/space_reserve.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {
namespace {

std::string Mib(uint64_t bytes) { return absl::StrCat((bytes + (1 << 19)) >> 20, " MiB"); }

std::string Amount(uint64_t bytes) {
  return bytes < (1 << 20) ? absl::StrCat((bytes + 1023) >> 10, " KiB") : Mib(bytes);
}

}  // namespace

SpaceReserve::SpaceReserve(Env* env, std::string volume_dir, Clock* clock)
    : env_(env),
      dir_(std::move(volume_dir)),
      path_(dir_ + "/" + kReserveName),
      clock_(clock) {
  if (absl::StatusOr<SpaceInfo> space = env_->StatFs(dir_); space.ok()) {
    bytes_ = std::clamp(space->capacity_bytes / 64, kMinReserveBytes, kMaxReserveBytes);
  }
  absl::StatusOr<FileInfo> info = env_->Stat(path_);
  held_ = info.ok() && info->size >= bytes_;
}

uint64_t SpaceReserve::FreeBytes() {
  absl::StatusOr<SpaceInfo> space = env_->StatFs(dir_);
  const uint64_t free_bytes = space.ok() ? space->available_bytes : UINT64_MAX;
  last_free_ = free_bytes;
  checked_nanos_ = clock_->MonotonicNanos();
  return free_bytes;
}

void SpaceReserve::Ensure() {
  absl::MutexLock lock(&mu_);
  if (held_) return;
  // Room for the reserve and the floor after it, or the reserve would
  // only move the moment data writes stop.
  if (FreeBytes() < 3 * bytes_) return;
  absl::StatusOr<std::unique_ptr<File>> file = env_->Open(path_, OpenMode::kCreateOrTruncate);
  absl::Status made = file.ok() ? (*file)->Allocate(bytes_) : file.status();
  if (made.ok()) made = (*file)->Sync();
  if (file.ok()) (*file)->Close().IgnoreError();
  if (made.ok()) made = env_->SyncDir(dir_);
  if (!made.ok()) {
    env_->Remove(path_).IgnoreError();
    LogWarning("could not keep %s of room for the namespace in %s: %s", Mib(bytes_), path_,
               made.message());
    return;
  }
  held_ = true;
  FreeBytes();
}

void SpaceReserve::Release(const std::string& why) {
  absl::MutexLock lock(&mu_);
  if (!held_) return;
  if (absl::Status s = env_->Remove(path_); !s.ok()) {
    LogError("could not free the namespace's reserve %s: %s", path_, s.message());
    return;
  }
  held_ = false;
  LogWarning("%s: freed the %s kept in %s so that deletes and the namespace's bookkeeping can "
             "go on. Written data is refused (ENOSPC) until there is room: delete files, or "
             "free space on that filesystem",
             why, Mib(bytes_), path_);
  FreeBytes();
}

void SpaceReserve::Tend() {
  uint64_t free_bytes = FreeBytes();
  const uint64_t kept = held_ ? bytes_ : 2 * bytes_;
  if (free_bytes < kept && GiveRoom(kept - free_bytes)) free_bytes = FreeBytes();
  if (held_ && free_bytes < bytes_ / 8) {
    Release(absl::StrCat("the filesystem of ", dir_, " is full (", Mib(free_bytes), " free)"));
  } else if (!held_ && free_bytes != UINT64_MAX && free_bytes >= 3 * bytes_) {
    Ensure();
  }
}

void SpaceReserve::PrepareForOpen() {
  const uint64_t free_bytes = FreeBytes();
  if (held_ && free_bytes < bytes_ / 2) {
    Release(absl::StrCat("the filesystem of ", dir_, " is full (", Mib(free_bytes), " free)"));
  }
}

void SpaceReserve::SetPlacement(const DataPlacement& placement) { placement_ = placement; }

void SpaceReserve::AddRoomGiver(RoomGiver giver) { givers_.push_back(std::move(giver)); }

bool SpaceReserve::GiveRoom(uint64_t wanted) {
  uint64_t freed = 0;
  for (const RoomGiver& giver : givers_) {
    if (freed >= wanted) break;
    freed += giver(wanted - freed);
  }
  return freed > 0;
}

absl::Status SpaceReserve::CheckRoomForData(uint64_t journal_bytes, uint64_t stored_bytes) {
  const uint64_t data_shards = std::max(placement_.data_shards, 1);
  const uint64_t shard_bytes = (stored_bytes + data_shards - 1) / data_shards;
  const uint64_t taken = (placement_.journal_here ? journal_bytes : 0) +
                         shard_bytes * static_cast<uint64_t>(std::max(placement_.shards_here, 0));
  // With the reserve file given up, its room is still the namespace's.
  const uint64_t kept = held_ ? bytes_ : 2 * bytes_;
  const bool fresh = clock_->MonotonicNanos() - checked_nanos_.load() <= 100'000'000;
  if (fresh) {
    // Take the room from the last look, so that writes between two looks
    // cannot together go past the floor.
    uint64_t free_bytes = last_free_.load();
    while (free_bytes != UINT64_MAX && free_bytes >= kept + taken) {
      if (last_free_.compare_exchange_weak(free_bytes, free_bytes - taken)) {
        return absl::OkStatus();
      }
    }
    if (free_bytes == UINT64_MAX) return absl::OkStatus();
  }
  uint64_t free_bytes = FreeBytes();
  if (free_bytes == UINT64_MAX) return absl::OkStatus();  // nothing refused on a guess
  if (free_bytes < kept + taken && GiveRoom(kept + taken - free_bytes)) free_bytes = FreeBytes();
  if (free_bytes >= kept + taken) {
    uint64_t expected = free_bytes;
    last_free_.compare_exchange_strong(expected, free_bytes - taken);
    return absl::OkStatus();
  }
  const std::string what =
      free_bytes < kept ? absl::StrCat(", less than the ", Mib(kept))
                        : absl::StrCat("; writing ", Amount(taken), " more would leave less than the ",
                                       Mib(kept));
  return FsError(FsErrorKind::kNoSpace,
                 absl::StrCat("the filesystem of ", dir_, " has ", Mib(free_bytes), " free", what,
                              " kept for the namespace: delete files or free space there"));
}

}  // namespace cairn
