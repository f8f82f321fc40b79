// Volume: format, the one-daemon lock, and opening the parts.
#include "backend/volume/volume.h"

#include <unistd.h>

#include <algorithm>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"
#include "backend/blob/disk_block_cache.h"
#include "backend/blob/local_blob_store.h"
#include "backend/services/replica_owner.h"
#include "backend/services/shared_blob_store.h"
#include "backend/services/storage_maintenance.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/volume/ownership.h"
#include "backend/volume/s3_targets.h"
#include "backend/volume/shared_volume.h"

namespace cairn {
namespace {

constexpr char kLastStopName[] = "last-stop";

// Whether `path` is on VOLUME_DIR's filesystem (the one whose room the
// reserve keeps): a path that cannot be looked at counts as there.
bool OnVolumeFilesystem(Env* env, const std::string& volume_dir, const std::string& path) {
  absl::StatusOr<FileInfo> volume_info = env->Stat(volume_dir);
  absl::StatusOr<FileInfo> info = env->Stat(path);
  return !volume_info.ok() || !info.ok() || info->device == volume_info->device;
}

// Where written data lands against VOLUME_DIR's filesystem.
DataPlacement PlacementOf(Env* env, const std::string& volume_dir, const std::string& cache_dir,
                          const std::vector<std::string>& disks, const Redundancy& redundancy) {
  const auto here = [&](const std::string& path) {
    return OnVolumeFilesystem(env, volume_dir, path);
  };
  DataPlacement placement;
  placement.journal_here = here(cache_dir);
  const int disks_here =
      static_cast<int>(std::count_if(disks.begin(), disks.end(), here));
  placement.shards_here = std::min(disks_here, redundancy.total_shards());
  placement.data_shards = redundancy.data_shards;
  return placement;
}

std::string Join(const std::string& dir, const char* name) {
  return dir + "/" + name;
}

std::string RandomVolumeId() {
  std::random_device device;  // /dev/urandom on Linux
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&id, "%08x", device());
  return id;
}

// True when `dir` is missing, or a directory holding nothing but `allowed`
// entries (lost+found of a fresh filesystem, a restore's marker).
absl::StatusOr<bool> DirIsFree(Env* env, const std::string& dir,
                               std::initializer_list<std::string_view> allowed) {
  absl::StatusOr<FileInfo> info = env->Stat(dir);
  if (!info.ok()) {
    if (IsNotFoundError(info.status())) return true;
    return info.status();
  }
  if (!info->is_directory) return false;
  absl::StatusOr<std::vector<std::string>> names = env->ListDir(dir);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) return false;
  }
  return true;
}

// A disk directory is often the root of a freshly made filesystem, which
// holds lost+found: that one entry does not make it "in use".
absl::StatusOr<bool> DiskDirIsFree(Env* env, const std::string& dir) {
  return DirIsFree(env, dir, {"lost+found"});
}

// Empties a directory but for the `kept` entries (a disk's lost+found).
absl::Status EmptyDir(Env* env, const std::string& dir,
                      std::initializer_list<std::string_view> kept) {
  absl::StatusOr<std::vector<std::string>> names = env->ListDir(dir);
  if (!names.ok()) return IsNotFoundError(names.status()) ? absl::OkStatus() : names.status();
  for (const std::string& name : *names) {
    if (std::find(kept.begin(), kept.end(), name) != kept.end()) continue;
    if (absl::Status s = RemoveAll(env, Join(dir, name.c_str())); !s.ok()) return s;
  }
  return env->SyncDir(dir);
}

