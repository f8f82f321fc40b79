#include "backend/volume/shared_volume.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/pg_file_locks.h"
#include "backend/namespace/pg_kv_store.h"
#include "backend/volume/s3_targets.h"
#include "backend/volume/volume.h"

namespace cairn {
namespace {

PgKvOptions PgOptionsFor(const std::string& url) {
  PgKvOptions options;
  options.url = url;
  return options;
}

// One short listing under the volume's prefix (as ProbeRemote does for the
// tier): proves the bucket exists and the credentials may use it.
absl::Status ProbeBucket(const Io& io, const SharedBlobsConfig& blobs,
                         const std::string& config_path, const std::string& volume_id) {
  absl::StatusOr<s3::S3Options> options = S3TargetOptions(blobs, config_path, io.env);
  if (!options.ok()) return options.status();
  options->max_attempts = 2;
  options->max_retry_seconds = 10;
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client = io.remote->Open(*options);
  if (!client.ok()) return client.status();
  return (*client)->ListObjects(absl::StrCat(blobs.prefix, volume_id, "/probe-")).status();
}

absl::Status BucketError(const SharedBlobsConfig& blobs, const absl::Status& why) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the volume's bucket s3://", blobs.bucket, "/", blobs.prefix, " at ", blobs.endpoint,
      " does not answer: ", why.message(),
      ". Check the endpoint, the bucket's name and the credentials (AWS_ACCESS_KEY_ID and "
      "AWS_SECRET_ACCESS_KEY, or a credentials file)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<NamespaceStore>> OpenSharedNamespace(
    const VolumeConfig& config, const NamespaceOptions& options,
    const SharedSessionInfo* session) {
  PgKvOptions pg = PgOptionsFor(config.shared_namespace->url);
  if (session != nullptr) {
    PgSessionOptions s;
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) snprintf(host, sizeof(host), "unknown");
    s.host = host;
    s.pid = getpid();
    s.mountpoint = session->mountpoint;
    s.expiry_s = static_cast<int>(config.shared_namespace->session_expiry_seconds);
    pg.session = s;
  }
  absl::StatusOr<std::unique_ptr<PgKvStore>> kv = PgKvStore::Open(pg);
  if (!kv.ok()) {
    return absl::Status(kv.status().code(),
                        absl::StrCat("the volume's namespace at ",
                                     UrlWithoutPassword(config.shared_namespace->url), ": ",
                                     kv.status().message()));
  }
  return OpenKvNamespace(std::move(*kv), options);
}

absl::Status FormatSharedNamespace(const VolumeConfig& config, const Io& io,
                                   const NamespaceOptions& options) {
  if (absl::Status s = ProbeBucket(io, *config.shared_blobs, "", config.volume_id); !s.ok()) {
    return BucketError(*config.shared_blobs, s);
  }
  const std::string url = UrlWithoutPassword(config.shared_namespace->url);
  absl::StatusOr<std::unique_ptr<PgKvStore>> kv =
      PgKvStore::Format(PgOptionsFor(config.shared_namespace->url));
  if (absl::IsAlreadyExists(kv.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database at ", url, " already holds the namespace of a cairn volume; attach to "
        "it (cairn attach VOLUME_DIR --namespace URL), or give an empty database"));
  }
  if (!kv.ok()) {
    return absl::Status(kv.status().code(),
                        absl::StrCat("the database at ", url, ": ", kv.status().message()));
  }
  if (absl::Status s = PgFileLocks::Prepare(config.shared_namespace->url); !s.ok()) return s;
  NamespaceOptions create = options;
  create.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<NamespaceStore>> ns = OpenKvNamespace(std::move(*kv), create);
  if (!ns.ok()) return ns.status();
  VolumeConfig shared = WithoutSecrets(config);
  shared.cache_dir.clear();  // each host's own
  shared.config_path.clear();
  if (absl::Status s = (*ns)->SetVolumeMeta(kSharedConfigKey, ConfigText(shared)); !s.ok()) {
    return s;
  }
  if (absl::Status s = (*ns)->SetVolumeMeta("volume_id", config.volume_id); !s.ok()) return s;
  if (absl::Status s =
          (*ns)->SetVolumeMeta("format_version", std::to_string(kVolumeFormatVersion));
      !s.ok()) {
    return s;
  }
  return (*ns)->Sync();
}

