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
#include "backend/blob/striped_blob_store.h"

namespace cairn {

namespace s3 {
class S3Client;
}
class DiskBlockCache;
class RemoteBlobStore;
class ReplicaOwner;
class TieredBlobStore;
class TierMover;

// Newest on-disk format this build reads and writes. A volume with a larger
// number is refused (upgrade cairn); a smaller one would be migrated.
// Version 1: one directory of whole-blob files (LocalBlobStore), still
// mounted as it is. Version 2: the striped store over cairn disks.
inline constexpr int kVolumeFormatVersion = 2;

// An S3-compatible bucket cairn keeps objects in: the remote tier's and the
// replica's (their sections of cairn.toml share these keys).
struct S3Target {
  std::string endpoint;              // https://host[:port]; http:// only if said
  std::string bucket;
  std::string prefix = "cairn/";     // objects under PREFIX<volume id>/
  std::string region = "us-east-1";
  std::string addressing = "auto";   // path, virtual, or auto (virtual for AWS)
  std::string access_key_id;         // credentials: here, else the environment,
  std::string secret_access_key;     // else credentials_file (profile)
  std::string credentials_file;
  std::string profile;
  std::string ca_file;               // "" for the system's CAs
  std::string storage_class;         // "" for the bucket's default
  // Same bucket and objects (the same endpoint, bucket and prefix).
  bool SameObjectsAs(const S3Target& other) const {
    return endpoint == other.endpoint && bucket == other.bucket && prefix == other.prefix;
  }
};

// The remote tier: a bucket that cold data moves to (the [tier] section of
// cairn.toml; absent: no remote tier).
struct TierConfig : S3Target {
  int64_t cold_after_seconds = 30 * 24 * 3600;  // untouched this long: moves out
  int64_t high_watermark_percent = 85;  // local disks fuller than this: the
  int64_t low_watermark_percent = 70;   // coldest move out until below low
  int64_t read_timeout_seconds = 30;    // a read of remote data fails (EIO) after
  // Remote blocks read are kept on local disk (CACHE_DIR/tier-blocks), up to
  // this many bytes; 0: not kept.
  int64_t cache_bytes = 1ll << 30;
};

// The replica: a bucket (ideally elsewhere) that every blob is copied to in
// the background (the [replica] section; absent: no replication).
struct ReplicaConfig : S3Target {
  // A namespace backup goes to the replica this often (0: only on `cairn
  // backup`); the newest keep_backups are kept, older ones deleted with the
  // objects only they needed.
  int64_t backup_interval_seconds = 3600;
  int64_t keep_backups = 24;
  // A backup waits this long for the blobs it needs to reach the replica.
  int64_t backup_wait_seconds = 600;
};

// Prometheus metrics over HTTP (the [metrics] section of cairn.toml; absent,
// or listen = "": no metrics). Off by default: the endpoint needs no
// password, so it is opened only when asked for.
struct MetricsConfig {
  // "HOST:PORT" to serve GET /metrics on: an IPv4 address, an IPv6 address
  // in brackets ([::1]:9464) or localhost; port 1..65535.
  std::string listen;
};

// An address to listen on, as ParseListenAddress splits it.
struct ListenAddress {
  std::string host;  // an IP literal without brackets; localhost as 127.0.0.1
  int port = 0;
  bool ipv6 = false;
};

// Splits and checks "HOST:PORT" (see MetricsConfig::listen); port 0 is
// allowed here (any free port, for tests). The error says what is wrong.
absl::StatusOr<ListenAddress> ParseListenAddress(const std::string& text);

struct VolumeConfig {
  int format_version = kVolumeFormatVersion;
  std::string volume_id;            // 32 hex digits, random at format
  std::vector<std::string> disks;   // absolute data directories
  Redundancy redundancy;            // how blobs are spread over the disks
  std::string cache_dir;            // absolute; default VOLUME_DIR/cache
  uint64_t max_dirty_bytes = 128ull << 20;   // writeback memory limit
  uint64_t max_journal_bytes = 1ull << 30;   // writeback journal on cache_dir
  uint64_t read_cache_bytes = 128ull << 20;  // memory block cache
  int64_t dirty_flush_seconds = 5;           // partial blocks flushed after
  int64_t gc_grace_seconds = 60;
  std::string log_level = "info";            // error, warning, info, debug
  // Background scrub: every blob is read and verified once per interval, at
  // no more than this many bytes per second. 0 seconds: no background scrub.
  int64_t scrub_interval_seconds = 7 * 24 * 3600;
  uint64_t scrub_bytes_per_second = 16ull << 20;
  std::optional<TierConfig> tier;
  std::optional<ReplicaConfig> replica;
  std::string config_path;          // the file this was read from
  // config_path, or VOLUME_DIR/cairn.toml for a config made in memory.
  std::string ConfigFile(const std::string& volume_dir) const {
    return config_path.empty() ? volume_dir + "/cairn.toml" : config_path;
  }
  MetricsConfig metrics;
  // The disks as the store opens them: `disks`, or VOLUME_DIR/data.
  std::vector<std::string> DataDisks(const std::string& volume_dir) const;
};

// The marker `cairn restore` keeps in the volume directory it builds until
// it is finished; Volume::Open refuses a volume that has it.
inline constexpr char kRestoreMarkerName[] = "restoring";

// How the namespace names a replica target (its endpoint, bucket and
// prefix): the blobs it holds are known by this name.
std::string ReplicaTargetName(const S3Target& target);

// Reads VOLUME_DIR/cairn.toml, or `config_path` instead when given (mount
// -o config=). Errors name the file, the key and the reason (unknown key,
// wrong type, out of range). Relative paths in the file are resolved against
// VOLUME_DIR.
absl::StatusOr<VolumeConfig> LoadVolumeConfig(const std::string& volume_dir,
                                              const std::string& config_path = "");

// Writes `config` as VOLUME_DIR/cairn.toml (atomically: temp file + rename).
absl::Status SaveVolumeConfig(const std::string& volume_dir,
                              const VolumeConfig& config);

struct FormatOptions {
  std::vector<std::string> disks;  // empty: VOLUME_DIR/data
  // Default by disk count (DefaultRedundancy).
  std::optional<Redundancy> redundancy;
  bool force = false;  // allow a non-empty directory / an existing volume
  std::string volume_id;  // "" for a new random one; a restore keeps its volume's
  // A restore formats: the directory may hold its marker, which is kept.
  bool restoring = false;
};

// Creates a new volume. Refuses, changing nothing, if VOLUME_DIR holds a
// volume or anything else and !force; refuses while the volume is mounted
// even with force. Returns the new volume's config.
absl::StatusOr<VolumeConfig> FormatVolume(const std::string& volume_dir,
                                          const FormatOptions& options);

// Who serves a volume right now.
struct MountRecord {
  bool mounted = false;   // a live process holds the lock
  pid_t pid = 0;
  std::string mountpoint;
};
absl::StatusOr<MountRecord> ReadMountRecord(const std::string& volume_dir);

// Deletes blob files the namespace has no record of: a crash between storing
// a blob and committing it leaves one. Only blobs at or above the point the
// last sweep reached are looked at, so a sweep costs a listing of the store
// plus a lookup per new blob. Call only while nothing is storing blobs (at
// mount, after the journal replay). Returns how many it deleted.
absl::StatusOr<uint64_t> SweepOrphanBlobs(NamespaceStore& ns, BlobStore& blobs);

// Why the last daemon to serve the volume stopped with an error, if it did
// (see Volume::RecordStop).
std::optional<std::string> ReadStopError(const std::string& volume_dir);
// True if the last daemon to serve the volume stopped having stored
// everything; false after a crash (or while one serves it).
bool LastStopWasClean(const std::string& volume_dir);

// True if `dir` looks like a cairn volume (has cairn.toml).
bool IsVolumeDir(const std::string& dir);

class Volume {
 public:
  // Takes the volume lock (refusing, with the holder's pid and mountpoint, if
  // another process has it), checks the format version, opens the namespace
  // and the blob store, and releases orphans left by a crash. Refuses a
  // volume an unfinished restore is building (VOLUME_DIR/restoring), unless
  // `restoring` (the restore itself).
  static absl::StatusOr<std::unique_ptr<Volume>> Open(
      const std::string& volume_dir, const VolumeConfig& config, bool restoring = false);