// The disks a format is given, checked before anything is written: each a
// directory (or missing), none the volume directory or inside another disk
// (nor the volume directory inside one), none of a volume a daemon has open
// (whatever --force says), and without --force none that holds anything.
absl::Status CheckDiskDirs(Env* env, const std::string& volume_dir,
                           const std::vector<std::string>& disks, bool force) {
  for (size_t i = 0; i < disks.size(); ++i) {
    const std::string& disk = disks[i];
    for (size_t j = 0; j < disks.size(); ++j) {
      if (i == j) continue;
      if (disks[j] == disk) {
        return absl::InvalidArgumentError(
            absl::StrCat("disk directory ", disk, " is given twice; every --disk must be a "
                         "different directory (ideally on a different drive)"));
      }
      if (PathIsWithin(disk, disks[j])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "disk directory ", disk, " is inside disk directory ", disks[j],
            "; give each disk its own directory, none inside another"));
      }
    }
    if (disk == volume_dir || PathIsWithin(volume_dir, disk)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "disk directory ", disk,
          disk == volume_dir ? " is the volume directory itself"
                             : absl::StrCat(" holds the volume directory ", volume_dir),
          "; give the disks directories of their own"));
    }
    absl::StatusOr<FileInfo> info = env->Stat(disk);
    if (info.ok() && !info->is_directory) {
      return absl::InvalidArgumentError(
          absl::StrCat("disk ", disk, " is not a directory; give the directory the disk is "
                       "mounted on (or one to create)"));
    }
    if (!info.ok()) continue;  // created by the format
    absl::StatusOr<bool> in_use = StripedBlobStore::DiskInUse(env, disk);
    if (!in_use.ok()) return in_use.status();
    absl::StatusOr<StripedBlobStore::DiskIdentity> identity =
        StripedBlobStore::ReadDiskIdentity(env, disk);
    if (*in_use) {
      return absl::FailedPreconditionError(absl::StrCat(
          "disk directory ", disk, " is a disk of volume ",
          identity.ok() ? identity->volume_id : "(unknown)",
          ", which a running daemon has open; it is never erased, even with --force. "
          "Unmount that volume first if you mean to reuse its disk"));
    }
    absl::StatusOr<bool> free = DiskDirIsFree(env, disk);
    if (!free.ok()) return free.status();
    if (*free) continue;
    if (!force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "disk directory ", disk,
          identity.ok() ? absl::StrCat(" is disk ", identity->index, " of volume ",
                                       identity->volume_id)
                        : " is not empty",
          "; use --force to erase it"));
    }
    if (identity.ok()) {
      LogWarning("erasing disk %s: disk %d of %d of volume %s, which is lost with it unless "
                 "its other disks can rebuild it",
                 disk, identity->index, identity->count, identity->volume_id);
    }
  }
  return absl::OkStatus();
}

// "PID MOUNTPOINT" from a lock file's content.
MountRecord ParseLockContent(const std::string& text) {
  MountRecord record;
  size_t space = text.find(' ');
  if (!absl::SimpleAtoi(text.substr(0, space), &record.pid)) record.pid = 0;
  if (space != std::string::npos) {
    std::string rest(absl::StripTrailingAsciiWhitespace(text.substr(space + 1)));
    // A mountpoint is an absolute path; "s3 URL" is the only other record.
    if (absl::StartsWith(rest, "s3 ")) {
      record.s3_only_url = rest.substr(3);
    } else {
      record.mountpoint = rest;
    }
  }
  return record;
}

}  // namespace

std::string HolderAndRemedy(const MountRecord& holder, const std::string& volume_dir) {
  if (!holder.s3_only_url.empty()) {
    return absl::StrCat(" (serving it over S3 at ", holder.s3_only_url,
                        " without a mount: cairn serve s3); stop it first: cairn umount ",
                        volume_dir);
  }
  return absl::StrCat(
      holder.mountpoint.empty() ? std::string()
                                : absl::StrCat(" (mounted at ", holder.mountpoint, ")"),
      "; unmount it first: cairn umount ",
      holder.mountpoint.empty() ? "MOUNTPOINT" : holder.mountpoint);
}

namespace {

// The namespace records the format the volume was made in; cairn.toml only
// repeats it, and an edited copy would make the store read the wrong layout.
absl::Status CheckFormatVersion(NamespaceStore& ns, const std::string& volume_dir,
                                const VolumeConfig& config) {
  absl::StatusOr<std::optional<std::string>> recorded = ns.GetVolumeMeta("format_version");
  if (!recorded.ok()) return recorded.status();
  if (!recorded->has_value()) return absl::OkStatus();  // older than the record
  if (**recorded == std::to_string(config.format_version)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "cairn.toml of ", volume_dir, " says format_version = ", config.format_version,
      ", but the volume's namespace was made in format ", **recorded,
      "; cairn.toml was edited or copied from another volume. Put back format_version = ",
      **recorded, " (cairn fsck --repair ", volume_dir, " does it)"));
}

absl::Status RememberConfig(NamespaceStore& ns, const VolumeConfig& config) {
  // Secrets stay in the owner-only file: the namespace goes to backups.
  const std::string text = ConfigText(WithoutSecrets(config));
  absl::StatusOr<std::optional<std::string>> kept = ns.GetVolumeMeta(kMountedConfigKey);
  if (!kept.ok()) return kept.status();
  if (kept->has_value() && **kept == text) return absl::OkStatus();
  return ns.SetVolumeMeta(kMountedConfigKey, text);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileLock>> LockUnmountedVolume(const std::string& volume_dir,
                                                               Env* env) {
  absl::StatusOr<std::unique_ptr<FileLock>> lock = env->LockFile(Join(volume_dir, kLockName));
  if (GetFsErrorKind(lock.status()) == FsErrorKind::kBusy) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", volume_dir, " is in use by a running cairn process; unmount it first"));
  }
  return lock;
}

