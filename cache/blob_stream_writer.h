// Writes a new file's data front to back straight into blobs, without the
// write cache: each kMaxBlobBytes of it is stored as one blob (durable and
// checksummed by the blob store) and committed as the file's extent while
// the next is still coming in. Nothing goes to the writeback journal or
// into dirty memory, so every byte reaches the disk once. For a writer that
// knows it writes a whole file that nobody else reads or writes meanwhile:
// the S3 frontend's nameless file of a PUT or a part.
//
// Promises:
// - When Finish returns OK, every byte appended is in blobs that are durable
//   and committed as the file's extents (the namespace commits are not
//   synced: the caller syncs, as FileSystem::Publish does). A commit names
//   only blobs already durable.
// - Memory is bounded: the blob being filled plus at most
//   Options::stores_in_flight blobs being stored, whatever the file's size.
// - A writer destroyed without a successful Finish (the body was cut short,
//   or failed its checksum) commits nothing more: a blob stored but not yet
//   committed is deleted, and what was committed belongs to the file, freed
//   with it (its blobs go to the collector).
// - A failed store is returned by the next Append or by Finish; the writer
//   is then broken and only good for destroying.
// It does not: let anyone read the file consistently before Finish, or
// write at any offset but the end.
//
// Thread safety: one caller at a time; stores run on threads of the writer.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/base/large_buffer.h"
#include "backend/blob/blob_store.h"
#include "backend/namespace/namespace_store.h"

namespace cairn {

class BlobStreamWriter {
 public:
  struct Options {
    // A file whose whole data fits in this many bytes is stored inline in
    // the namespace, as the write cache's flush stores it.
    uint64_t inline_threshold_bytes = 64 << 10;
    // Blobs being stored at once (each on its own thread) while the next
    // fills: the overlap of receiving and storing.
    int stores_in_flight = 2;
    // When set and not OK, nothing more is stored (see FileDataCacheOptions).
    std::function<absl::Status(uint64_t journal_bytes, uint64_t stored_bytes)> room_for_data;
    // Called with the length of each blob stored (counts).
    std::function<void(uint64_t bytes)> on_blob_stored;
    // When set, Finish sets the file's mtime and ctime to its time: the
    // write's own time, as FileSystem::Write sets it without the kernel's
    // writeback cache.
    Clock* touch_clock = nullptr;
  };
  // `ino`: an empty regular file. The parts must outlive the writer.
  BlobStreamWriter(NamespaceStore& ns, BlobStore& blobs, InodeId ino, Options options);
  // Waits for the stores under way; see the promises for what stays.
  ~BlobStreamWriter();

  BlobStreamWriter(const BlobStreamWriter&) = delete;
  BlobStreamWriter& operator=(const BlobStreamWriter&) = delete;

  // Appends `data` at the end of the file; hands each full blob to a store,
  // waiting while Options::stores_in_flight are under way.
  absl::Status Append(std::string_view data);
  // Stores what is left and waits until every byte is committed.
  absl::Status Finish();

  uint64_t size() const { return appended_; }

 private:
  struct Piece {
    uint64_t file_offset = 0;
    LargeBuffer buffer;
    uint64_t length = 0;
  };
  // Hands the filling blob to a store thread.
  absl::Status Submit();
  void StoreLoop();
  // Stores one blob and commits it as the file's extent.
  absl::Status Store(const Piece& piece);
  absl::Status FirstError();

  NamespaceStore& ns_;
  BlobStore& blobs_;
  const InodeId ino_;
  const Options options_;
  Piece filling_;
  uint64_t appended_ = 0;
  bool finished_ = false;
  std::vector<std::thread> threads_;  // started with the first full blob

  absl::Mutex mu_;
  std::deque<Piece> queued_ ABSL_GUARDED_BY(mu_);
  int storing_ ABSL_GUARDED_BY(mu_) = 0;
  // Buffers stored and free for the next blob (at most one per thread).
  std::vector<LargeBuffer> spare_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  // Set by the destructor (or Finish): the threads exit once idle; when
  // abandoned, a blob stored is deleted instead of committed.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cairn
