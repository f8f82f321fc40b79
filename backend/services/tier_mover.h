// TierMover moves one blob at a time between the local disks and the remote
// tier, in an order a crash can interrupt anywhere without losing data:
//   out: upload (server checks the CRC32C) -> read back and verify whole ->
//        commit kFreeing (synced) -> free the local shards -> commit kRemote
//   in:  read the remote copy (verified) -> store it locally -> commit kBoth
// No local data is freed before its remote copy is verified and committed;
// a crash after the commit leaves local shards that FinishFreeing deletes.
// Remote objects are deleted only by garbage collection of blobs no file
// references, and (by fsck --repair) objects no blob record claims.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class TierMover {
 public:
  TierMover(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote);

  // Moves blob `id` to the remote tier (no-op if it is there already).
  absl::Status MoveOut(BlobId id);
  // Brings blob `id` back to the local disks, keeping the remote copy.
  // Refused (kNoSpace, the blob left in the tier) when the room check says
  // the local copy would take room the namespace keeps.
  absl::Status MoveIn(BlobId id);
  // Whether `bytes` of blob data may be stored locally (the volume's
  // SpaceReserve::CheckRoomForData); set before any move.
  void SetRoomCheck(std::function<absl::Status(uint64_t bytes)> check) {
    room_check_ = std::move(check);
  }
  // Frees the local shards of blobs a crash left in kFreeing. Returns how
  // many it finished.
  absl::StatusOr<uint64_t> FinishFreeing();

  struct Stats {
    uint64_t moved_out = 0, moved_out_bytes = 0;
    uint64_t moved_in = 0, moved_in_bytes = 0;
    uint64_t errors = 0;
  };
  Stats GetStats();

 private:
  NamespaceStore& ns_;
  BlobStore& local_;
  RemoteBlobStore& remote_;
  std::function<absl::Status(uint64_t bytes)> room_check_;
  std::atomic<uint64_t> moved_out_{0}, moved_out_bytes_{0}, moved_in_{0}, moved_in_bytes_{0},
      errors_{0};
};

}  // namespace cairn