absl::StatusOr<std::vector<std::string>> SalvageNamespaceLog(const std::string& volume_dir,
                                                              const Io& io) {
  const std::string dir = AbsolutePath(volume_dir);
  absl::StatusOr<std::unique_ptr<FileLock>> lock = LockUnmountedVolume(dir, io.env);
  if (!lock.ok()) return lock.status();
  std::vector<std::string> dropped;
  NamespaceOptions options;
  options.env = io.env;
  options.clock = io.clock;
  {
    absl::StatusOr<std::unique_ptr<NamespaceStore>> intact =
        NamespaceStore::Open(Join(dir, kNamespaceDir), options);
    if (intact.ok()) return dropped;
    if (!absl::IsDataLoss(intact.status())) return intact.status();
  }
  options.salvaged_log = &dropped;
  absl::StatusOr<std::unique_ptr<NamespaceStore>> ns =
      NamespaceStore::Open(Join(dir, kNamespaceDir), options);
  if (!ns.ok()) return ns.status();
  return dropped;
}

absl::StatusOr<MountRecord> ReadMountRecord(const std::string& volume_dir, Env* env) {
  const std::string path = Join(AbsolutePath(volume_dir), kLockName);
  absl::StatusOr<bool> locked = env->IsLocked(path);
  if (!locked.ok()) return locked.status();
  if (!*locked) return MountRecord();
  absl::StatusOr<std::string> text = ReadFileToString(env, path);
  MountRecord record = text.ok() ? ParseLockContent(*text) : MountRecord();
  record.mounted = true;
  return record;
}

