#include "backend/volume/config_recovery.h"

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/blob/shard_format.h"
#include "backend/blob/striped_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/volume/volume.h"

namespace cairn {
namespace {

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

// The volume lock and the namespace, both held while cairn.toml is judged
// and written, so no daemon mounts the volume halfway through.
struct OpenedNamespace {
  std::unique_ptr<FileLock> lock;
  std::unique_ptr<NamespaceStore> ns;
  std::string volume_id;
  int format_version = 0;  // 0: not recorded
};

absl::StatusOr<OpenedNamespace> OpenForRecovery(const std::string& dir, const Io& io) {
  OpenedNamespace opened;
  absl::StatusOr<std::unique_ptr<FileLock>> lock = LockUnmountedVolume(dir, io.env);
  if (!lock.ok()) return lock.status();
  opened.lock = std::move(*lock);
  const std::string ns_dir = Join(dir, kNamespaceDir);
  if (!io.env->Exists(ns_dir)) {
    return absl::NotFoundError(absl::StrCat(
        dir, " has no namespace (", ns_dir, "), so there is no volume to rebuild "
        "cairn.toml for"));
  }
  NamespaceOptions options;
  options.env = io.env;
  options.clock = io.clock;
  absl::StatusOr<std::unique_ptr<NamespaceStore>> ns = NamespaceStore::Open(ns_dir, options);
  if (!ns.ok()) return ns.status();
  opened.ns = std::move(*ns);
  absl::StatusOr<std::optional<std::string>> id = opened.ns->GetVolumeMeta("volume_id");
  if (!id.ok()) return id.status();
  if (!id->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the namespace in ", dir, " names no volume; it is not one cairn format made"));
  }
  opened.volume_id = **id;
  absl::StatusOr<std::optional<std::string>> version = opened.ns->GetVolumeMeta("format_version");
  if (!version.ok()) return version.status();
  if (version->has_value()) {
    if (!absl::SimpleAtoi(**version, &opened.format_version) || opened.format_version < 1 ||
        opened.format_version > kVolumeFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the namespace in ", dir, " records format version '", **version,
          "', which this cairn (format ", kVolumeFormatVersion, ") does not know"));
    }
  }
  return opened;
}

// The redundancy the blobs were written with, from the first shard found:
// every shard names its geometry. nullopt when the disks hold no shard.
std::optional<Redundancy> RedundancyFromShards(Env* env, const std::vector<std::string>& disks) {
  for (const std::string& disk : disks) {
    const std::string shards = disk + "/shards";
    absl::StatusOr<std::vector<std::string>> fanouts = env->ListDir(shards);
    if (!fanouts.ok()) continue;
    for (const std::string& fanout : *fanouts) {
      absl::StatusOr<std::vector<std::string>> names = env->ListDir(shards + "/" + fanout);
      if (!names.ok()) continue;
      for (const std::string& name : *names) {
        const std::string path = shards + "/" + fanout + "/" + name;
        absl::StatusOr<std::string> text = ReadFileToString(env, path);
        if (!text.ok()) continue;
        absl::StatusOr<ShardHeader> header = DecodeShardHeader(
            std::string_view(*text).substr(0, kShardPrefixReadBytes), path);
        if (!header.ok()) continue;
        Redundancy redundancy;
        redundancy.data_shards = header->data_shards;
        redundancy.parity_shards = header->parity_shards;
        redundancy.copies = header->copies;
        return redundancy;
      }
    }
  }
  return std::nullopt;
}

