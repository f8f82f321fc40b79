#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "backend/base/crc32c.h"
#include "backend/base/env.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/services/unclaimed_remote.h"
#include "backend/volume/s3_targets.h"
#include "backend/s3/s3_client.h"
#include "backend/services/storage_maintenance.h"
#include "backend/volume/config_recovery.h"
#include "backend/volume/ownership.h"
#include "backend/volume/shared_volume.h"
#include "backend/volume/volume.h"
#include "cache/writeback_journal.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kFsckHelp[] =
    "usage: cairn fsck VOLUME_DIR [--repair [--disk DIR]...]\n"
    "\n"
    "Checks an unmounted volume: every namespace record against the others\n"
    "(directory entries, link counts, file sizes, extents, blob references,\n"
    "counters), every shard of every blob a file references (present,\n"
    "readable, checksums, decoding to the length and CRC32C the namespace\n"
    "recorded), shard files on the disks that no blob record claims, and,\n"
    "with a remote tier, that every tiered blob's object exists and which\n"
    "objects and unfinished multipart uploads no blob record claims.\n"
    "Prints each problem found, and its progress (a bar on a terminal, a\n"
    "line every 10 seconds elsewhere). Without --repair it writes nothing (so\n"
    "it works on a full disk); with it, like a mount, it also releases files\n"
    "that were deleted while still open when the volume was last used.\n"
    "\n"
    "options:\n"
    "  --repair  rewrite bad shards from the good ones, delete shards and\n"
    "            remote objects no blob record claims (and abort unfinished\n"
    "            multipart uploads), and empty the repair queue of what is\n"
    "            fixed; says what it fixed. Namespace problems are reported,\n"
    "            not changed. It also makes the backing store owner-only\n"
    "            (directories 0700, files 0600, as a volume made by an older\n"
    "            cairn is not), puts back the format_version the namespace\n"
    "            recorded if cairn.toml was edited, and rebuilds a deleted\n"
    "            cairn.toml from the namespace and the disks' markers. A\n"
    "            namespace log a crash left with a damaged record (the\n"
    "            mount refuses it) is replayed past the damage: every\n"
    "            intact change is kept, and it says how many bytes of\n"
    "            changes were dropped.\n"
    "  --disk DIR  with --repair when cairn.toml is lost: the volume's disk\n"
    "            directories (each, any order), for a volume the namespace\n"
    "            does not know the disks of (last mounted by an older cairn)\n"
    "            or whose disks moved.\n"
    "\n"
    "Exit status (as fsck(8)): 0 no problems, 1 problems found and all\n"
    "fixed, 4 problems left, 8 the check could not run (not a volume,\n"
    "mounted, unreadable), 16 bad command line.\n";