absl::StatusOr<VolumeConfig> FormatVolume(const std::string& volume_dir,
                                          const FormatOptions& options, const Io& io) {
  Env* const env = io.env;
  const std::string dir = AbsolutePath(volume_dir);
  absl::StatusOr<FileInfo> dir_info = env->Stat(dir);
  if (dir_info.ok() && !dir_info->is_directory) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory; choose another path"));
  }
  const bool existing_volume = IsVolumeDir(dir, env);
  // A restore's marker is all a directory being restored may hold.
  absl::StatusOr<bool> free =
      options.restoring ? DirIsFree(env, dir, {kRestoreMarkerName}) : DirIsFree(env, dir, {});
  if (!free.ok()) return free.status();
  if (!options.force && !*free) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, existing_volume ? " already holds a cairn volume" : " is not empty",
        "; refusing to format over it. Use --force to erase it"));
  }
  absl::StatusOr<MountRecord> mounted = ReadMountRecord(dir, env);
  if (mounted.ok() && mounted->mounted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", dir, " is in use by process ", mounted->pid, HolderAndRemedy(*mounted, dir)));
  }
  // Everything is checked before anything is written: a refused format
  // leaves nothing half made.
  const bool shared = options.shared_namespace.has_value();
  if (shared != options.shared_blobs.has_value()) {
    return absl::InvalidArgumentError(
        "a volume several hosts mount needs both --namespace and --blobs");
  }
  if (shared && (!options.disks.empty() || options.redundancy)) {
    return absl::InvalidArgumentError(
        "a shared volume keeps its data in the --blobs bucket: --disk, --ec and --copies do "
        "not apply to it");
  }
  std::vector<std::string> disks;
  for (const std::string& disk : options.disks) disks.push_back(AbsolutePath(disk));
  if (absl::Status s = CheckDiskDirs(env, dir, disks, options.force); !s.ok()) return s;
  const size_t disk_count = std::max<size_t>(1, disks.size());
  Redundancy redundancy = options.redundancy.value_or(DefaultRedundancy(disk_count));
  if (static_cast<size_t>(redundancy.total_shards()) > disk_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redundancy ", redundancy.ToString(), " needs at least ", redundancy.total_shards(),
        " disks (one per shard); ", disk_count, " given. Add --disk directories or choose "
        "less redundancy"));
  }
  {
    VolumeConfig planned;
    planned.disks = disks;
    planned.cache_dir = Join(dir, "cache");
    if (absl::Status s = OwnershipError(dir, CheckVolumeOwnership(env, dir, planned, geteuid(),
                                                                   /*check_roots=*/false));
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CreateDirs(env, dir); !s.ok()) return s;
  // Owner-only whoever made the directory: the volume holds every file's
  // bytes whatever their own modes say.
  if (absl::Status s = env->SetPermissions(dir, 0700); !s.ok()) return s;
  if (options.force) {
    // The config goes first, so an interrupted wipe never leaves something
    // that looks like a volume.
    for (const char* name : {kConfigName, kNamespaceDir, kDataDir, "cache"}) {
      if (absl::Status s = RemoveAll(env, Join(dir, name)); !s.ok()) return s;
    }
    if (absl::Status s = options.restoring ? EmptyDir(env, dir, {kLockName, kRestoreMarkerName})
                                           : EmptyDir(env, dir, {kLockName});
        !s.ok()) {
      return s;
    }
    for (const std::string& disk : disks) {
      if (absl::Status s = EmptyDir(env, disk, {"lost+found"}); !s.ok()) return s;
    }
  }
  VolumeConfig config;
  config.volume_id = options.volume_id.empty() ? RandomVolumeId() : options.volume_id;
  config.disks = disks;
  config.redundancy = redundancy;
  config.cache_dir = Join(dir, "cache");
  NamespaceOptions ns_options;
  ns_options.create_if_missing = true;
  ns_options.env = env;
  ns_options.clock = io.clock;
  if (shared) {
    config.shared_namespace = options.shared_namespace;
    config.shared_blobs = options.shared_blobs;
    if (absl::Status s = FormatSharedNamespace(config, io, ns_options); !s.ok()) return s;
    if (absl::Status s = SaveVolumeConfig(dir, config, env); !s.ok()) return s;
    return config;
  }
  {
    absl::StatusOr<std::unique_ptr<NamespaceStore>> ns =
        NamespaceStore::Open(Join(dir, kNamespaceDir), ns_options);
    if (!ns.ok()) return ns.status();
    if (absl::Status s = (*ns)->SetVolumeMeta("volume_id", config.volume_id); !s.ok()) return s;
    if (absl::Status s = (*ns)->SetVolumeMeta(
            "format_version", std::to_string(kVolumeFormatVersion));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = (*ns)->Sync(); !s.ok()) return s;
  }
  std::vector<std::string> data_disks = config.DataDisks(dir);
  for (size_t i = 0; i < data_disks.size(); ++i) {
    if (absl::Status s = CreateDirs(env, data_disks[i]); !s.ok()) return s;
    if (absl::Status s = env->SetPermissions(data_disks[i], 0700); !s.ok()) return s;
    if (absl::Status s = StripedBlobStore::PrepareDisk(env, data_disks[i], config.volume_id,
                                                       static_cast<int>(i),
                                                       static_cast<int>(data_disks.size()));
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = SaveVolumeConfig(dir, config, env); !s.ok()) return s;
  return config;
}


absl::StatusOr<std::unique_ptr<Volume>> Volume::Open(const std::string& volume_dir,
                                                     const VolumeConfig& config, const Io& io,
                                                     VolumeOpenOptions open_options) {
  const bool restoring = open_options.restoring;
  const bool read_only = open_options.read_only;
  Env* const env = io.env;
  std::unique_ptr<Volume> volume(new Volume());
  volume->dir_ = AbsolutePath(volume_dir);
  volume->io_ = io;
  volume->read_only_ = read_only;
  if (!restoring && env->Exists(Join(volume->dir_, kRestoreMarkerName))) {
    return absl::FailedPreconditionError(absl::StrCat(
        volume->dir_, " is a volume cairn restore has not finished building; run the same "
        "cairn restore command again to finish it (or delete the directory and its disks)"));
  }
  volume->config_ = config;
  // Before anything is read or written: a backing store other users can
  // read leaks every file's data, whatever the files' modes say.
  if (absl::Status s = OwnershipError(
          volume->dir_, CheckVolumeOwnership(env, volume->dir_, config, geteuid()));
      !s.ok()) {
    return s;
  }
  const std::string lock_path = Join(volume->dir_, kLockName);
  absl::StatusOr<std::unique_ptr<FileLock>> lock = env->LockFile(lock_path);
  if (!lock.ok()) {
    if (GetFsErrorKind(lock.status()) != FsErrorKind::kBusy) return lock.status();
    absl::StatusOr<std::string> text = ReadFileToString(env, lock_path);
    MountRecord holder = text.ok() ? ParseLockContent(*text) : MountRecord();
    return absl::FailedPreconditionError(absl::StrCat("volume ", volume->dir_,
                                                      " is already in use by process ",
                                                      holder.pid,
                                                      HolderAndRemedy(holder, volume->dir_)));
  }
  volume->lock_ = std::move(*lock);
  if (config.format_version > kVolumeFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", volume->dir_, " has format version ", config.format_version,
        ", newer than this cairn supports (", kVolumeFormatVersion,
        "); upgrade cairn"));
  }
  NamespaceOptions ns_options;
  const MemoryPlan memory = PlanMemory(config);
  ns_options.cache_bytes = memory.namespace_cache_bytes;
  ns_options.write_buffer_bytes = memory.namespace_write_bytes;
  ns_options.gc_grace_seconds = config.gc_grace_seconds;
  ns_options.queue_replication = config.replica.has_value();
  ns_options.env = env;
  ns_options.clock = io.clock;
  ns_options.read_only = read_only;
  // A shared volume's namespace is on the database server's disks.
  if (!read_only && !config.shared()) {
    volume->reserve_ = std::make_unique<SpaceReserve>(env, volume->dir_, io.clock);
    volume->reserve_->PrepareForOpen();
    // The reserve's purpose: a change (a delete above all) that finds the
    // disk full gets the room at once, not at the next look of Tend.
    ns_options.make_room = [reserve = volume->reserve_.get()] {
      if (!reserve->held()) return false;
      reserve->Release("a change of the namespace found the disk full");
      return !reserve->held();
    };
  }
  SharedSessionInfo session{open_options.mountpoint};
  absl::StatusOr<std::unique_ptr<NamespaceStore>> ns =
      config.shared()
          ? OpenSharedNamespace(config, ns_options, open_options.session ? &session : nullptr)
          : NamespaceStore::Open(Join(volume->dir_, kNamespaceDir), ns_options);
  const auto out_of_space = [&ns] {
    return GetFsErrorKind(ns.status()) == FsErrorKind::kNoSpace;
  };
  if (out_of_space() && volume->reserve_ != nullptr && volume->reserve_->held()) {
    // Replaying the log after a crash writes a table: give it the room.
    volume->reserve_->Release("opening the namespace ran out of space");
    ns = NamespaceStore::Open(Join(volume->dir_, kNamespaceDir), ns_options);
  }
  if (out_of_space()) {
    return FsError(FsErrorKind::kNoSpace,
                   absl::StrCat(ns.status().message(), ". The filesystem of ", volume->dir_,
                                " is full: free space there, or mount the volume read-only "
                                "(-o ro), which writes nothing"));
  }
  if (absl::IsDataLoss(ns.status())) {
    return absl::DataLossError(absl::StrCat(
        ns.status().message(), ". cairn fsck --repair ", volume->dir_,
        " keeps every intact change and says what was lost; or restore the last backup "
        "(cairn restore)"));
  }
  if (!ns.ok()) return ns.status();
  absl::StatusOr<std::optional<std::string>> id = (*ns)->GetVolumeMeta("volume_id");
  if (!id.ok()) return id.status();
  if (!id->has_value() || **id != config.volume_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the namespace database in ", volume->dir_, " belongs to volume ",
        id->value_or("(none)"), ", but cairn.toml names volume ",
        config.volume_id, "; the directory was assembled from two volumes"));
  }
  if (absl::Status s = CheckFormatVersion(**ns, volume->dir_, config); !s.ok()) return s;
  // Kept so `cairn fsck --repair` can rebuild a lost cairn.toml as it was at
  // the last mount (disks, cache_dir, the remote targets).
  // Only for a cairn.toml lost later: a full disk must not cost the mount.
  if (absl::Status s = read_only ? absl::OkStatus() : RememberConfig(**ns, config); !s.ok()) {
    LogWarning("could not keep a copy of cairn.toml in the namespace (%s); cairn fsck --repair "
               "can rebuild a lost cairn.toml only from the copy an earlier mount kept",
               s.ToString());
  }
  volume->namespace_ = std::move(*ns);
  if (config.shared()) {
    if (absl::Status s = OpenSharedBlobs(*volume); !s.ok()) return s;
    if (uint64_t session = volume->namespace_->session_id(); session != 0) {
      PgFileLocksOptions locks;
      locks.url = config.shared_namespace->url;
      locks.session_id = session;
      absl::StatusOr<std::unique_ptr<PgFileLocks>> opened = PgFileLocks::Open(locks);
      if (!opened.ok()) return opened.status();
      volume->file_locks_ = std::move(*opened);
    }
    return FinishOpen(std::move(volume));
  }
  if (config.format_version == 1) {
    std::string data_dir =
        config.disks.empty() ? Join(volume->dir_, kDataDir) : config.disks[0];
    if (!env->Exists(data_dir)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", data_dir, " of volume ", volume->dir_,
          " is missing; is the disk mounted?"));
    }
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> blobs = LocalBlobStore::Open(data_dir, env);
    if (!blobs.ok()) return blobs.status();
    volume->blobs_ = std::move(*blobs);
  } else {
    StripedStoreOptions store_options;
    store_options.volume_id = config.volume_id;
    store_options.redundancy = config.redundancy;
    store_options.disks = config.DataDisks(volume->dir_);
    store_options.env = env;
    store_options.read_only = read_only;
    NamespaceStore* ns_for_repairs = volume->namespace_.get();
    store_options.queue_repair = [ns_for_repairs, read_only](BlobId id) {
      if (read_only) return;  // the next read-write mount's scrub finds it
      if (absl::Status s = ns_for_repairs->QueueRepair(id); !s.ok()) {
        LogError("could not queue blob %d for repair: %s (the next scrub finds it)", id,
                 s.message());
      }
    };
    absl::StatusOr<std::unique_ptr<StripedBlobStore>> blobs =
        StripedBlobStore::Open(std::move(store_options));
    if (!blobs.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "volume ", volume->dir_, " cannot be opened: ", blobs.status().message()));
    }
    volume->striped_ = blobs->get();
    volume->blobs_ = std::move(*blobs);
  }
  if (volume->reserve_ != nullptr) {
    // A format 1 volume keeps whole blobs in its one data directory.
    const Redundancy redundancy = config.format_version == 1 ? Redundancy() : config.redundancy;
    volume->reserve_->SetPlacement(PlacementOf(env, volume->dir_, config.cache_dir,
                                               config.DataDisks(volume->dir_), redundancy));
  }
  if (config.tier) {
    // Nothing is sent to the remote here: a mount works while it is down.
    absl::StatusOr<s3::S3Options> options =
        TierS3Options(*config.tier, config.ConfigFile(volume->dir_), env);
    if (!options.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the remote tier of ", volume->dir_, ": ", options.status().message()));
    }
    absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client = io.remote->Open(*options);
    if (!client.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the remote tier of ", volume->dir_, ": ", client.status().message()));
    }
    auto tracked = std::make_unique<s3::HealthTrackingStore>(std::move(*client), io.clock);
    volume->tier_health_ = tracked.get();
    volume->tier_client_ = std::move(tracked);
    volume->remote_ = std::make_unique<RemoteBlobStore>(*volume->tier_client_, config.tier->prefix,
                                                        config.volume_id);
    if (config.replica && config.tier->SameObjectsAs(*config.replica)) {
      volume->remote_->LeaveDeletesToReplicaGc();
    }
    if (config.tier->cache_bytes > 0 && !read_only) {
      absl::StatusOr<std::unique_ptr<DiskBlockCache>> cache =
          DiskBlockCache::Open(Join(config.cache_dir, "tier-blocks"),
                               static_cast<uint64_t>(config.tier->cache_bytes), env, io.clock);
      if (cache.ok()) {
        volume->tier_block_cache_ = std::move(*cache);
        // Blocks fetched again cost a read of the remote; refused writes
        // cost the user's data: the cache gives up its room first.
        if (volume->reserve_ != nullptr &&
            OnVolumeFilesystem(env, volume->dir_, Join(config.cache_dir, "tier-blocks"))) {
          volume->reserve_->AddRoomGiver([block_cache = volume->tier_block_cache_.get()](
                                             uint64_t wanted) {
            return block_cache->ReleaseSpace(wanted);
          });
        }
      } else {
        // Reads of tiered data still work, each one from the remote.
        LogWarning("the remote tier's block cache in %s cannot be used: %s", config.cache_dir,
                   cache.status().message());
      }
    }
    volume->tiered_ = std::make_unique<TieredBlobStore>(*volume->namespace_, *volume->blobs_,
                                                        *volume->remote_,
                                                        volume->tier_block_cache_.get());
    volume->mover_ = std::make_unique<TierMover>(*volume->namespace_, *volume->blobs_,
                                                 *volume->remote_);
    if (SpaceReserve* reserve = volume->reserve_.get()) {
      volume->mover_->SetRoomCheck(
          [reserve](uint64_t bytes) { return reserve->CheckRoomForData(0, bytes); });
    }
  }
  if (config.replica) {
    absl::StatusOr<s3::S3Options> options =
        S3TargetOptions(*config.replica, config.ConfigFile(volume->dir_), env);
    absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client =
        options.ok() ? io.remote->Open(*options)
                     : absl::StatusOr<std::unique_ptr<s3::ObjectStore>>(options.status());
    if (!client.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the replica of ", volume->dir_, ": ", client.status().message()));
    }
    volume->replica_client_ = std::move(*client);
    volume->replica_ = std::make_unique<RemoteBlobStore>(
        *volume->replica_client_, config.replica->prefix, config.volume_id);
    // Read-only: no replica owner, so nothing can write the replica.
    if (read_only) return FinishOpen(std::move(volume));
    absl::StatusOr<std::string> token = ReplicaOwnerToken(*volume->namespace_);
    if (!token.ok()) return token.status();
    volume->replica_owner_ = std::make_unique<ReplicaOwner>(
        *volume->replica_client_, absl::StrCat(config.replica->prefix, config.volume_id, "/"),
        *token, io.clock);
    // Blobs stored before replication to this bucket began join the queue.
    absl::StatusOr<uint64_t> queued =
        volume->namespace_->QueueExistingBlobsForReplica(ReplicaTargetName(*config.replica));
    if (!queued.ok()) return queued.status();
    if (*queued > 0) LogInfo("queued %d existing blobs for the replica", *queued);
  }
  return FinishOpen(std::move(volume));
}

