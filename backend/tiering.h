// The remote tier: cold blobs move to an S3 bucket and come back when read.
//
// TieredBlobStore is the BlobStore the cache sees on a volume with a [tier]:
// new blobs go to the local disks; reads go where the namespace says the
// blob is (BlobLocation), falling back to the remote copy when a local one
// fails; garbage collection deletes the remote object too.
//
// TierMover moves one blob at a time, in an order a crash can interrupt
// anywhere without losing data:
//   out: upload (server checks the CRC32C) -> read back and verify whole ->
//        commit kFreeing (synced) -> free the local shards -> commit kRemote
//   in:  read the remote copy (verified) -> store it locally -> commit kBoth
// No local data is freed before its remote copy is verified and committed;
// a crash after the commit leaves local shards that FinishFreeing deletes.
// Remote objects are deleted only by garbage collection of blobs no file
// references, and (by fsck --repair) objects no blob record claims.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/disk_block_cache.h"
#include "backend/namespace/file_location.h"
#include "backend/namespace/namespace_store.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/s3/s3_client.h"
#include "backend/volume.h"

namespace cairn {

// The S3 client options for `tier`: endpoint, bucket, addressing (auto:
// virtual-hosted for AWS endpoints, path style elsewhere) and credentials
// (the config, the environment, a credentials file; `config_path` is
// cairn.toml, whose mode is checked when it holds a secret).
absl::StatusOr<s3::S3Options> TierS3Options(const TierConfig& tier,
                                            const std::string& config_path);
// The same for any bucket of cairn's (the replica's), with the client's
// default retry limits.
absl::StatusOr<s3::S3Options> S3TargetOptions(const S3Target& target,
                                              const std::string& config_path);

// Remote data is read and cached in blocks of this size: a random read of
// a few bytes costs one GET of at most this much, a sequential one GETs a
// whole blob's missing blocks at once.
inline constexpr uint64_t kRemoteBlockBytes = 1 << 20;

// Asks the remote for one short listing under the volume's prefix, giving
// up after about `seconds` (one attempt): OK, or the error that says what to
// check (unreachable, wrong credentials, no such bucket). For the warning
// a mount prints; nothing depends on it.
absl::Status ProbeRemote(const TierConfig& tier, const std::string& config_path,
                         const std::string& volume_id, int seconds);

class TieredBlobStore : public BlobStore {
 public:
  // `block_cache` (may be null) keeps the remote blocks read on local disk,
  // so reading a tiered file again does not go to the remote.
  TieredBlobStore(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote,
                  DiskBlockCache* block_cache = nullptr);

  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override;
  absl::StatusOr<std::string> Read(BlobId id, uint64_t offset, uint64_t length) override;
  absl::Status Delete(BlobId id) override;
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override;
  absl::StatusOr<StoreUsage> Usage() override;

  struct Stats {
    uint64_t remote_reads = 0;
    uint64_t remote_read_bytes = 0;
    uint64_t remote_read_errors = 0;
    uint64_t local_fallbacks = 0;  // local copy failed, remote served
    uint64_t cache_hits = 0;       // remote blocks served from the disk cache
    uint64_t cache_bytes = 0;      // held by the disk cache
  };
  Stats GetStats();
  // The figures above as JSON members (no braces), for stats.json.
  std::string StatsJsonFields();

 private:
  absl::StatusOr<std::string> ReadRemote(BlobId id, const std::optional<BlobRecord>& record,
                                         uint64_t offset, uint64_t length);

  NamespaceStore& ns_;
  BlobStore& local_;
  RemoteBlobStore& remote_;
  DiskBlockCache* const block_cache_;
  std::atomic<uint64_t> remote_reads_{0}, remote_read_bytes_{0}, remote_read_errors_{0},
      local_fallbacks_{0};
};

class TierMover {
 public:
  TierMover(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote);

  // Moves blob `id` to the remote tier (no-op if it is there already).
  absl::Status MoveOut(BlobId id);
  // Brings blob `id` back to the local disks, keeping the remote copy.
  absl::Status MoveIn(BlobId id);
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
  std::atomic<uint64_t> moved_out_{0}, moved_out_bytes_{0}, moved_in_{0}, moved_in_bytes_{0},
      errors_{0};
};


// Blobs moved at once: each move is a few requests in a row (upload, read
// back; or one read), so several in flight keep the link busy; the S3
// client keeps this many connections.
inline constexpr int kParallelMoves = 8;

// The policy, run by the daemon in the background: blobs of files not used
// (read, written or changed) for cold_after_seconds move out, and while the
// local disks are fuller than the high watermark the coldest move out until
// below the low one. Files with the xattr user.cairn.pin never move.
class TieringService {
 public:
  struct Options {
    int64_t pass_interval_seconds = 30;
    bool background = true;  // false: only RunPass and the file moves
  };
  TieringService(NamespaceStore& ns, BlobStore& local, TierMover& mover, TierConfig config,
                 Options options);
  ~TieringService();

  struct PassReport {
    uint64_t local_bytes = 0;   // referenced blob bytes on the local disks
    uint64_t remote_bytes = 0;  // and in the remote tier only
    uint64_t candidates = 0;    // blobs that could move (not pinned, not in use)
    uint64_t moved = 0;
    uint64_t moved_bytes = 0;
    uint64_t waiting = 0;        // cold blobs the pass could not move (the queue)
    uint64_t waiting_bytes = 0;
    double seconds = 0;
  };
  absl::StatusOr<PassReport> RunPass();

  // Moves every blob of these files out now / back in (and pins each file
  // so the policy keeps it local), kParallelMoves blobs at a time.
  // `file_done` is called (from any thread, one call at a time) as each
  // file's last blob is moved. Stops at the first failure, which names the
  // file's inode. Dirty data must be flushed first.
  absl::Status MoveFilesOut(const std::vector<InodeId>& inos,
                            const std::function<void(InodeId)>& file_done = nullptr);
  absl::Status MoveFilesIn(const std::vector<InodeId>& inos,
                           const std::function<void(InodeId)>& file_done = nullptr);

  std::string StatsJson();

 private:
  void Loop();
  std::vector<BlobId> FileBlobs(InodeId ino, absl::Status* status);
  absl::Status MoveFiles(const std::vector<InodeId>& inos, bool out,
                         const std::function<void(InodeId)>& file_done);

  NamespaceStore& ns_;
  BlobStore& local_;
  TierMover& mover_;
  const TierConfig config_;
  const Options options_;
  absl::Mutex mu_;
  PassReport last_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  int64_t last_error_time_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_pass_time_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex pass_mu_;  // one pass or file move at a time
  std::atomic<bool> stop_{false};
  absl::Notification stopped_;
  std::thread thread_;
};

// Remote objects of this volume that no blob record claims: a blob with no
// record (deleted while its move was under way), or one recorded as local
// only (a crash between upload and commit). Multipart uploads never
// completed under the volume's prefix count too. With `remove`, deletes
// them. Safe only while nothing moves blobs: the volume must be locked (not
// mounted), or a move's upload in flight would look unclaimed.
struct UnclaimedRemote {
  uint64_t objects = 0;
  uint64_t uploads = 0;
  bool uploads_listed = true;  // false: the server cannot list uploads
};
absl::StatusOr<UnclaimedRemote> SweepUnclaimedRemote(NamespaceStore& ns, RemoteBlobStore& remote,
                                                     s3::S3Client& client, bool remove,
                                                     std::vector<std::string>* lines,
                                                     size_t max_lines = 20);

}  // namespace cairn