namespace {

constexpr int kFsckClean = 0;
constexpr int kFsckFixed = 1;
constexpr int kFsckProblems = 4;
constexpr int kFsckCannotRun = 8;
constexpr int kFsckUsage = 16;

int CannotRun(const std::string& message) {
  fprintf(stderr, "cairn: fsck: %s\n", message.c_str());
  return kFsckCannotRun;
}

void PrintFindings(const std::vector<std::string>& problems, const std::vector<std::string>& fixed,
                   const std::vector<std::string>& notes) {
  for (const std::string& problem : problems) printf("problem: %s\n", problem.c_str());
  for (const std::string& line : fixed) printf("fixed: %s\n", line.c_str());
  for (const std::string& line : notes) printf("note: %s\n", line.c_str());
}

// What must hold before the volume can be opened at all: a cairn.toml that
// agrees with the namespace, and a backing store only its owner can read.
// With `repair` these are fixed; otherwise they are problems and the check
// stops (kFsckProblems), as a mount would refuse the volume.
absl::StatusOr<int> PrepareVolumeForCheck(const std::string& volume_dir, bool repair,
                                          const std::vector<std::string>& disks,
                                          std::vector<std::string>* problems,
                                          std::vector<std::string>* fixed,
                                          std::vector<std::string>* notes) {
  // First: everything below reads the namespace.
  if (repair && Env::Default()->Exists(volume_dir + "/" + kNamespaceDir)) {
    absl::StatusOr<std::vector<std::string>> dropped = SalvageNamespaceLog(volume_dir);
    if (!dropped.ok()) return dropped.status();
    for (const std::string& line : *dropped) {
      fixed->push_back(absl::StrCat("namespace log salvaged past a damaged stretch: ", line));
    }
    if (!dropped->empty()) {
      notes->push_back("the namespace changes in the dropped bytes are lost (files created, "
                       "written, renamed or deleted in the moments they cover); the check "
                       "below names what they left inconsistent");
    }
  }
  if (!IsVolumeDir(volume_dir)) {
    if (!repair) {
      absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
      return config.status();  // says whether fsck --repair can rebuild it
    }
    absl::StatusOr<RecoveredConfig> recovered = RecoverVolumeConfig(volume_dir, disks);
    if (!recovered.ok()) return recovered.status();
    fixed->push_back(absl::StrCat("cairn.toml was missing; rebuilt it for volume ",
                                  recovered->config.volume_id, " (",
                                  recovered->config.DataDisks(volume_dir).size(),
                                  " disks, redundancy ", recovered->config.redundancy.ToString(),
                                  ")"));
    for (const std::string& note : recovered->notes) notes->push_back(note);
  } else if (!disks.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--disk is only for rebuilding a lost cairn.toml, and ", volume_dir,
        " has one; to move a disk, edit disks in cairn.toml (or cairn disk replace)"));
  }
  // A shared volume's namespace is not in VOLUME_DIR: the format version
  // is checked against the database when the volume opens.
  absl::StatusOr<VolumeConfig> loaded = LoadVolumeConfig(volume_dir);
  const bool shared = loaded.ok() && loaded->shared();
  if (repair && !shared) {
    absl::StatusOr<std::optional<std::string>> version = RepairConfigFormatVersion(volume_dir);
    if (!version.ok()) return version.status();
    if (version->has_value()) fixed->push_back(**version);
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return config.status();
  if (repair) {
    std::vector<std::string> paths;
    absl::StatusOr<uint64_t> changed = MakeVolumeOwnerOnly(
        Env::Default(), volume_dir, *config, [&](const std::string& path) {
          if (paths.size() < 5) paths.push_back(path);
        });
    if (!changed.ok()) return changed.status();
    if (*changed > 0) {
      fixed->push_back(absl::StrCat("made ", *changed, " files and directories owner-only (",
                                    absl::StrJoin(paths, ", "), *changed > paths.size() ? ", ..." : "",
                                    ")"));
    }
  }
  std::vector<OwnershipProblem> left =
      CheckVolumeOwnership(Env::Default(), volume_dir, *config, geteuid());
  for (const OwnershipProblem& p : left) {
    problems->push_back(absl::StrCat(p.path, ": ", p.why, "; fix: ", p.fix));
  }
  if (!left.empty()) {
    if (!repair) {
      notes->push_back(absl::StrCat("other users could read the files' data from the backing "
                                    "store; cairn fsck --repair ", volume_dir,
                                    " makes it owner-only (owners and the directories above "
                                    "it need the fixes named)"));
    }
    return kFsckProblems;
  }
  return kFsckClean;
}

}  // namespace

