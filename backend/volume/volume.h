// A cairn volume on disk: VOLUME_DIR holds the config (cairn.toml), the
// namespace database, the lock that admits one daemon at a time and, in the
// embedded default, the data.
//
//   VOLUME_DIR/cairn.toml   config: format version, volume id, disks, tuning
//   VOLUME_DIR/namespace/   RocksDB namespace database
//   VOLUME_DIR/data/        the one disk when no --disk was given
//   VOLUME_DIR/lock         flock()ed by the daemon serving the volume; holds
//                           "pid mountpoint" for status and umount
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/blob/blob_store.h"
#include "backend/blob/erasure_code.h"
#include "backend/namespace/namespace_store.h"
#include "backend/namespace/pg_file_locks.h"
#include "backend/blob/striped_blob_store.h"
#include "backend/config/config.h"
#include "backend/s3/health_tracking_store.h"
#include "backend/volume/io.h"
#include "backend/volume/space_reserve.h"

namespace cairn {

class DiskBlockCache;
class RemoteBlobStore;
class ReplicaOwner;
class SharedBlobStore;
class TieredBlobStore;
class TierMover;

// VOLUME_DIR/lock: the daemon (or command) using the volume holds it.
inline constexpr char kLockName[] = "lock";

// Namespace meta: cairn.toml, without secrets, as the volume was last opened
// with it (for RecoverVolumeConfig).
inline constexpr char kMountedConfigKey[] = "mounted_config";

// The marker `cairn restore` keeps in the volume directory it builds until
// it is finished; Volume::Open refuses a volume that has it.
inline constexpr char kRestoreMarkerName[] = "restoring";

struct FormatOptions {
  std::vector<std::string> disks;  // empty: VOLUME_DIR/data
  // Default by disk count (DefaultRedundancy).
  std::optional<Redundancy> redundancy;
  bool force = false;  // allow a non-empty directory / an existing volume
  std::string volume_id;  // "" for a new random one; a restore keeps its volume's
  // A restore formats: the directory may hold its marker, which is kept.
  bool restoring = false;
  // A volume several hosts mount (both set, and no disks): its namespace
  // in this PostgreSQL database, its data in this bucket.
  std::optional<SharedNamespaceConfig> shared_namespace;
  std::optional<SharedBlobsConfig> shared_blobs;
};

// Creates a new volume. Refuses, changing nothing, if VOLUME_DIR holds a
// volume or anything else and !force; refuses while the volume is mounted
// even with force. Returns the new volume's config.
absl::StatusOr<VolumeConfig> FormatVolume(const std::string& volume_dir,
                                          const FormatOptions& options, const Io& io = Io());

// Who serves a volume right now.
struct MountRecord {
  bool mounted = false;   // a live process holds the lock
  pid_t pid = 0;
  std::string mountpoint;  // empty while starting, and for a daemon serving S3 only
  // `cairn serve s3` of an unmounted volume: the daemon runs without FUSE
  // and serves the volume over S3 at this URL (http://HOST:PORT).
  std::string s3_only_url;
};
// What holds a volume and how to free it (" (mounted at M); unmount it
// first: cairn umount M", or the same for a daemon serving S3 only), to
// follow "... in use by process PID" in a refusal.
std::string HolderAndRemedy(const MountRecord& holder, const std::string& volume_dir);

// The volume's lock, for a tool that works on an unmounted volume (fsck
// --repair's salvage and config rebuild): refused, saying so, while a
// cairn process holds it.
absl::StatusOr<std::unique_ptr<FileLock>> LockUnmountedVolume(const std::string& volume_dir,
                                                               Env* env);

// For a volume whose namespace log has damaged records (Volume::Open then
// fails with kDataLoss): replays the log past them, keeping every intact
// record, writes the result into the namespace's tables and retires the
// log. Returns one line per damaged stretch (its file, how many bytes were
// dropped, and why), none when the log is intact; the changes committed in
// those bytes are lost, and the namespace check names what they leave
// inconsistent. Takes the volume lock.
absl::StatusOr<std::vector<std::string>> SalvageNamespaceLog(const std::string& volume_dir,
                                                              const Io& io = Io());

absl::StatusOr<MountRecord> ReadMountRecord(const std::string& volume_dir,
                                            Env* env = Env::Default());

// Why the last daemon to serve the volume stopped with an error, if it did
// (see Volume::RecordStop).
std::optional<std::string> ReadStopError(const std::string& volume_dir,
                                         Env* env = Env::Default());
// True if the last daemon to serve the volume stopped having stored
// everything; false after a crash (or while one serves it).
bool LastStopWasClean(const std::string& volume_dir, Env* env = Env::Default());


// How Volume::Open opens a volume.
struct VolumeOpenOptions {
  // The restore that builds the volume (see Volume::Open).
  bool restoring = false;
  // Change nothing on the disks or in the buckets (mount -o ro): the
  // namespace is opened read-only (a log left by a crash is replayed in
  // memory), no marker is rewritten, no orphan released, no copy of
  // cairn.toml kept, no replica queued, and remote reads skip the disk
  // cache. Every store then fails with EROFS. A full disk mounts this way.
  bool read_only = false;
  // A daemon serving a shared volume holds a session with its namespace
  // (docs/MULTIHOST.md); commands that only look open none.
  bool session = false;
  std::string mountpoint;  // the session's, for cairn status
};

class Volume {
 public:
  // Takes the volume lock (refusing, with the holder's pid and mountpoint, if
  // another process has it), checks the format version, opens the namespace
  // and the blob store, and releases orphans left by a crash. Refuses a
  // volume an unfinished restore is building (VOLUME_DIR/restoring), unless
  // `restoring` (the restore itself). Every part reaches disks, clock and
  // buckets through `io`.
  static absl::StatusOr<std::unique_ptr<Volume>> Open(const std::string& volume_dir,
                                                      const VolumeConfig& config,
                                                      const Io& io = Io(),
                                                      VolumeOpenOptions options = VolumeOpenOptions());
  bool read_only() const { return read_only_; }
  // The room kept for the namespace; null when read-only.
  SpaceReserve* space_reserve() { return reserve_.get(); }

