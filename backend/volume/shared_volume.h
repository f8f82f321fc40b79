// A volume several hosts mount (issue 18, docs/MULTIHOST.md): its
// namespace in a PostgreSQL database (PgKvStore under the namespace logic
// of kv_namespace.h), its blobs in an S3 bucket every host reads
// (SharedBlobStore), and on each host a volume directory of its own with
// cairn.toml, the lock, and the cache (journal, block cache).
//
// The namespace keeps what every host must agree on (volume id, format
// version, the [blobs] bucket) in its meta records, so that `cairn attach`
// makes another host's volume directory from the database alone.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backend/config/config.h"
#include "backend/namespace/namespace_store.h"
#include "backend/volume/io.h"

namespace cairn {

// Namespace meta: the shared config (cairn.toml of the formatting host,
// without secrets and host paths), which attach starts from.
inline constexpr char kSharedConfigKey[] = "shared_config";

// Who opens a shared namespace, for its session (docs/MULTIHOST.md).
struct SharedSessionInfo {
  std::string mountpoint;  // "" for a daemon serving S3 only
};

// Opens the namespace of a shared volume: without `session` for a command
// that reads (status, fsck), with one for a daemon that serves it.
absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenSharedNamespace(
    const VolumeConfig& config, const NamespaceOptions& options,
    const SharedSessionInfo* session);

// Prepares an empty PostgreSQL database as the namespace of the new volume
// `config` (whose [namespace] and [blobs] are set) after checking that the
// bucket answers. kAlreadyExists when the database holds a volume already.
absl::Status FormatSharedNamespace(const VolumeConfig& config, const Io& io,
                                   const NamespaceOptions& options);

struct AttachOptions {
  std::string namespace_url;
  bool force = false;  // VOLUME_DIR may hold something (erased)
};
// Makes VOLUME_DIR the local directory of this host for the shared volume
// whose namespace is at `namespace_url`: reads the volume's id and bucket
// from the database, writes cairn.toml (cache in VOLUME_DIR/cache) and
// checks the bucket answers. Returns the config written.
absl::StatusOr<VolumeConfig> AttachVolume(const std::string& volume_dir,
                                          const AttachOptions& options, const Io& io = Io());

}  // namespace cairn