int FsckCommand(const Args& args) {
  std::string target;
  bool repair = false;
  std::vector<std::string> disks;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--repair") {
      repair = true;
      continue;
    }
    std::string missing;
    if (std::optional<std::string> disk = OptionValue(args, i, "--disk", &missing)) {
      disks.push_back(*disk);
      continue;
    }
    if (!missing.empty()) {
      UsageError("fsck", "--disk needs a directory");
      return kFsckUsage;
    }
    if (!arg.empty() && arg[0] == '-') {
      UsageError("fsck", "unknown option '" + arg + "'");
      return kFsckUsage;
    }
    if (!target.empty()) {
      UsageError("fsck", "unexpected argument '" + arg + "'");
      return kFsckUsage;
    }
    target = arg;
  }
  if (target.empty()) {
    UsageError("fsck", "missing VOLUME_DIR");
    return kFsckUsage;
  }
  if (!disks.empty() && !repair) {
    UsageError("fsck", "--disk is for rebuilding a lost cairn.toml; it needs --repair");
    return kFsckUsage;
  }
  std::string volume_dir = AbsolutePath(target);
  if (std::optional<MountEntry> mount = FindCairnMount(volume_dir)) {
    return CannotRun(absl::StrCat(volume_dir, " is a mountpoint of ", mount->volume_dir,
                                  "; unmount it (cairn umount ", volume_dir,
                                  ") and run cairn fsck ", mount->volume_dir));
  }
  std::vector<std::string> problems, fixed, notes;
  absl::StatusOr<int> prepared = PrepareVolumeForCheck(volume_dir, repair, disks, &problems,
                                                       &fixed, &notes);
  if (!prepared.ok()) return CannotRun(std::string(prepared.status().message()));
  if (*prepared != kFsckClean) {
    PrintFindings(problems, fixed, notes);
    return *prepared;
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return CannotRun(std::string(config.status().message()));
  // A repair of a shared volume would change the namespace under the
  // hosts that have it mounted: none may.
  if (repair && config->shared()) {
    NamespaceOptions look;
    look.read_only = true;
    absl::StatusOr<std::unique_ptr<NamespaceStore>> shared =
        OpenSharedNamespace(*config, look, nullptr);
    absl::StatusOr<std::vector<KvStore::SessionInfo>> sessions =
        shared.ok() ? (*shared)->ListSessions()
                    : absl::StatusOr<std::vector<KvStore::SessionInfo>>(shared.status());
    if (!sessions.ok()) return CannotRun(std::string(sessions.status().message()));
    for (const KvStore::SessionInfo& session : *sessions) {
      if (!session.alive) continue;
      return CannotRun(absl::StrCat(
          "the shared volume is mounted on ", session.host, " (pid ", session.pid, ", at ",
          session.mountpoint.empty() ? "no mountpoint: S3 only" : session.mountpoint,
          "); unmount it on every host (cairn status lists them) before cairn fsck --repair"));
    }
  }
  // A check alone changes nothing (and so works on a full disk).
  VolumeOpenOptions open;
  open.read_only = !repair;
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(volume_dir, *config, Io(), open);
  if (absl::IsDataLoss(volume.status())) {  // without --repair; see PrepareVolumeForCheck
    problems.push_back(std::string(volume.status().message()));
    PrintFindings(problems, fixed, notes);
    return kFsckProblems;
  }
  if (!volume.ok()) return CannotRun(std::string(volume.status().message()));

  absl::StatusOr<NamespaceCheckReport> report = (*volume)->ns().Check();
  if (!report.ok()) return CannotRun(std::string(report.status().message()));
  problems.insert(problems.end(), report->problems.begin(), report->problems.end());
  absl::StatusOr<std::vector<std::pair<InodeId, std::string>>> damaged =
      (*volume)->ns().DamagedFiles();
  if (!damaged.ok()) return CannotRun(std::string(damaged.status().message()));
  for (const auto& [ino, why] : *damaged) {
    problems.push_back(absl::StrCat("file inode ", ino, " is damaged: ", why,
                                    "; its reads fail with EIO until it is truncated to 0 "
                                    "bytes or deleted (find MOUNTPOINT -inum ", ino, ")"));
  }

  Progress progress("fsck", "blobs");
  uint64_t checked = 0, blob_bytes = 0;
  StripedBlobStore* striped = (*volume)->striped();
  uint64_t remote_blobs = 0;
  for (const auto& [id, record] : report->blobs) {
    if (InRemoteTierOnly(record.location)) {
      // Its data is in the remote tier: check the object is there.
      remote_blobs++;
      if ((*volume)->remote() == nullptr) {
        problems.push_back(absl::StrCat("blob ", id, " is in the remote tier but the volume has "
                                        "no [tier] section; restore it in cairn.toml"));
      } else if (absl::StatusOr<s3::ObjectInfo> head =
                     (*volume)->tier_client()->HeadObject((*volume)->remote()->KeyOf(id));
                 !head.ok()) {
        problems.push_back(absl::StrCat("blob ", id, " in the remote tier: ",
                                        head.status().message()));
      }
      blob_bytes += record.length;
      continue;
    }
    if (striped != nullptr) {
      BlobCheck check = striped->CheckBlob(id, repair, record.crc32c);
      if (check.lost) {
        for (const std::string& p : check.problems) problems.push_back(p);
      } else if (check.shards_bad > 0 || check.shards_unavailable > 0) {
        std::string what = absl::StrCat("blob ", id, ": ", check.shards_bad, " bad shard(s)",
                                        check.shards_unavailable > 0
                                            ? absl::StrCat(", ", check.shards_unavailable,
                                                           " on unavailable disks")
                                            : "",
                                        " (", check.problems.empty() ? "" : check.problems[0],
                                        ")");
        if (check.shards_repaired == check.shards_bad && check.shards_unavailable == 0) {
          fixed.push_back(absl::StrCat(what, "; rewrote ", check.shards_repaired));
          (*volume)->ns().ClearRepair(id).IgnoreError();
        } else {
          problems.push_back(what);
        }
      }
    } else {
      absl::StatusOr<std::string> data = (*volume)->blobs().Read(id, 0, record.length);
      if (!data.ok()) {
        problems.push_back(absl::StrCat("blob ", id, ": ", data.status().message()));
      } else if (Crc32c(*data) != record.crc32c) {
        problems.push_back(absl::StrCat(
            "blob ", id, " holds other data than the namespace recorded (CRC32C mismatch)"));
      }
    }
    blob_bytes += record.length;
    if (++checked % 16 == 0) progress.Update(checked, report->blobs.size(), blob_bytes);
  }
  progress.Clear();
  if (striped != nullptr) {
    // Nothing stores blobs now (the volume is locked), so a shard without a
    // record is a leftover, never a blob about to be committed.
    std::vector<std::string> orphan_lines;
    absl::StatusOr<uint64_t> orphans =
        FindOrphanShards((*volume)->ns(), *striped, repair, &orphan_lines);
    if (!orphans.ok()) return CannotRun(std::string(orphans.status().message()));
    // Harmless (no file reads them; a mount sweeps those a crash left),
    // so a note rather than a problem.
    for (const std::string& line : orphan_lines) (repair ? fixed : notes).push_back(line);
    if (*orphans > orphan_lines.size()) {
      (repair ? fixed : notes)
          .push_back(absl::StrCat("... and ", *orphans - orphan_lines.size(),
                                  " more blobs' shards without a record"));
    }
    if (!repair && *orphans > 0) {
      notes.push_back("shards without a record are left by an interrupted write or a delete "
                      "while a disk was down; cairn fsck --repair deletes them");
    }
    if (repair) {
      absl::StatusOr<uint64_t> drained = DrainRepairs((*volume)->ns(), *striped, 1 << 20);
      if (drained.ok() && *drained > 0) {
        fixed.push_back(absl::StrCat("emptied ", *drained, " entries of the repair queue"));
      }
    }
    for (const DiskInfo& disk : striped->Disks()) {
      if (disk.state != DiskState::kOk) {
        problems.push_back(absl::StrCat("disk ", disk.index, " (", disk.path, ") is ",
                                        DiskStateName(disk.state), ": ", disk.problem,
                                        "; replace it with cairn disk replace"));
      }
    }
  }

  if ((*volume)->remote() != nullptr && (*volume)->remote()->deletes_left_to_replica_gc()) {
    notes.push_back("the remote tier shares its objects with the replica: leftover objects are "
                    "the replica's garbage collection's (cairn backup gc)");
  } else if ((*volume)->remote() != nullptr) {
    // The volume is locked, so no move is under way: an object no record
    // claims is a leftover (harmless, but stored and paid for).
    std::vector<std::string> lines;
    absl::StatusOr<UnclaimedRemote> unclaimed = SweepUnclaimedRemote(
        (*volume)->ns(), *(*volume)->remote(), *(*volume)->tier_client(), repair, &lines);
    if (!unclaimed.ok()) {
      notes.push_back(absl::StrCat("the remote tier could not be checked for leftover objects: ",
                                   unclaimed.status().message()));
    } else {
      for (const std::string& line : lines) (repair ? fixed : notes).push_back(line);
      uint64_t total = unclaimed->objects + unclaimed->uploads;
      if (total > lines.size()) {
        (repair ? fixed : notes)
            .push_back(absl::StrCat("... and ", total - lines.size(),
                                    " more remote objects or uploads no blob claims"));
      }
      if (!repair && total > 0) {
        notes.push_back("remote objects no blob claims are left by a move or a delete that a "
                        "crash interrupted; cairn fsck --repair deletes them");
      }
    }
  }

  // Journal records waiting for the next mount are normal after a crash.
  const uint64_t journal_segments =
      WritebackJournal::CountSegments(config->cache_dir + "/journal");

  PrintFindings(problems, fixed, notes);
  printf("%s: %llu inodes (%llu directories, %llu files, %llu deleted while open), "
         "%llu extents, %zu blobs (%llu bytes, %llu of them in the remote tier) verified; %zu "
         "problems, %zu fixed\n",
         volume_dir.c_str(), static_cast<unsigned long long>(report->inodes),
         static_cast<unsigned long long>(report->directories),
         static_cast<unsigned long long>(report->files),
         static_cast<unsigned long long>(report->orphans),
         static_cast<unsigned long long>(report->extents), report->blobs.size(),
         static_cast<unsigned long long>(blob_bytes),
         static_cast<unsigned long long>(remote_blobs), problems.size(), fixed.size());
  if (report->multipart_uploads > 0) {
    // Their parts are files deleted while open, kept on purpose.
    printf("note: %llu S3 multipart uploads under way hold %llu parts; they are completed or "
           "aborted over S3, or expire\n",
           static_cast<unsigned long long>(report->multipart_uploads),
           static_cast<unsigned long long>(report->multipart_parts));
  }
  if (journal_segments > 1) {
    printf("note: the writeback journal holds %llu segments; the next mount replays "
           "the writes they hold that the namespace has not committed\n",
           static_cast<unsigned long long>(journal_segments));
  }
  if (!problems.empty()) return kFsckProblems;
  return fixed.empty() ? kFsckClean : kFsckFixed;
}

}  // namespace cairn::cli