  ~Volume();  // closes the database, releases the lock

  NamespaceStore& ns() { return *namespace_; }
  // The store file data goes through: the tiered store on a volume with a
  // remote tier, else the local one.
  BlobStore& blobs();
  // The local disks' store.
  BlobStore& local_blobs() { return *blobs_; }
  // The striped store, or nullptr on a format-1 volume.
  StripedBlobStore* striped() { return striped_; }
  // The remote tier's parts, or nullptr without a [tier].
  RemoteBlobStore* remote() { return remote_.get(); }
  TierMover* tier_mover() { return mover_.get(); }
  TieredBlobStore* tiered() { return tiered_.get(); }
  // The replica's store and client; null without a [replica].
  RemoteBlobStore* replica() { return replica_.get(); }
  s3::S3Client* replica_client() { return replica_client_.get(); }
  // Whether this copy of the volume writes the replica; null without one.
  ReplicaOwner* replica_owner() { return replica_owner_.get(); }
  s3::S3Client* tier_client() { return tier_client_.get(); }
  const VolumeConfig& config() const { return config_; }
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

 private:
  Volume() = default;
  std::string dir_;
  VolumeConfig config_;
  int lock_fd_ = -1;
  std::unique_ptr<NamespaceStore> namespace_;
  std::unique_ptr<BlobStore> blobs_;
  StripedBlobStore* striped_ = nullptr;
  std::unique_ptr<s3::S3Client> tier_client_;
  std::unique_ptr<RemoteBlobStore> remote_;
  std::unique_ptr<DiskBlockCache> tier_block_cache_;
  std::unique_ptr<TieredBlobStore> tiered_;
  std::unique_ptr<TierMover> mover_;
  std::unique_ptr<s3::S3Client> replica_client_;
  std::unique_ptr<RemoteBlobStore> replica_;
  std::unique_ptr<ReplicaOwner> replica_owner_;
};

}  // namespace cairn