// Orders `given` by the index each disk's marker names. Disks without a
// readable marker (lost, or not mounted) fill the places no marker claims,
// in the order given. Every marker must name `volume_id` and the same
// number of disks as given.
absl::StatusOr<std::vector<std::string>> OrderDisks(Env* env, const std::string& volume_id,
                                                    const std::vector<std::string>& given,
                                                    std::vector<std::string>* notes) {
  std::vector<std::string> ordered(given.size());
  std::vector<std::string> unmarked;
  for (const std::string& disk : given) {
    absl::StatusOr<StripedBlobStore::DiskIdentity> identity =
        StripedBlobStore::ReadDiskIdentity(env, disk);
    if (!identity.ok()) {
      notes->push_back(absl::StrCat("disk ", disk, " has no readable marker (",
                                    identity.status().message(),
                                    "); if the disk is lost, the volume mounts without it and "
                                    "cairn disk replace rebuilds it"));
      unmarked.push_back(disk);
      continue;
    }
    if (identity->volume_id != volume_id) {
      return absl::FailedPreconditionError(absl::StrCat(
          "disk ", disk, " belongs to volume ", identity->volume_id, ", not to ", volume_id,
          "; give this volume's disks"));
    }
    if (static_cast<size_t>(identity->count) != given.size()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "disk ", disk, " is disk ", identity->index, " of ", identity->count, " of volume ",
          volume_id, ", but ", given.size(), " disks were given; give every disk of the "
          "volume (a lost one by its old path)"));
    }
    if (!ordered[identity->index].empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "disks ", ordered[identity->index], " and ", disk, " both claim to be disk ",
          identity->index, " of volume ", volume_id, "; one of them is a copy"));
    }
    ordered[identity->index] = disk;
  }
  if (unmarked.size() == given.size() && !given.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "none of the disks given (", absl::StrJoin(given, ", "),
        ") carries a marker of volume ", volume_id, "; are they mounted?"));
  }
  size_t next = 0;
  for (std::string& place : ordered) {
    if (place.empty()) place = unmarked[next++];
  }
  return ordered;
}

bool HasKeyButNoSecret(const std::optional<S3Target>& target) {
  return target && !target->access_key_id.empty() && target->secret_access_key.empty() &&
         target->credentials_file.empty();
}

}  // namespace

absl::StatusOr<RecoveredConfig> RecoverVolumeConfig(const std::string& volume_dir,
                                                    const std::vector<std::string>& disks,
                                                    const Io& io) {
  const std::string dir = AbsolutePath(volume_dir);
  const std::string config_file = Join(dir, kConfigName);
  if (io.env->Exists(config_file)) {
    return absl::AlreadyExistsError(absl::StrCat(config_file, " exists; nothing to rebuild"));
  }
  absl::StatusOr<OpenedNamespace> opened = OpenForRecovery(dir, io);
  if (!opened.ok()) return opened.status();
  RecoveredConfig recovered;
  VolumeConfig& config = recovered.config;
  absl::StatusOr<std::optional<std::string>> kept = opened->ns->GetVolumeMeta(kMountedConfigKey);
  if (!kept.ok()) return kept.status();
  if (kept->has_value() && (*kept)->empty()) kept->reset();  // as never recorded
  if (kept->has_value()) {
    absl::StatusOr<VolumeConfig> parsed = ParseVolumeConfig(**kept, dir, config_file);
    if (!parsed.ok()) {
      return absl::DataLossError(absl::StrCat(
          "the namespace's copy of cairn.toml does not parse: ", parsed.status().message()));
    }
    config = *parsed;
    if (config.volume_id != opened->volume_id) {
      return absl::DataLossError(absl::StrCat(
          "the namespace's copy of cairn.toml names volume ", config.volume_id,
          ", the namespace itself ", opened->volume_id));
    }
  } else {
    config.volume_id = opened->volume_id;
    config.cache_dir = Join(dir, "cache");
    config.config_path = config_file;
    recovered.notes.push_back(
        "the namespace keeps no copy of cairn.toml (the volume was last mounted by an older "
        "cairn): tuning settings take their defaults, and a [tier], [replica] or [metrics] "
        "section must be added back by hand");
  }
  config.format_version =
      opened->format_version != 0 ? opened->format_version : config.format_version;
  if (!disks.empty()) {
    std::vector<std::string> absolute;
    for (const std::string& disk : disks) absolute.push_back(AbsolutePath(disk));
    absl::StatusOr<std::vector<std::string>> ordered =
        OrderDisks(io.env, config.volume_id, absolute, &recovered.notes);
    if (!ordered.ok()) return ordered.status();
    config.disks = *ordered;
  } else if (kept->has_value()) {
    if (!config.disks.empty()) {
      absl::StatusOr<std::vector<std::string>> ordered =
          OrderDisks(io.env, config.volume_id, config.disks, &recovered.notes);
      if (!ordered.ok()) return ordered.status();
      config.disks = *ordered;
    }
  } else if (config.format_version >= 2) {
    absl::StatusOr<StripedBlobStore::DiskIdentity> internal =
        StripedBlobStore::ReadDiskIdentity(io.env, Join(dir, kDataDir));
    if (!internal.ok() || internal->volume_id != config.volume_id || internal->count != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the namespace does not record the disks of volume ", config.volume_id,
          "; name them: cairn fsck --repair ", dir, " --disk DIR --disk DIR ... (any order)"));
    }
  }
  if (!kept->has_value()) {
    if (config.format_version < 2) {
      config.redundancy = Redundancy();
    } else if (std::optional<Redundancy> found =
                   RedundancyFromShards(io.env, config.DataDisks(dir))) {
      config.redundancy = *found;
    } else {
      config.redundancy = DefaultRedundancy(config.DataDisks(dir).size());
      recovered.notes.push_back(absl::StrCat(
          "no shard was found to read the redundancy from, so it is the default for ",
          config.DataDisks(dir).size(), " disks: ", config.redundancy.ToString()));
    }
  }
  if (static_cast<size_t>(config.redundancy.total_shards()) > config.DataDisks(dir).size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the volume's redundancy ", config.redundancy.ToString(), " needs ",
        config.redundancy.total_shards(), " disks, but ", config.DataDisks(dir).size(),
        " are known; give them all with --disk"));
  }
  if (HasKeyButNoSecret(config.tier) || HasKeyButNoSecret(config.replica)) {
    recovered.notes.push_back(
        "secret_access_key is never kept in the namespace: add it back to the [tier] and "
        "[replica] sections (or use credentials_file or the environment)");
  }
  if (absl::Status s = SaveVolumeConfig(dir, config, io.env); !s.ok()) return s;
  return recovered;
}