absl::StatusOr<VolumeConfig> AttachVolume(const std::string& volume_dir,
                                          const AttachOptions& options, const Io& io) {
  Env* const env = io.env;
  const std::string dir = AbsolutePath(volume_dir);
  const std::string url = UrlWithoutPassword(options.namespace_url);
  absl::StatusOr<FileInfo> info = env->Stat(dir);
  if (info.ok() && !info->is_directory) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory; choose another path"));
  }
  absl::StatusOr<MountRecord> mounted = ReadMountRecord(dir, env);
  if (mounted.ok() && mounted->mounted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", dir, " is in use by process ", mounted->pid, HolderAndRemedy(*mounted, dir)));
  }
  if (info.ok()) {
    absl::StatusOr<std::vector<std::string>> names = env->ListDir(dir);
    if (!names.ok()) return names.status();
    if (!names->empty() && !options.force) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, IsVolumeDir(dir, env) ? " already holds a cairn volume" : " is not empty",
          "; refusing to attach over it. Use --force to erase it"));
    }
  }
  absl::StatusOr<std::unique_ptr<PgKvStore>> kv = PgKvStore::Open(PgOptionsFor(options.namespace_url));
  if (!kv.ok()) {
    return absl::Status(kv.status().code(), absl::StrCat("the database at ", url, ": ",
                                                         kv.status().message()));
  }
  NamespaceOptions ns_options;
  ns_options.env = env;
  ns_options.clock = io.clock;
  absl::StatusOr<std::unique_ptr<NamespaceStore>> ns = OpenKvNamespace(std::move(*kv), ns_options);
  if (!ns.ok()) return ns.status();
  absl::StatusOr<std::optional<std::string>> text = (*ns)->GetVolumeMeta(kSharedConfigKey);
  if (!text.ok()) return text.status();
  if (!text->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database at ", url, " holds a cairn namespace without a shared volume's "
        "config; was it formatted with cairn format --namespace?"));
  }
  absl::StatusOr<VolumeConfig> config =
      ParseVolumeConfig(**text, dir, absl::StrCat("the shared config in ", url));
  if (!config.ok()) return config.status();
  if (!config->shared()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the namespace at ", url, " is not a shared volume's"));
  }
  absl::StatusOr<std::optional<std::string>> id = (*ns)->GetVolumeMeta("volume_id");
  if (!id.ok()) return id.status();
  if (!id->has_value() || **id != config->volume_id) {
    return absl::DataLossError(absl::StrCat("the namespace at ", url,
                                            " names two different volume ids; run cairn fsck"));
  }
  ns->reset();
  config->shared_namespace->url = options.namespace_url;
  config->cache_dir = dir + "/cache";
  config->config_path.clear();
  if (absl::Status s = ProbeBucket(io, *config->shared_blobs, "", config->volume_id); !s.ok()) {
    return BucketError(*config->shared_blobs, s);
  }
  if (absl::Status s = CreateDirs(env, dir); !s.ok()) return s;
  if (absl::Status s = env->SetPermissions(dir, 0700); !s.ok()) return s;
  if (options.force) {
    absl::StatusOr<std::vector<std::string>> names = env->ListDir(dir);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      if (name == kLockName) continue;
      if (absl::Status s = RemoveAll(env, dir + "/" + name); !s.ok()) return s;
    }
  }
  if (absl::Status s = SaveVolumeConfig(dir, *config, env); !s.ok()) return s;
  return config;
}

}  // namespace cairn
