// The storage fleet in a box: every blob is compressed (LZ4, when that pays),
// split into K data + M redundant shards (backend/erasure_code.h) and each
// shard written, self-describing and checksummed (backend/shard_format.h),
// to a different disk directory. Any K shards rebuild the blob, so up to M
// disks may be lost or return garbage without losing a byte.
//
// On each disk:
//   DISK/cairn-disk                    marker: volume id, this disk's index
//   DISK/shards/XX/<blob id>.shard     XX = low byte of the blob id
// Shard i of blob b lives on disk (b + i) mod N, so placement needs no table
// and a replaced disk takes over its predecessor's index.
//
// Promises beyond BlobStore's:
// - Put returns once at least min_shards_for_write() shards are durable
//   (file fdatasync + directory fsync), in parallel across disks; fewer is
//   kIo (kNoSpace when a disk is full) and the shards written are removed.
//   A blob stored without all its shards is reported to queue_repair.
// - Read verifies the chunk checksums of what it reads (and the blob's
//   CRC32C whenever it decodes a whole blob). A missing, unreadable or
//   corrupt shard is rebuilt from the others: the read still returns the
//   right bytes, the event is logged and counted and queue_repair is called.
// - A disk whose I/O fails (not merely a missing or corrupt shard) is marked
//   failed and no longer used until the next mount or a replacement.
// - Files are only written through a directory descriptor opened at mount
//   on the disk that carried this volume's marker, so a disk unmounted
//   underneath us never gets shards written into the empty mount point.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/base/env.h"
#include "backend/blob/erasure_code.h"

namespace cairn {

enum class DiskState {
  kOk,       // in use
  kMissing,  // absent or not this volume's disk at mount
  kFailed,   // I/O failed while mounted
};
const char* DiskStateName(DiskState state);

struct StripedStoreOptions {
  std::string volume_id;  // 32 hex digits, in every marker and shard
  Redundancy redundancy;
  std::vector<std::string> disks;  // configured order = disk index
  Env* env = Env::Default();
  // Env per disk where it differs from `env` (tests inject faults per disk).
  std::vector<Env*> disk_envs;
  bool compress = true;
  // Called, possibly from several threads, with a blob some of whose shards
  // need rewriting (rebuilt on read, or stored while a disk was down).
  std::function<void(BlobId)> queue_repair;
  // Write nothing: no marker is rewritten, and storing a blob fails with
  // EROFS (a read-only mount).
  bool read_only = false;
};

struct DiskInfo {
  int index = 0;
  std::string path;
  DiskState state = DiskState::kOk;
  std::string problem;  // why missing or failed
  uint64_t capacity_bytes = 0;
  uint64_t free_bytes = 0;
  uint64_t used_bytes = 0;  // by our shard files
  uint64_t shard_count = 0;
};

struct StripedStoreCounters {
  uint64_t shards_written = 0;
  uint64_t bytes_written = 0;       // shard files, headers included
  uint64_t degraded_writes = 0;     // blobs stored without every shard
  uint64_t reconstructions = 0;     // reads that had to rebuild a shard
  uint64_t checksum_failures = 0;   // shards whose data did not verify
  uint64_t missing_shards = 0;      // shards absent on a working disk
  uint64_t io_errors = 0;
  uint64_t shards_repaired = 0;
  uint64_t compressed_blobs = 0;
};

// What verifying one blob found (scrub, fsck, repair).
struct BlobCheck {
  int shards_total = 0;
  int shards_bad = 0;          // missing, unreadable or corrupt on a usable disk
  int shards_unavailable = 0;  // on a missing or failed disk
  int shards_repaired = 0;
  bool lost = false;           // fewer than K good shards: unrecoverable now
  bool absent = false;         // no shard of it anywhere (deleted meanwhile?)
  uint64_t bytes_read = 0;
  std::vector<std::string> problems;
};

class StripedBlobStore : public BlobStore {
 public:
  // Opens the disks, checking each marker. Disks that are absent, unreadable
  // or carry another volume's (or no) marker are missing; with up to M
  // missing the store opens degraded (a warning names them), with more it
  // refuses, naming each and why. Disks found at swapped paths are used by
  // the index their marker names.
  static absl::StatusOr<std::unique_ptr<StripedBlobStore>> Open(
      StripedStoreOptions options);

  // Makes `dir` (created if missing) disk `index` of `count` of a volume:
  // writes the marker durably and creates the shard directory.
  static absl::Status PrepareDisk(Env* env, const std::string& dir,
                                  const std::string& volume_id, int index, int count);

  // What the marker in `dir` says: the volume and the disk's place in it.
  // kNotFound without a marker, kIo for a damaged one.
  struct DiskIdentity {
    std::string volume_id;
    int index = 0;
    int count = 0;
  };
  static absl::StatusOr<DiskIdentity> ReadDiskIdentity(Env* env, const std::string& dir);
  // True while a store has disk `dir` open (it holds the disk's lock from
  // opening it until it closes): such a disk must never be erased.
  static absl::StatusOr<bool> DiskInUse(Env* env, const std::string& dir);

  ~StripedBlobStore() override = default;

  virtual const Redundancy& redundancy() const = 0;
  virtual std::vector<DiskInfo> Disks() = 0;
  virtual StripedStoreCounters Counters() = 0;

  // Reads and verifies every shard of `id` (and that they decode to the
  // blob's checksum; `expected_crc32c` too when given). With `repair`,
  // rewrites the bad shards that are on usable disks (temp file + rename).
  virtual BlobCheck CheckBlob(BlobId id, bool repair,
                              std::optional<uint32_t> expected_crc32c) = 0;

  // True when every disk holding a shard of `id` works, so a repair of it
  // can complete.
  virtual bool CanRepair(BlobId id) = 0;

  // The share of blobs with a shard on a disk that is not working now
  // (placement is by blob id, so this is exact up to rounding).
  virtual double DegradedShare() = 0;

  // Ids of the blobs that have shard files on disk `index`.
  virtual absl::StatusOr<std::vector<BlobId>> ListDiskIds(int index) = 0;

  // Puts `dir` (prepared with PrepareDisk for `index`) in place of disk
  // `index`: new shards go there from now on, and reads treat its missing
  // shards as bad until a rebuild (CheckBlob with repair) writes them.
  virtual absl::Status ReplaceDisk(int index, const std::string& dir) = 0;

  // Notices disks unmounted or swapped underneath (the path no longer leads
  // to the directory opened at mount): marks them failed. Restores a marker
  // deleted from a disk still in use. Cheap; call every few seconds.
  virtual void CheckDisks() = 0;
};

}  // namespace cairn
