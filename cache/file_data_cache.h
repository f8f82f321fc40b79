// Between the FUSE layer and the backend: buffers file writes in memory,
// turns them into blobs and extents, and serves reads from dirty data, a
// memory cache of blob bytes, and the blob store.
//
// Promises:
// - A Read sees every Write that returned before it (dirty data overlays the
//   committed extents).
// - Flush(ino) returns when all of that file's data written before the call
//   is in blobs that are durable and committed in the namespace; Fsync also
//   makes the namespace durable (NamespaceStore::Sync). A failure of either is
//   returned, never swallowed; the data that failed stays dirty.
// - Memory is bounded: at most max_dirty_bytes of dirty data (writers wait
//   while a flush makes room) and at most read_cache_bytes of cached blob data.
// - Dirty data older than dirty_flush_seconds is flushed in the background.
//
// - With a writeback journal (options.journal): every Write is appended to the
//   journal before it returns, or (a large write past the file's first blob)
//   stored and committed in a blob, so a daemon crash loses nothing written;
//   Fsync returns once the file's records are durable in the journal (plus a
//   namespace sync, which also makes the committed blobs' records durable),
//   without waiting for journaled data to be stored. ReplayJournal, called at
//   mount before serving, restores what the namespace had not committed.
//   If the journal cannot take a write (cache disk full or failing), that
//   write goes straight to blobs instead: slower, never lost or refused.
// Without a journal, dirty data not yet flushed is lost if the daemon dies,
// and Fsync stores the file's data as blobs.
//
// Thread safety: all methods may be called concurrently; calls on one inode
// are serialised.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/clock.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "cache/blob_stream_writer.h"
#include "cache/writeback_journal.h"

namespace cairn {

struct FileDataCacheOptions {
  uint64_t max_dirty_bytes = 128ull << 20;
  uint64_t read_cache_bytes = 128ull << 20;
  int64_t dirty_flush_seconds = 5;
  // A flush whose whole file fits in this many bytes stores the data inline
  // in the namespace instead of in a blob: small files cost no blob files.
  uint64_t inline_threshold_bytes = 64 << 10;
  // The background flusher runs when true.
  bool background_threads = true;
  // Not owned; null runs without a journal.
  WritebackJournal* journal = nullptr;
  // Over this many journal bytes on disk, writers flush files so that whole
  // segments can be deleted (back-pressure, like max_dirty_bytes).
  uint64_t max_journal_bytes = 1ull << 30;
  // When written data became dirty, for dirty_flush_seconds.
  Clock* clock = Clock::Default();
  // A read-only mount: what the journal replays stays in memory (and in the
  // journal) for the next read-write mount to store; flushes and fsyncs
  // store nothing and succeed, and no file is marked damaged in the
  // namespace (ReplayStats::damaged_files still names them).
  bool read_only = false;
  // Asked before `journal_bytes` of a write are journaled and before
  // `stored_bytes` of file data are stored; when not OK, the write is
  // refused or nothing is stored (the data stays dirty and journaled): the
  // namespace's filesystem is down to the room kept for deletes
  // (backend/volume/space_reserve.h).
  std::function<absl::Status(uint64_t journal_bytes, uint64_t stored_bytes)> room_for_data;
  // For a mount without the kernel's writeback cache (a shared volume),
  // where each write of a writer waits for the one before: a write that
  // fills a blob hands the file's store to one of this many threads and
  // returns once its data is journaled, so the store (an upload) overlaps
  // the writer's next writes, and a store of several blobs sends up to
  // this many at once. Large writes are journaled rather than held for
  // their blob (no other write of the writer comes while one waits).
  // 0: the write stores, one blob after another (the kernel's writeback
  // cache sends the writer's next writes meanwhile).
  int store_threads = 0;
  // Threads loading blobs ahead of sequential readers; a mount whose blobs
  // are a round trip away (a bucket) wants more than one on local disks.
  int readahead_threads = 2;
};

class FileDataCache {
 public:
  FileDataCache(NamespaceStore& ns, BlobStore& blobs,
                const FileDataCacheOptions& options);
  ~FileDataCache();  // stops the threads; does NOT flush (call FlushAll)