absl::Status Volume::OpenSharedBlobs(Volume& volume) {
  const VolumeConfig& config = volume.config_;
  const SharedBlobsConfig& target = *config.shared_blobs;
  // Nothing is sent to the bucket here: a mount works while it is down
  // (reads of what the cache holds go on).
  auto unusable = [&](const absl::Status& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("the bucket of shared volume ", volume.dir_, ": ", why.message()));
  };
  absl::StatusOr<s3::S3Options> options =
      SharedBlobsS3Options(target, config.ConfigFile(volume.dir_), volume.io_.env);
  if (!options.ok()) return unusable(options.status());
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client = volume.io_.remote->Open(*options);
  if (!client.ok()) return unusable(client.status());
  volume.shared_client_ = std::move(*client);
  volume.shared_remote_ = std::make_unique<RemoteBlobStore>(*volume.shared_client_, target.prefix,
                                                            config.volume_id);
  if (target.cache_bytes > 0 && !volume.read_only_) {
    absl::StatusOr<std::unique_ptr<DiskBlockCache>> cache =
        DiskBlockCache::Open(Join(config.cache_dir, "blob-blocks"),
                             static_cast<uint64_t>(target.cache_bytes), volume.io_.env,
                             volume.io_.clock);
    if (cache.ok()) {
      volume.shared_block_cache_ = std::move(*cache);
    } else {
      // Reads still work, each one from the bucket.
      LogWarning("the block cache in %s cannot be used: %s", config.cache_dir,
                 cache.status().message());
    }
  }
  auto shared = std::make_unique<SharedBlobStore>(*volume.namespace_, *volume.shared_remote_,
                                                  volume.shared_block_cache_.get());
  volume.shared_blobs_ = shared.get();
  volume.blobs_ = std::move(shared);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Volume>> Volume::FinishOpen(std::unique_ptr<Volume> volume) {
  if (volume->read_only_) return volume;  // the next read-write open releases them
  if (volume->reserve_ != nullptr) volume->reserve_->Ensure();
  absl::StatusOr<uint64_t> released = volume->namespace_->ReleaseAllOrphans();
  if (!released.ok()) return released.status();
  if (*released > 0) {
    LogInfo("released %d unlinked files left open by an earlier run", *released);
  }
  return volume;
}

BlobStore& Volume::blobs() {
  if (tiered_) return *tiered_;
  return *blobs_;
}

Volume::~Volume() {
  mover_.reset();
  tiered_.reset();
  tier_block_cache_.reset();
  replica_owner_.reset();
  replica_.reset();
  replica_client_.reset();
  remote_.reset();
  tier_client_.reset();
  blobs_.reset();
  if (file_locks_ != nullptr) {
    // At once for the other hosts, rather than when the session expires.
    if (absl::Status s = file_locks_->ReleaseSession(); !s.ok()) {
      LogWarning("could not release this host's locks (they go when its session ends): %s",
                 s.ToString());
    }
    file_locks_.reset();
  }
  shared_block_cache_.reset();
  shared_remote_.reset();
  shared_client_.reset();
  namespace_.reset();
  lock_.reset();  // last: the next daemon may take the volume from here on
}

absl::StatusOr<int> Volume::ReplaceDisk(const std::string& old_disk,
                                        const std::string& new_disk, bool force) {
  if (striped_ == nullptr) {
    return absl::FailedPreconditionError(
        "this volume has format 1 (one data directory, no shards); disk replace needs a "
        "volume formatted by this cairn");
  }
  if (config_.redundancy.parity_shards == 0) {
    return absl::FailedPreconditionError(
        "this volume keeps one copy of its data (redundancy plain): there is nothing to "
        "rebuild a disk from. Copy the files to a new volume instead");
  }
  std::vector<std::string> disks = config_.DataDisks(dir_);
  std::string old_abs = AbsolutePath(old_disk);
  int index = -1;
  for (size_t i = 0; i < disks.size(); ++i) {
    if (disks[i] == old_abs) index = static_cast<int>(i);
  }
  int given_index = -1;
  if (index < 0 && absl::SimpleAtoi(old_disk, &given_index) && given_index >= 0 &&
      given_index < static_cast<int>(disks.size())) {
    index = given_index;
  }
  if (index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        old_disk, " is not a disk of volume ", dir_, "; its disks are: ",
        absl::StrJoin(disks, ", ")));
  }
  std::string new_abs = AbsolutePath(new_disk);
  for (size_t i = 0; i < disks.size(); ++i) {
    if (disks[i] == new_abs && static_cast<int>(i) != index) {
      return absl::InvalidArgumentError(
          absl::StrCat(new_abs, " is already disk ", i, " of this volume"));
    }
  }
  std::vector<DiskInfo> states = striped_->Disks();
  if (states[index].state == DiskState::kOk && new_abs == disks[index]) {
    return absl::FailedPreconditionError(absl::StrCat(
        "disk ", disks[index], " is working; give a new directory to move it there, or run "
        "cairn scrub to repair bad shards"));
  }
  absl::StatusOr<bool> free = DiskDirIsFree(io_.env, new_abs);
  if (!free.ok()) return free.status();
  if (!*free) {
    if (!force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "new disk directory ", new_abs,
          " is not empty; use an empty directory (or --force to erase it)"));
    }
    if (absl::Status s = EmptyDir(io_.env, new_abs, {"lost+found"}); !s.ok()) return s;
  }
  {
    VolumeConfig planned = config_;
    planned.disks = {new_abs};
    planned.cache_dir.clear();
    std::vector<OwnershipProblem> problems =
        CheckVolumeOwnership(io_.env, dir_, planned, geteuid(), /*check_roots=*/false);
    if (absl::Status s = OwnershipError(dir_, problems); !s.ok()) return s;
  }
  if (absl::Status s = StripedBlobStore::PrepareDisk(io_.env, new_abs, config_.volume_id, index,
                                                     static_cast<int>(disks.size()));
      !s.ok()) {
    return s;
  }
  // Owner-only whoever made the directory (a fresh filesystem's root is
  // 0755): it is about to hold the volume's data.
  if (absl::Status s = io_.env->SetPermissions(new_abs, 0700); !s.ok()) return s;
  if (absl::Status s = namespace_->SetVolumeMeta(kRebuildPendingKey, absl::StrCat(index));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = namespace_->Sync(); !s.ok()) return s;
  if (absl::Status s = striped_->ReplaceDisk(index, new_abs); !s.ok()) return s;
  disks[index] = new_abs;
  config_.disks = disks;
  if (absl::Status s = SaveVolumeConfig(dir_, config_, io_.env); !s.ok()) return s;
  LogInfo("disk %d of volume %s replaced by %s; rebuilding its shards", index, dir_, new_abs);
  return index;
}

