// Room kept for the namespace on its filesystem, as ext4 keeps reserved
// blocks and ZFS its slop space: a volume whose disk filled up must still
// commit deletes (which free the space) and the journal's bookkeeping.
//
// Two parts. The floor: written data is not journaled or stored (the write
// fails with ENOSPC) when it would leave the namespace's filesystem with
// less than bytes() free, so the volume's own data never takes the
// namespace's last room. The reserve file VOLUME_DIR/reserve, bytes() long
// and allocated: when the filesystem fills anyway (another program, or the
// namespace itself), it is deleted and its space goes to the namespace. It
// is made again once there is room.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/base/env.h"

namespace cairn {

inline constexpr char kReserveName[] = "reserve";
inline constexpr uint64_t kMinReserveBytes = 4ull << 20;
inline constexpr uint64_t kMaxReserveBytes = 64ull << 20;

// Where a volume's written data lands, against the namespace's filesystem:
// its journal there or not, and how many of the data_shards-sized shards
// of each stored blob (blob size / data_shards each) at most.
struct DataPlacement {
  bool journal_here = true;
  int shards_here = 1;
  int data_shards = 1;
};

class SpaceReserve {
 public:
  // `volume_dir` holds the namespace and the reserve file.
  SpaceReserve(Env* env, std::string volume_dir, Clock* clock = Clock::Default());

  // 1/64 of the filesystem, between 4 and 64 MiB.
  uint64_t bytes() const { return bytes_; }
  bool held() const { return held_.load(); }

  // Makes the reserve file when it is missing and the filesystem has room
  // for it and the floor, and keeps it otherwise absent. Best effort: a
  // failure is logged and leaves the volume working without it.
  void Ensure();
  // Deletes the reserve file (logging `why`); its space is the namespace's.
  void Release(const std::string& why);
  // The daemon's periodic look: releases the reserve when less than an
  // eighth of it is left free, makes it again once three times it is.
  void Tend();
  // Before the namespace is opened: releases the reserve when less than
  // half of it is free (a log replay needs room to write).
  void PrepareForOpen();

  // Until set, every byte journaled or stored counts as written here.
  void SetPlacement(const DataPlacement& placement);

  // Something on the namespace's filesystem that can give up room (a
  // cache of blocks whose home is elsewhere): called with the bytes
  // wanted, returns the bytes it freed. Asked before written data is
  // refused and before the reserve file is given up. Added before any
  // write (not locked).
  using RoomGiver = std::function<uint64_t(uint64_t wanted)>;
  void AddRoomGiver(RoomGiver giver);

  // OK when `journal_bytes` may be appended to the writeback journal and
  // `stored_bytes` of file data stored as blobs, leaving the namespace's
  // filesystem bytes() free beyond the reserve (twice that once the
  // reserve file is given up); what they take there is counted as taken
  // until the next look at the filesystem. Else kNoSpace saying so. An OK
  // may come from a look up to 100 ms old; a refusal never does, so room
  // made by a delete counts at once.
  absl::Status CheckRoomForData(uint64_t journal_bytes, uint64_t stored_bytes);

 private:
  // Free bytes of the filesystem, looked at now; UINT64_MAX when unknown
  // (nothing is refused or released on a guess).
  uint64_t FreeBytes();
  // Asks the givers for `wanted` bytes; whether any freed some.
  bool GiveRoom(uint64_t wanted);

  Env* const env_;
  const std::string dir_;
  const std::string path_;
  Clock* const clock_;
  uint64_t bytes_ = kMinReserveBytes;
  DataPlacement placement_;  // set before any write: not locked
  std::vector<RoomGiver> givers_;  // likewise
  std::atomic<bool> held_{false};
  absl::Mutex mu_;  // one change of the file at a time
  std::atomic<int64_t> checked_nanos_{-(int64_t{1} << 62)};  // never
  // Free bytes at the last look, less what data written since took.
  std::atomic<uint64_t> last_free_{UINT64_MAX};
};

}  // namespace cairn
