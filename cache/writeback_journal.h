// The writeback journal: an append-only log of file writes on the cache
// directory, so that data the daemon holds in memory survives a crash.
//
// Every write(2) the FUSE layer hands to the cache is appended here before it
// is acknowledged. fsync makes the records durable (one fdatasync serves all
// concurrent callers). Once the flusher has stored a file's data as blobs and
// the namespace has committed it (with the file's journal mark, the highest
// sequence number it covers), the records are dead; a segment whose records
// are all dead is deleted after a namespace sync. After a crash the next
// mount replays the records the namespace had not committed.
//
// Segment file `seg-<16 hex digits>.jnl`, little-endian:
//   header (64 bytes): magic "CAIRNJNL", version u32, reserved u32,
//     segment number u64, volume id (32 ASCII hex digits), reserved u32,
//     CRC32C of the preceding 60 bytes u32
//   records, each: magic u32 "CJRC", CRC32C u32 (of everything after it,
//     data included), seq u64, inode u64, file offset u64, data length u32,
//     type u32 (1 = write; 2 = truncate: the file's size became `file
//     offset`, no data), data
// A record that is short, has a bad magic or checksum, or does not continue
// the sequence is damage (or the end a crash tore): replay goes on at the
// next intact record in the segment, found by its magic and checked by its
// checksum and sequence number, and counts what it skipped.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/env.h"
#include "backend/base/types.h"

namespace cairn {

struct JournalOptions {
  std::string dir;        // created if missing
  std::string volume_id;  // a journal of another volume is refused
  uint64_t segment_bytes = 64ull << 20;
  // Only replay (a read-only mount): the directory is not created, no
  // segment is made, removed or written; Append fails with EROFS.
  bool read_only = false;
};

struct JournalRecord {
  uint64_t seq = 0;
  InodeId ino = 0;
  uint64_t offset = 0;  // for a truncate, the new size
  bool truncate = false;
  std::string data;
  uint64_t segment = 0;
};

// A write whose journal record was damaged, as its header names it.
struct DamagedWrite {
  InodeId ino = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t seq = 0;
};

class WritebackJournal {
 public:
  // Largest data of one record; callers split bigger writes.
  static constexpr uint64_t kMaxRecordData = 4ull << 20;

  // How many segment files `dir` holds (0 if it cannot be read), without
  // opening the journal: for tools that must not touch it (fsck, mount checks).
  static uint64_t CountSegments(const std::string& dir);

  // Opens the journal in options.dir. Segments a previous run left behind are
  // kept, sealed, for Replay; new records go to a new segment and get
  // sequence numbers from `first_seq` on (the caller makes them larger than
  // any the volume has used).
  static absl::StatusOr<std::unique_ptr<WritebackJournal>> Open(
      Env* env, const JournalOptions& options, uint64_t first_seq);
  ~WritebackJournal();

  WritebackJournal(const WritebackJournal&) = delete;
  WritebackJournal& operator=(const WritebackJournal&) = delete;

  struct ReplayStats {
    uint64_t segments = 0;
    uint64_t records = 0;
    uint64_t bytes = 0;
    uint64_t damaged_segments = 0;  // holding bytes that are no intact record
    uint64_t damaged_bytes = 0;     // skipped with intact records after them
    uint64_t lost_records = 0;      // sequence numbers missing in those
    uint64_t torn_bytes = 0;        // at segment ends, nothing intact after
    // The damaged records whose headers still name their write (damage in
    // the data); the others cannot be pinned on a file.
    std::vector<DamagedWrite> damaged_writes;
    // Files that lost a write still uncommitted in the namespace (the
    // caller sets it from damaged_writes).
    std::vector<InodeId> damaged_files;
    // Replayed data the caller could not store (a full or failed disk), and
    // why: it stays dirty and journaled until it can be (the caller sets it).
    uint64_t unstored_bytes = 0;
    std::string store_error;
    uint64_t applied = 0;           // records the caller applied (set by it)
  };
  // Calls `apply` with every intact record of the segments found at Open,
  // in sequence order. Stops at the first error `apply` returns. Records the
  // caller keeps in memory must be Ref'd, or their segment may be deleted.
  absl::StatusOr<ReplayStats> Replay(
      const std::function<absl::Status(const JournalRecord&)>& apply);

  struct Appended {
    uint64_t seq = 0;
    uint64_t segment = 0;
  };
  // Appends a write record (written, not yet durable) and takes one
  // reference on its segment for the caller.
  absl::StatusOr<Appended> Append(InodeId ino, uint64_t offset,
                                  std::string_view data);
  // Appends a truncate record: the file's size set to `size`, in order with
  // its writes (a truncate is a namespace commit; replaying later writes
  // without it would show a state the file never had). Same reference.
  absl::StatusOr<Appended> AppendTruncate(InodeId ino, uint64_t size);

  // References keep a segment from being reclaimed: one per record whose
  // data is not yet committed in the namespace.
  void Ref(uint64_t segment, uint64_t count = 1);
  void Unref(uint64_t segment, uint64_t count = 1);

  // Makes every record appended before the call durable. Concurrent callers
  // share one fdatasync per segment. A failed sync is returned, and the
  // segment is marked failed: its records are never reported durable, and
  // new records go to a fresh segment.
  absl::Status Sync();
  bool SegmentFailed(uint64_t segment);

  // Sealed segments with no references. The caller makes the namespace
  // durable (the commits that dropped the references) and then removes them.
  std::vector<uint64_t> Reclaimable();
  // Seals the active segment and starts a new one, so the old one can be
  // reclaimed once its records are committed (at a clean unmount: the next
  // mount then has nothing to read).
  absl::Status Roll();
  absl::Status Remove(const std::vector<uint64_t>& segments);

  struct Stats {
    uint64_t bytes = 0;      // on disk, all segments
    uint64_t segments = 0;
    uint64_t appended_records = 0;
    uint64_t syncs = 0;      // fdatasync calls
    uint64_t sync_failures = 0;
  };
  Stats GetStats();

 private:
  class Impl;
  explicit WritebackJournal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn
