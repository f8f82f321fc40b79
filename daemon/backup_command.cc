// cairn backup (take, list, collect) and cairn restore: the namespace
// backups in the replica bucket and disaster recovery from them
// (backend/namespace_backup.h).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "backend/services/backup.h"
#include "backend/services/backup_service.h"
#include "backend/services/backup_verify.h"
#include "backend/services/replica_gc.h"
#include "backend/volume/restore.h"
#include "backend/services/replication.h"
#include "backend/s3/s3_client.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/services/unclaimed_remote.h"
#include "backend/volume/s3_targets.h"
#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "daemon/cli.h"
#include "daemon/stats_json.h"

namespace cairn::cli {

const char kBackupHelp[] =
    "usage: cairn backup VOLUME_DIR|MOUNTPOINT [--json]\n"
    "       cairn backup list VOLUME_DIR|MOUNTPOINT [--json]\n"
    "       cairn backup list --from s3://BUCKET/PREFIX [--endpoint URL] [--region R]\n"
    "                         [--addressing auto|path|virtual] [--json]\n"
    "       cairn backup gc VOLUME_DIR|MOUNTPOINT [--json]\n"
    "       cairn backup claim VOLUME_DIR|MOUNTPOINT\n"
    "\n"
    "A backup is a consistent copy of the volume's namespace (every file's\n"
    "name, attributes, xattrs and layout), uploaded to the replica bucket of\n"
    "the [replica] section beside the blobs of file data the replicator copies\n"
    "there. It is usable once every blob it needs is in the replica; an\n"
    "interrupted backup is never listed. The daemon takes one every\n"
    "backup_interval_seconds and keeps the newest keep_backups (cairn.toml).\n"
    "\n"
    "  backup   take a backup now: flushes written data, waits until the blobs\n"
    "           it needs are in the replica, uploads; then deletes backups\n"
    "           beyond keep_backups and the objects no kept backup and no file\n"
    "           needs. On a mounted volume the daemon does it.\n"
    "  list     the usable backups, oldest first: id, time (UTC), inodes,\n"
    "           file data, size of the namespace copy. With --from, of a\n"
    "           replica bucket without a volume (credentials from the\n"
    "           environment: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or\n"
    "           AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE).\n"
    "  gc       the clean-up alone: old and interrupted backups, unneeded objects\n"
    "  claim    make this copy of the volume the one that writes the replica.\n"
    "           One copy does (the bucket records which); a volume restored\n"
    "           with --take-over claims it, and the old copy, should it come\n"
    "           back, stops replicating with a message saying so. Claim only\n"
    "           when the other copy is gone for good.\n"
    "\n"
    "cairn restore rebuilds a volume from a backup.\n"
    "\n"
    "Exit status: 0 done, 1 it failed, 2 bad command line.\n";

const char kRestoreHelp[] =
    "usage: cairn restore --from s3://BUCKET/PREFIX [--endpoint URL] [--region R]\n"
    "                     [--addressing auto|path|virtual] [--backup ID] [--take-over]\n"
    "                     NEW_VOLUME_DIR [--disk DIR]...\n"
    "       cairn restore --verify --from s3://BUCKET/PREFIX [--endpoint URL] [--backup ID]\n"
    "\n"
    "Builds a new volume from a backup in a replica bucket: the namespace as\n"
    "the backup took it, and every blob of file data fetched from the replica\n"
    "(all of it, now, verified against its checksum, with progress) onto the\n"
    "new disks. The volume keeps its id; mount it as any other. PREFIX is the\n"
    "[replica] prefix (cairn/ by default), or that prefix and the volume id\n"
    "when the prefix holds several volumes.\n"
    "\n"
    "NEW_VOLUME_DIR must be empty or missing, and so must each --disk; the\n"
    "redundancy is the default for the number of disks (as cairn format).\n"
    "Until the restore is finished the directory cannot be mounted; if it is\n"
    "interrupted, run the same command again: it goes on, keeping the blobs\n"
    "already stored.\n"
    "\n"
    "options:\n"
    "  --from s3://BUCKET/PREFIX  where the replica is\n"
    "  --endpoint URL  the S3 endpoint (default https://s3.REGION.amazonaws.com)\n"
    "  --region R      the bucket's region (default us-east-1)\n"
    "  --addressing A  auto, path or virtual (virtual-hosted) requests; auto (the\n"
    "                  default) is virtual for amazonaws.com, path elsewhere\n"
    "  --backup ID     this backup (cairn backup list) instead of the newest\n"
    "  --take-over     the new volume carries on replicating to this replica and\n"
    "                  taking backups there, in place of the lost one. Only when\n"
    "                  the old machine is gone for good: two volumes must never\n"
    "                  write to one replica. Without it the new volume has no\n"
    "                  [replica] (safe for a recovery drill).\n"
    "  --verify        only check that the backup and every blob it needs are in\n"
    "                  the replica and intact; writes nothing\n"
    "  --disk DIR      a data directory of the new volume (repeat; default: one\n"
    "                  disk inside NEW_VOLUME_DIR)\n"
    "\n"
    "Credentials come from the environment: AWS_ACCESS_KEY_ID and\n"
    "AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE.\n"
    "\n"
    "Exit status: 0 restored (or verified intact), 1 it failed or the backup\n"
    "is damaged, 2 bad command line.\n";

namespace {

// What --from and its companions name.
struct Source {
  ReplicaConfig target;
  std::string given;  // s3://BUCKET/PREFIX as typed
};

// Parses "--from s3://B/P" and friends out of `args` at `i`; true if it
// took the option.
bool TakeSourceOption(const Args& args, size_t& i, Source* source, std::string* error) {
  auto value = [&](const std::string& name) { return OptionValue(args, i, name, error); };
  if (std::optional<std::string> from = value("--from")) {
    source->given = *from;
    if (from->rfind("s3://", 0) != 0 || from->size() <= 5) {
      *error = "--from wants s3://BUCKET/PREFIX, not '" + *from + "'";
      return true;
    }
    std::string rest = from->substr(5);
    size_t slash = rest.find('/');
    source->target.bucket = rest.substr(0, slash);
    source->target.prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
    return true;
  }
  if (std::optional<std::string> endpoint = value("--endpoint")) {
    source->target.endpoint = *endpoint;
    return true;
  }
  if (std::optional<std::string> region = value("--region")) {
    source->target.region = *region;
    return true;
  }
  if (std::optional<std::string> addressing = value("--addressing")) {
    if (*addressing != "path" && *addressing != "virtual" && *addressing != "auto") {
      *error = "--addressing wants auto, path or virtual";
    }
    source->target.addressing = *addressing;
    return true;
  }
  return !error->empty();
}

// A client for the replica the source names, and where the volume is in it.
struct OpenedSource {
  std::unique_ptr<s3::ObjectStore> client;
  ReplicaVolume volume;
  ReplicaConfig target;  // with the volume's prefix
};

absl::StatusOr<OpenedSource> OpenSource(Source source) {
  if (source.target.bucket.empty()) {
    return absl::InvalidArgumentError("--from s3://BUCKET/PREFIX is missing");
  }
  if (source.target.endpoint.empty()) {
    source.target.endpoint = absl::StrCat("https://s3.", source.target.region, ".amazonaws.com");
  }
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client =
      OpenS3Target(Io(), source.target, "");
  if (!client.ok()) return client.status();
  absl::StatusOr<ReplicaVolume> volume = FindReplicaVolume(**client, source.target.prefix);
  if (!volume.ok()) {
    return absl::Status(volume.status().code(),
                        absl::StrCat(source.given, ": ", volume.status().message()));
  }
  OpenedSource opened{std::move(*client), *volume, source.target};
  opened.target.prefix = volume->prefix;
  return opened;
}

std::string TimeText(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

void PrintBackupLine(const BackupManifest& m) {
  printf("%-29s  %s  %10llu  %10s  %10s\n", m.backup_id.c_str(), TimeText(m.created_sec).c_str(),
         static_cast<unsigned long long>(m.inodes), Human(m.data_bytes).c_str(),
         Human(m.StoredBytes()).c_str());
}

int ListBackups(BackupStore& store, bool json) {
  absl::StatusOr<std::vector<BackupListing>> listed = store.List();
  if (!listed.ok()) return Fail("backup list", listed.status());
  std::vector<BackupManifest> manifests;
  size_t interrupted = 0;
  for (const BackupListing& backup : *listed) {
    if (!backup.complete) {
      interrupted++;
      continue;
    }
    absl::StatusOr<BackupManifest> manifest = store.ReadManifest(backup.id);
    if (!manifest.ok()) return Fail("backup list", manifest.status());
    manifests.push_back(std::move(*manifest));
  }
  if (json) {
    printf("[");
    for (size_t i = 0; i < manifests.size(); ++i) {
      printf("%s%s", i ? ", " : "", BackupManifestJson(manifests[i]).c_str());
    }
    printf("]\n");
  } else {
    printf("%-29s  %-19s  %10s  %10s  %10s\n", "BACKUP", "CREATED (UTC)", "INODES", "DATA",
           "NAMESPACE");
    for (const BackupManifest& m : manifests) PrintBackupLine(m);
  }
  if (interrupted > 0) {
    fflush(stdout);
    fprintf(stderr, "(%zu interrupted backup%s not shown: not usable; the next backup's "
            "clean-up deletes %s)\n", interrupted, interrupted == 1 ? "" : "s",
            interrupted == 1 ? "it" : "them");
  }
  return kExitOk;
}

// The volume's replica, from its cairn.toml.
struct VolumeReplica {
  VolumeConfig config;
  std::unique_ptr<s3::ObjectStore> client;
};

absl::StatusOr<VolumeReplica> OpenVolumeReplica(const std::string& volume_dir) {
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(volume_dir);
  if (!config.ok()) return config.status();
  if (!config->replica) {
    return absl::FailedPreconditionError(
        absl::StrCat(volume_dir, " has no replica: add a [replica] section to cairn.toml "
                                 "(docs/CONFIG.md)"));
  }
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> client =
      OpenS3Target(Io(), *config->replica, config->ConfigFile(volume_dir));
  if (!client.ok()) return client.status();
  return VolumeReplica{*config, std::move(*client)};
}

void PrintGc(const ReplicaGcReport& gc) {
  printf("replica: %llu backups kept, %llu deleted; %llu of %llu blob objects no longer needed "
         "deleted\n",
         static_cast<unsigned long long>(gc.backups_kept),
         static_cast<unsigned long long>(gc.backups_deleted),
         static_cast<unsigned long long>(gc.objects_deleted),
         static_cast<unsigned long long>(gc.objects_listed));
}

ReplicaGcReport ParseGc(const std::string& json) {
  ReplicaGcReport gc;
  gc.backups_deleted = StatNumber(json, "backups_deleted").value_or(0);
  gc.backups_kept = StatNumber(json, "backups_kept").value_or(0);
  gc.objects_listed = StatNumber(json, "objects_listed").value_or(0);
  gc.objects_deleted = StatNumber(json, "objects_deleted").value_or(0);
  return gc;
}

int TakeOrCollect(const std::string& verb, const std::string& target, bool gc_only, bool json);

int Claim(const std::string& target) {
  std::string volume_dir = VolumeDirOf(target);
  absl::StatusOr<VolumeReplica> replica = OpenVolumeReplica(volume_dir);
  if (!replica.ok()) return Fail("backup claim", replica.status());
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  if (!record.ok()) return Fail("backup claim", record.status());
  if (record->mounted) {
    absl::StatusOr<std::string> answer = AskDaemon(volume_dir, replica->config.volume_id, "backup\tclaim");
    if (!answer.ok()) return Fail("backup claim", answer.status());
  } else {
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(volume_dir, replica->config);
    if (!volume.ok()) return Fail("backup claim", volume.status());
    if (absl::Status s = (*volume)->replica_owner()->Claim(); !s.ok()) {
      return Fail("backup claim", s);
    }
  }
  printf("this copy of volume %s now writes its replica\n", replica->config.volume_id.c_str());
  return kExitOk;
}

int TakeOrCollect(const std::string& verb, const std::string& target, bool gc_only, bool json) {
  std::string volume_dir = VolumeDirOf(target);
  absl::StatusOr<VolumeReplica> replica = OpenVolumeReplica(volume_dir);
  if (!replica.ok()) return Fail(verb, replica.status());
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  if (!record.ok()) return Fail(verb, record.status());
  std::string result_json;
  if (record->mounted) {
    absl::StatusOr<std::string> answer =
        AskDaemon(volume_dir, replica->config.volume_id, gc_only ? "backup\tgc" : "backup");
    if (!answer.ok()) return Fail(verb, answer.status());
    result_json = *answer;
  } else {
    if (!gc_only && !LastStopWasClean(volume_dir)) {
      return Fail(verb, "the volume was not unmounted cleanly: its writeback journal may hold "
                        "data not yet in the namespace. Mount it once (the journal is replayed) "
                        "and back it up while mounted or after unmounting");
    }
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(volume_dir, replica->config);
    if (!volume.ok()) return Fail(verb, volume.status());
    VolumeServices::Options options;
    options.background = false;
    options.backup_wait_seconds = 0;  // the pass below copies everything first
    VolumeServices services(**volume, options);
    if (gc_only) {
      absl::StatusOr<ReplicaGcReport> gc = services.backups()->CollectNow();
      if (!gc.ok()) return Fail(verb, gc.status());
      result_json = ReplicaGcJson(*gc);
    } else {
      absl::StatusOr<uint64_t> copied = services.replicator()->RunPass();
      if (!copied.ok()) {
        return Fail(verb, absl::StrCat("could not copy the queued blobs to the replica: ",
                                       copied.status().message()));
      }
      absl::StatusOr<BackupService::Result> result = services.backups()->RunNow();
      if (!result.ok()) return Fail(verb, result.status());
      result_json = BackupResultJson(*result);
    }
  }
  if (json) {
    printf("%s\n", result_json.c_str());
    return kExitOk;
  }
  if (gc_only) {
    PrintGc(ParseGc(result_json));
    return kExitOk;
  }
  std::string backup = JsonObject(result_json, "backup");
  printf("backup %s: %llu inodes, %s of file data in %llu blobs; namespace copy %s\n",
         JsonText(backup, "backup_id").c_str(),
         static_cast<unsigned long long>(StatNumber(backup, "inodes").value_or(0)),
         Human(StatNumber(backup, "data_bytes").value_or(0)).c_str(),
         static_cast<unsigned long long>(StatNumber(backup, "blobs").value_or(0)),
         Human(StatNumber(backup, "stored_bytes").value_or(0)).c_str());
  std::string gc_error = JsonText(result_json, "gc_error");
  if (!gc_error.empty()) {
    printf("replica clean-up failed (the backup stands): %s\n", gc_error.c_str());
  } else {
    PrintGc(ParseGc(JsonObject(result_json, "gc")));
  }
  return kExitOk;
}

}  // namespace

int BackupCommand(const Args& args) {
  std::string sub;
  size_t first = 0;
  if (!args.empty() && (args[0] == "list" || args[0] == "gc" || args[0] == "claim")) {
    sub = args[0];
    first = 1;
  }
  const std::string verb = sub.empty() ? "backup" : "backup " + sub;
  bool json = false;
  Source source;
  std::string target, error;
  for (size_t i = first; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (sub == "list" && TakeSourceOption(args, i, &source, &error)) {
      if (!error.empty()) return UsageError(verb, error);
    } else if (!args[i].empty() && args[i][0] == '-') {
      return UsageError(verb, "unknown option '" + args[i] + "'");
    } else if (target.empty()) {
      target = args[i];
    } else {
      return UsageError(verb, "unexpected argument '" + args[i] + "'");
    }
  }
  if (sub == "list") {
    if (!source.given.empty()) {
      if (!target.empty()) return UsageError(verb, "give VOLUME_DIR or --from, not both");
      absl::StatusOr<OpenedSource> opened = OpenSource(source);
      if (!opened.ok()) return Fail(verb, opened.status());
      BackupStore store(*opened->client, opened->volume.prefix, opened->volume.volume_id);
      return ListBackups(store, json);
    }
    if (target.empty()) return UsageError(verb, "missing VOLUME_DIR, MOUNTPOINT or --from");
    std::string volume_dir = VolumeDirOf(target);
    absl::StatusOr<VolumeReplica> replica = OpenVolumeReplica(volume_dir);
    if (!replica.ok()) return Fail(verb, replica.status());
    BackupStore store(*replica->client, replica->config.replica->prefix,
                      replica->config.volume_id);
    return ListBackups(store, json);
  }
  if (target.empty()) return UsageError(verb, "missing VOLUME_DIR or MOUNTPOINT");
  if (sub == "claim") return Claim(target);
  return TakeOrCollect(verb, target, sub == "gc", json);
}

int RestoreCommand(const Args& args) {
  Source source;
  std::string backup_id, target, error;
  bool verify = false, take_over = false;
  std::vector<std::string> disks;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (TakeSourceOption(args, i, &source, &error)) {
      if (!error.empty()) return UsageError("restore", error);
    } else if (std::optional<std::string> id = OptionValue(args, i, "--backup", &error)) {
      backup_id = *id;
    } else if (std::optional<std::string> disk = OptionValue(args, i, "--disk", &error)) {
      disks.push_back(*disk);
    } else if (!error.empty()) {
      return UsageError("restore", error);
    } else if (arg == "--verify") {
      verify = true;
    } else if (arg == "--take-over") {
      take_over = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("restore", "unknown option '" + arg + "'");
    } else if (target.empty()) {
      target = arg;
    } else {
      return UsageError("restore", "unexpected argument '" + arg + "'");
    }
  }
  if (source.given.empty()) return UsageError("restore", "missing --from s3://BUCKET/PREFIX");
  if (verify && (take_over || !disks.empty())) {
    return UsageError("restore", "--verify writes nothing: it takes no --take-over or --disk");
  }
  if (!verify && target.empty()) return UsageError("restore", "missing NEW_VOLUME_DIR");
  absl::StatusOr<OpenedSource> opened = OpenSource(source);
  if (!opened.ok()) return Fail("restore", opened.status());
  BackupStore store(*opened->client, opened->volume.prefix, opened->volume.volume_id);
  RemoteBlobStore replica(*opened->client, opened->volume.prefix, opened->volume.volume_id);
  absl::StatusOr<BackupManifest> manifest = store.Choose(backup_id);
  if (!manifest.ok()) return Fail("restore", manifest.status());
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  if (verify) {
    Progress bar("verify", "blobs");
    absl::StatusOr<VerifyReport> report = VerifyBackup(
        store, replica, *manifest, 8,
        [&](uint64_t done, uint64_t total, uint64_t bytes, uint64_t total_bytes) {
          bar.Update(done, total, bytes, total_bytes);
        });
    bar.Clear();
    if (!report.ok()) return Fail("restore", report.status());
    for (const std::string& problem : report->problems) printf("problem: %s\n", problem.c_str());
    printf("backup %s of volume %s (%s): %llu blobs (%s) checked in %.1f s: %llu missing, "
           "%llu damaged; %s\n",
           manifest->backup_id.c_str(), manifest->volume_id.c_str(),
           TimeText(manifest->created_sec).c_str(),
           static_cast<unsigned long long>(report->blobs), Human(report->bytes).c_str(),
           seconds(), static_cast<unsigned long long>(report->missing),
           static_cast<unsigned long long>(report->damaged),
           report->ok() ? "it can be restored" : "it CANNOT be restored whole");
    return report->ok() ? kExitOk : kExitFailed;
  }