absl::StatusOr<std::optional<std::string>> RepairConfigFormatVersion(
    const std::string& volume_dir, const Io& io) {
  const std::string dir = AbsolutePath(volume_dir);
  absl::StatusOr<OpenedNamespace> opened = OpenForRecovery(dir, io);
  if (!opened.ok()) return opened.status();
  if (opened->format_version == 0) return std::nullopt;
  const std::string config_file = Join(dir, kConfigName);
  absl::StatusOr<std::string> text = ReadFileToString(io.env, config_file);
  if (!text.ok()) return text.status();
  // The version is changed in the text itself, so every other line (and
  // any secret) stays as the operator wrote it.
  std::vector<std::string> lines = absl::StrSplit(*text, '\n');
  std::optional<std::string> old_value;
  for (std::string& line : lines) {
    absl::string_view trimmed = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::StartsWith(trimmed, "format_version")) continue;
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(trimmed.substr(14));
    if (!absl::StartsWith(rest, "=")) continue;
    std::string value(absl::StripAsciiWhitespace(rest.substr(1)));
    if (value == std::to_string(opened->format_version)) return std::nullopt;
    old_value = value;
    line = absl::StrCat("format_version = ", opened->format_version);
    break;
  }
  if (!old_value) {
    // Absent: the parser takes the newest version, right unless the volume
    // is older.
    if (opened->format_version == kVolumeFormatVersion) return std::nullopt;
    old_value = absl::StrCat("(absent, read as ", kVolumeFormatVersion, ")");
    lines.insert(lines.begin(), absl::StrCat("format_version = ", opened->format_version));
  }
  if (absl::Status s = WriteFileAtomically(io.env, config_file, absl::StrJoin(lines, "\n"), 0600);
      !s.ok()) {
    return s;
  }
  return absl::StrCat("cairn.toml said format_version = ", *old_value,
                      "; put back the namespace's ", opened->format_version);
}

}  // namespace cairn