void Volume::RecordStop(const absl::Status& status) {
  std::string text = status.ok() ? "ok\n" : absl::StrCat("error ", status.message(), "\n");
  if (absl::Status s = WriteFileAtomically(io_.env, Join(dir_, kLastStopName), text); !s.ok()) {
    LogWarning("could not record how the daemon stopped: %s", s.ToString());
  }
}

bool LastStopWasClean(const std::string& volume_dir, Env* env) {
  absl::StatusOr<std::string> text =
      ReadFileToString(env, Join(AbsolutePath(volume_dir), kLastStopName));
  return text.ok() && text->substr(0, text->find('\n')) == "ok";
}

std::optional<std::string> ReadStopError(const std::string& volume_dir, Env* env) {
  absl::StatusOr<std::string> text =
      ReadFileToString(env, Join(AbsolutePath(volume_dir), kLastStopName));
  if (!text.ok() || text->rfind("error ", 0) != 0) return std::nullopt;
  return std::string(absl::StripTrailingAsciiWhitespace(text->substr(6)));
}

absl::Status Volume::RecordMount(pid_t pid, const std::string& mountpoint) {
  return WriteLockRecord(absl::StrCat(pid, " ", mountpoint, "\n"));
}

absl::Status Volume::RecordServingS3Only(pid_t pid, const std::string& url) {
  return WriteLockRecord(absl::StrCat(pid, " s3 ", url, "\n"));
}

absl::Status Volume::WriteLockRecord(const std::string& text) {
  if (absl::Status s = io_.env->Remove(Join(dir_, kLastStopName)); !s.ok()) return s;
  File& file = lock_->file();
  // Over the old record first, then cut: the block the record already has
  // is reused, so a full disk does not refuse it.
  if (absl::Status s = file.PWrite(0, text); !s.ok()) return s;
  if (absl::Status s = file.Truncate(text.size()); !s.ok()) return s;
  return file.Sync();
}

}  // namespace cairn