  RestoreOptions options;
  options.disks = disks;
  if (take_over) options.take_over = opened->target;
  Progress bar("restore", "blobs");
  options.progress = [&](uint64_t done, uint64_t total, uint64_t bytes, uint64_t total_bytes) {
    bar.Update(done, total, bytes, total_bytes);
  };
  absl::StatusOr<RestoreReport> report = RestoreVolume(store, replica, *manifest, target, options);
  bar.Clear();
  if (!report.ok()) return Fail("restore", report.status());
  double elapsed = seconds();
  printf("restored backup %s (%s UTC) of volume %s into %s: %llu inodes; %llu blobs (%s) "
         "fetched in %.1f s (%.1f MiB/s)%s\n",
         manifest->backup_id.c_str(), TimeText(manifest->created_sec).c_str(),
         manifest->volume_id.c_str(), AbsolutePath(target).c_str(),
         static_cast<unsigned long long>(report->inodes),
         static_cast<unsigned long long>(report->blobs), Human(report->bytes).c_str(), elapsed,
         elapsed > 0 ? static_cast<double>(report->bytes) / (1 << 20) / elapsed : 0.0,
         report->already_there > 0
             ? absl::StrCat("; ", report->already_there, " were already stored").c_str()
             : "");
  if (take_over) {
    printf("the new volume replicates to %s and takes the backups there from now on\n",
           source.given.c_str());
  } else {
    printf("the new volume does not replicate. Once the old machine is gone for good, restore "
           "with --take-over (or add its [replica] section to cairn.toml and run cairn backup "
           "claim) so this one carries on its replica\n");
  }
  return kExitOk;
}

}  // namespace cairn::cli
