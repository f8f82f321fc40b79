// The settings of a volume as cairn.toml holds them: plain types, their
// defaults, and the one parser and writer of the file. Nothing here opens a
// volume or talks to a disk beyond reading and writing cairn.toml.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend/base/env.h"
#include "backend/blob/erasure_code.h"

namespace cairn {

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

// The namespace of a volume several hosts mount (the [namespace] section of
// cairn.toml; absent: the embedded namespace in VOLUME_DIR/namespace).
struct SharedNamespaceConfig {
  // A libpq URL, postgresql://USER@HOST[:PORT]/DB[?PARAMS]. A password
  // belongs in ~/.pgpass (or PGPASSFILE), not here.
  std::string url;
  // A host that has not renewed its session for this long (paused, cut
  // off, dead) loses it: its changes are refused from then on, and what
  // it held (locks, open unlinked files) is released.
  int64_t session_expiry_seconds = 30;
};

// The blobs of a shared volume: a bucket every host reads and writes (the
// [blobs] section; a shared volume has no local disks).
struct SharedBlobsConfig : S3Target {
  // Blocks read from the bucket are kept on local disk
  // (CACHE_DIR/blob-blocks), up to this many bytes; 0: not kept.
  int64_t cache_bytes = 1ll << 30;
  // A request to the bucket (a read, an upload) is retried this long in
  // all, then fails (EIO).
  int64_t read_timeout_seconds = 30;
};

// Prometheus metrics over HTTP (the [metrics] section of cairn.toml; absent,
// or listen = "": no metrics). Off by default: the endpoint needs no
// password, so it is opened only when asked for.
struct MetricsConfig {
  // "HOST:PORT" to serve GET /metrics on: an IPv4 address, an IPv6 address
  // in brackets ([::1]:9464) or localhost; port 1..65535.
  std::string listen;
};

// The S3 REST frontend (the [s3] section of cairn.toml; absent, or listen =
// "": off). docs/S3.md says what it serves.
struct S3Config {
  // "HOST:PORT" to serve S3 on, as MetricsConfig::listen.
  std::string listen;
  // Who may use it: ACCESS_KEY SECRET_KEY UID GID [ro] [BUCKET,...] per
  // line. Empty: VOLUME_DIR/s3-keys.
  std::string keys_file;
  std::string region = "us-east-1";
  // TLS: the PEM certificate chain and its PEM private key, both or
  // neither; a relative path is in the volume directory. Empty: plain HTTP.
  std::string tls_cert;
  std::string tls_key;
  // Without TLS requests travel in clear text, so listening beyond
  // loopback must be asked for.
  bool allow_insecure = false;
  std::string KeysFile(const std::string& volume_dir) const {
    return keys_file.empty() ? volume_dir + "/s3-keys" : keys_file;
  }
  bool tls() const { return !tls_cert.empty(); }
  // The files as paths the daemon can open ("" without TLS).
  std::string TlsCertFile(const std::string& volume_dir) const {
    return InVolumeDir(volume_dir, tls_cert);
  }
  std::string TlsKeyFile(const std::string& volume_dir) const {
    return InVolumeDir(volume_dir, tls_key);
  }

 private:
  static std::string InVolumeDir(const std::string& volume_dir, const std::string& path) {
    return path.empty() || path[0] == '/' ? path : volume_dir + "/" + path;
  }
};

// OK when [s3] listen may be served: empty (off), or HOST:PORT on loopback,
// or beyond it with TLS or allow_insecure; else what is wrong.
absl::Status CheckS3Listen(const S3Config& config);

// An address to listen on, as ParseListenAddress splits it.
struct ListenAddress {
  std::string host;  // an IP literal without brackets; localhost as 127.0.0.1
  int port = 0;
  bool ipv6 = false;
};

// Splits and checks "HOST:PORT" (see MetricsConfig::listen); port 0 is
// allowed here (any free port, for tests). The error says what is wrong.
absl::StatusOr<ListenAddress> ParseListenAddress(const std::string& text);

inline constexpr uint64_t kDefaultMemoryBytes = 256ull << 20;
inline constexpr uint64_t kMinMemoryBytes = 64ull << 20;

struct VolumeConfig;

// How memory_bytes is shared out: a quarter each for dirty data and the
// read cache, an eighth for the namespace (RocksDB's block cache, which its
// write buffers are charged to), and the rest for the working memory
// nothing caches (FUSE request buffers, blobs being stored or verified, the
// allocator's slack), so that the daemon's resident size stays near
// memory_bytes under any load.
struct MemoryPlan {
  uint64_t dirty_bytes = 0;
  uint64_t read_cache_bytes = 0;
  uint64_t namespace_cache_bytes = 0;   // block cache capacity, write buffers included
  uint64_t namespace_write_bytes = 0;   // write buffers, at most this (half the above)
  uint64_t working_bytes = 0;           // the rest of memory_bytes; 0 when overdrawn
  // The caches add up to more than memory_bytes allows (explicit
  // max_dirty_bytes or read_cache_bytes); said at mount.
  bool overdrawn = false;
};
MemoryPlan PlanMemory(const VolumeConfig& config);

struct VolumeConfig {
  int format_version = kVolumeFormatVersion;
  std::string volume_id;            // 32 hex digits, random at format
  std::vector<std::string> disks;   // absolute data directories
  Redundancy redundancy;            // how blobs are spread over the disks
  std::string cache_dir;            // absolute; default VOLUME_DIR/cache
  // The daemon's memory budget; PlanMemory carves the caches from it.
  uint64_t memory_bytes = kDefaultMemoryBytes;
  // Set only when cairn.toml names them: each overrides its share of
  // memory_bytes.
  std::optional<uint64_t> max_dirty_bytes;   // writeback memory limit
  std::optional<uint64_t> read_cache_bytes;  // memory block cache
  uint64_t max_journal_bytes = 1ull << 30;   // writeback journal on cache_dir
  int64_t dirty_flush_seconds = 5;           // partial blocks flushed after
  int64_t gc_grace_seconds = 60;
  std::string log_level = "info";            // error, warning, info, debug
  // Background scrub: every blob is read and verified once per interval, at
  // no more than this many bytes per second. 0 seconds: no background scrub.
  int64_t scrub_interval_seconds = 7 * 24 * 3600;
  uint64_t scrub_bytes_per_second = 16ull << 20;
  // Background scrub of the remote copies (replica and tier objects): each
  // is read back and verified once per interval, at no more than this many
  // bytes per second. 0 seconds: none.
  int64_t remote_scrub_interval_seconds = 30 * 24 * 3600;
  uint64_t remote_scrub_bytes_per_second = 4ull << 20;
  std::optional<TierConfig> tier;
  std::optional<ReplicaConfig> replica;
  // Both set on a volume several hosts mount, neither on a single-host one.
  std::optional<SharedNamespaceConfig> shared_namespace;
  std::optional<SharedBlobsConfig> shared_blobs;
  bool shared() const { return shared_namespace.has_value(); }
  std::string config_path;          // the file this was read from
  // config_path, or VOLUME_DIR/cairn.toml for a config made in memory.
  std::string ConfigFile(const std::string& volume_dir) const {
    return config_path.empty() ? volume_dir + "/cairn.toml" : config_path;
  }
  MetricsConfig metrics;
  S3Config s3;
  // The disks as the store opens them: `disks`, or VOLUME_DIR/data; none on
  // a shared volume.
  std::vector<std::string> DataDisks(const std::string& volume_dir) const;
};


// How the namespace names a replica target (its endpoint, bucket and
// prefix): the blobs it holds are known by this name.
std::string ReplicaTargetName(const S3Target& target);

// What VOLUME_DIR holds: the names backend/volume lays out.
inline constexpr char kConfigName[] = "cairn.toml";
inline constexpr char kNamespaceDir[] = "namespace";
inline constexpr char kDataDir[] = "data";

// Reads VOLUME_DIR/cairn.toml, or `config_path` instead when given (mount
// -o config=). Errors name the file, the key and the reason (unknown key,
// wrong type, out of range). Relative paths in the file are resolved against
// VOLUME_DIR.
absl::StatusOr<VolumeConfig> LoadVolumeConfig(const std::string& volume_dir,
                                              const std::string& config_path = "",
                                              Env* env = Env::Default());

// Parses the text of a cairn.toml (LoadVolumeConfig without the reading);
// `path` names the file in errors and becomes config_path.
absl::StatusOr<VolumeConfig> ParseVolumeConfig(const std::string& text,
                                               const std::string& volume_dir,
                                               const std::string& path);

// The text SaveVolumeConfig writes.
std::string ConfigText(const VolumeConfig& config);

// `url` without a password it may carry (postgresql://USER:PASSWORD@...),
// for messages and copies.
std::string UrlWithoutPassword(const std::string& url);

// `config` without the secrets it may hold (the remote targets' keys), for
// copies kept where the file's owner-only mode does not follow them.
VolumeConfig WithoutSecrets(VolumeConfig config);

// Writes `config` as VOLUME_DIR/cairn.toml (atomically: temp file + rename).
absl::Status SaveVolumeConfig(const std::string& volume_dir, const VolumeConfig& config,
                              Env* env = Env::Default());


// True if `dir` looks like a cairn volume (has cairn.toml).
bool IsVolumeDir(const std::string& dir, Env* env = Env::Default());

}  // namespace cairn