  ~Volume();  // closes the database, releases the lock

  NamespaceStore& ns() { return *namespace_; }
  // The store file data goes through: the tiered store on a volume with a
  // remote tier, else the local one.
  BlobStore& blobs();
  // The local disks' store (on a shared volume: the bucket's).
  BlobStore& local_blobs() { return *blobs_; }
  // The bucket's store of a shared volume, else nullptr.
  RemoteBlobStore* shared_remote() { return shared_remote_.get(); }
  // The flock and fcntl locks every host of a shared volume sees; null on
  // a single-host volume and without a session (the kernel's own locks).
  FileLocks* file_locks() { return file_locks_.get(); }
  // The striped store, or nullptr on a format-1 volume.
  StripedBlobStore* striped() { return striped_; }
  // The remote tier's parts, or nullptr without a [tier].
  RemoteBlobStore* remote() { return remote_.get(); }
  TierMover* tier_mover() { return mover_.get(); }
  TieredBlobStore* tiered() { return tiered_.get(); }
  // A shared volume's store of blobs in the bucket; null on one host's.
  SharedBlobStore* shared_blobs() { return shared_blobs_; }
  // The replica's store and client; null without a [replica].
  RemoteBlobStore* replica() { return replica_.get(); }
  s3::ObjectStore* replica_client() { return replica_client_.get(); }
  // Whether this copy of the volume writes the replica; null without one.
  ReplicaOwner* replica_owner() { return replica_owner_.get(); }
  s3::ObjectStore* tier_client() { return tier_client_.get(); }
  // How the remote tier's latest requests went; null without a [tier].
  const s3::HealthTrackingStore* tier_health() const { return tier_health_; }
  const VolumeConfig& config() const { return config_; }
  const Io& io() const { return io_; }
  const std::string& dir() const { return dir_; }

  // Puts the directory `new_disk` in place of disk `old_disk` (a configured
  // path or the disk's index): prepares it (marker), records a pending
  // rebuild, swaps it into the running store and into cairn.toml. Refuses a
  // working disk, a disk of another volume or a non-empty directory (unless
  // `force`, which erases it). Returns the disk's index; the caller then
  // rebuilds (ScrubBlobs with repair) and clears kRebuildPendingKey.
  absl::StatusOr<int> ReplaceDisk(const std::string& old_disk, const std::string& new_disk,
                                  bool force);

  // Records how the daemon's service ended (VOLUME_DIR/last-stop), for
  // `cairn umount` to report; RecordMount clears it.
  void RecordStop(const absl::Status& status);

  // Writes "pid mountpoint" into the lock file for status and umount.
  absl::Status RecordMount(pid_t pid, const std::string& mountpoint);
  // Writes "pid s3 URL": the daemon serves the volume over S3 without a
  // mount (`cairn serve s3`), so mount refuses naming it.
  absl::Status RecordServingS3Only(pid_t pid, const std::string& url);

 private:
  absl::Status WriteLockRecord(const std::string& text);
  // The last step of Open: releases orphans (unless read-only).
  static absl::StatusOr<std::unique_ptr<Volume>> FinishOpen(std::unique_ptr<Volume> volume);
  // A shared volume's blob store: the bucket with the block cache in front.
  static absl::Status OpenSharedBlobs(Volume& volume);
  Volume() = default;
  std::string dir_;
  VolumeConfig config_;
  Io io_;
  std::unique_ptr<FileLock> lock_;
  std::unique_ptr<NamespaceStore> namespace_;
  std::unique_ptr<BlobStore> blobs_;
  StripedBlobStore* striped_ = nullptr;
  std::unique_ptr<PgFileLocks> file_locks_;
  std::unique_ptr<s3::ObjectStore> shared_client_;
  std::unique_ptr<RemoteBlobStore> shared_remote_;
  std::unique_ptr<DiskBlockCache> shared_block_cache_;
  SharedBlobStore* shared_blobs_ = nullptr;  // blobs_ itself
  std::unique_ptr<s3::ObjectStore> tier_client_;
  s3::HealthTrackingStore* tier_health_ = nullptr;  // tier_client_ itself
  std::unique_ptr<RemoteBlobStore> remote_;
  std::unique_ptr<DiskBlockCache> tier_block_cache_;
  std::unique_ptr<TieredBlobStore> tiered_;
  std::unique_ptr<TierMover> mover_;
  std::unique_ptr<s3::ObjectStore> replica_client_;
  std::unique_ptr<RemoteBlobStore> replica_;
  std::unique_ptr<ReplicaOwner> replica_owner_;
  bool read_only_ = false;
  // After the block caches: its room givers point at them.
  std::unique_ptr<SpaceReserve> reserve_;
};

}  // namespace cairn