  FileDataCache(const FileDataCache&) = delete;
  FileDataCache& operator=(const FileDataCache&) = delete;

  // Buffers `data` at `offset`; may block while dirty memory is at its limit.
  // kFileTooBig beyond kMaxFileBytes.
  absl::Status Write(InodeId ino, uint64_t offset, std::string_view data);

  // Up to `length` bytes at `offset`, clipped at the file size (dirty size
  // included); holes read as zeros.
  absl::StatusOr<std::string> Read(InodeId ino, uint64_t offset,
                                   uint64_t length);

  // `attr` as the namespace has it, with the size raised to cover dirty data
  // not yet committed and that data counted in allocated_bytes (st_blocks).
  // Cheap; for getattr.
  InodeAttr WithDirtySize(InodeAttr attr);
  // Whether written data of the file is held and not yet stored (a
  // read-only mount keeps what the journal replayed this way).
  bool HoldsUnstoredData(InodeId ino);
  // Whether the cache holds any state of the file: dirty data, or data
  // being stored. Takes no per-file lock, so it may be asked with the
  // namespace's lock held (the write path takes them the other way round).
  bool Tracks(InodeId ino);

  // Sets the size (truncate/extend): drops dirty data past it, flushes the
  // rest, then commits the size in the namespace with the other changes of
  // `request` (request.size must be set).
  absl::StatusOr<InodeAttr> SetAttrWithSize(InodeId ino,
                                            const SetAttrRequest& request);

  // Applies the journal's records that the namespace had not committed,
  // then stores them as blobs and deletes the replayed segments. Call once,
  // before serving.
  absl::StatusOr<WritebackJournal::ReplayStats> ReplayJournal();

  // A writer of the whole data of the empty file `ino`, front to back,
  // straight into blobs (BlobStreamWriter): no journal record, no dirty
  // memory. For a file nobody else reads or writes until the writer is
  // finished. `touch`: Finish sets mtime and ctime (see
  // BlobStreamWriter::Options::touch_clock). kReadOnly on a read-only
  // mount; kBusy if the cache holds data of the file.
  absl::StatusOr<std::unique_ptr<BlobStreamWriter>> StreamNewFile(InodeId ino, bool touch);

  absl::Status Flush(InodeId ino);
  absl::Status Fsync(InodeId ino);
  absl::Status FlushAll();  // every inode; for unmount and syncfs

  // Forgets dirty data of a file that is being deleted (no flush).
  void Discard(InodeId ino);

  // Drops blob `id` from the read cache (it was deleted; blob ids are never
  // reused, so this only gives the memory back sooner).
  void ForgetBlob(BlobId id);

  struct Stats {
    uint64_t dirty_bytes = 0;
    uint64_t read_cache_bytes = 0;
    uint64_t read_cache_hits = 0;
    uint64_t read_cache_misses = 0;
    uint64_t blobs_written = 0;  // by flushes and streams
    uint64_t streamed_bytes = 0;  // stored in blobs by streams (StreamNewFile)
    uint64_t journal_bytes = 0;
    uint64_t journal_segments = 0;
    uint64_t write_through = 0;  // writes the journal could not take
    // Bytes of large WRITEs that waited for their blob instead of a
    // journal record, and of those the bytes journaled after all (the
    // file's writes paused before a store took them).
    uint64_t large_write_bytes = 0;
    uint64_t large_write_journaled_bytes = 0;
    uint64_t ranged_reads = 0;   // random reads served without a whole blob
    uint64_t readahead_sequential_reads = 0;
    uint64_t readahead_prefetched = 0;  // blobs loaded ahead of a reader
  };
  Stats GetStats();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn
