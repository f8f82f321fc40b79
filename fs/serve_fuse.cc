// Session setup, the request loop, and an orderly stop.
//
// Why not libfuse's own signal handlers: they end the loop at once, and with
// the writeback cache on, pages the kernel still holds dirty would then be
// lost when the mount goes away. Our stop sequence first asks the kernel to
// write everything back (syncfs, served by the still-running loop), then
// detaches the mount so the loop ends, then flushes our own cache.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "daemon/control_channel.h"
#include "backend/base/env.h"
#include "backend/services/storage_maintenance.h"
#include "backend/services/backup.h"
#include "backend/services/backup_service.h"
#include "backend/services/backup_verify.h"
#include "backend/services/replica_gc.h"
#include "backend/volume/restore.h"
#include "backend/services/replication.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/services/unclaimed_remote.h"
#include "backend/volume/s3_targets.h"
#include "cache/writeback_journal.h"
#include "backend/base/log.h"
#include "fs/cairn_fs.h"
#include "fs/fuse_ops.h"
#include "fs/metrics_server.h"
#include "fs/volume_metrics.h"

namespace cairn {
namespace {

int g_stop_pipe[2] = {-1, -1};

void OnStopSignal(int) {
  char byte = 's';
  // Async-signal-safe: just wake the stopper thread.
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &byte, 1);
}

// libfuse option values are comma separated; escape what would split them.
std::string EscapeOptionValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void InstallStopHandlers() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void RestoreDefaultHandlers() {
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
}

// Writes back what the kernel holds, then detaches the mount so the request
// loop ends once the kernel lets go of it.
void StopServing(const std::string& mountpoint, fuse_session* session) {
  LogInfo("stop requested: writing back cached data of %s", mountpoint);
  int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  bool have_dev = false;
  if (fd >= 0) {
    if (syncfs(fd) != 0) {
      LogError("syncfs of %s failed: %s", mountpoint, strerror(errno));
    }
    have_dev = fstat(fd, &st) == 0;
    close(fd);
  }
  fuse_session_exit(session);
  if (umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    std::string command =
        absl::StrCat("fusermount3 -u -z -- '", mountpoint, "' 2>/dev/null");
    [[maybe_unused]] int rc = system(command.c_str());
  }
  // Files still open keep a detached mount alive; abort the connection so
  // the daemon can finish. Everything the kernel held was written back above.
  if (have_dev) {
    for (int i = 0; i < 50 && !fuse_session_exited(session); ++i) {
      usleep(20000);
    }
    std::string abort_path = absl::StrCat("/sys/fs/fuse/connections/",
                                          minor(st.st_dev), "/abort");
    int abort_fd = open(abort_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (abort_fd >= 0) {
      [[maybe_unused]] ssize_t n = write(abort_fd, "1", 1);
      close(abort_fd);
    }
  }
}

constexpr char kJournalEpochKey[] = "journal_epoch";

// The kernel caps a FUSE mount's readahead at the device default (128 KiB)
// whatever max_readahead says; raising the mount's bdi setting lets
// sequential reads arrive as 1 MiB requests. Best effort: needs root. The
// device number comes from mountinfo, since a stat of the mountpoint would
// need the request loop, which is not running yet.
void RaiseReadahead(const std::string& mountpoint) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, device;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == mountpoint) device = dev;  // the last mount there is ours
  }
  if (device.empty()) return;
  std::string path = absl::StrCat("/sys/class/bdi/", device, "/read_ahead_kb");
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  [[maybe_unused]] ssize_t n = write(fd, "1024", 4);
  close(fd);
}

// The cache's counters as JSON in CACHE_DIR/stats.json, replaced atomically,
// for `cairn status` (which runs in another process). Best effort.
void WriteCacheStats(const std::string& cache_dir, const FileDataCache::Stats& s,
                     const std::string& storage_json) {
  std::string json = absl::StrCat(
      "{\"updated\": ", absl::ToUnixSeconds(absl::Now()),
      ", \"dirty_bytes\": ", s.dirty_bytes, ", \"journal_bytes\": ", s.journal_bytes,
      ", \"journal_segments\": ", s.journal_segments,
      ", \"read_cache_bytes\": ", s.read_cache_bytes,
      ", \"read_cache_hits\": ", s.read_cache_hits,
      ", \"read_cache_misses\": ", s.read_cache_misses,
      ", \"ranged_reads\": ", s.ranged_reads,
      ", \"readahead_prefetched\": ", s.readahead_prefetched,
      ", \"blobs_written\": ", s.blobs_written,
      ", \"blobs_collected\": ", s.blobs_collected,
      ", \"blobs_compacted\": ", s.blobs_compacted,
      ", \"write_through\": ", s.write_through,
      storage_json.empty() ? "" : ", \"storage\": ", storage_json, "}\n");
  std::string temp = cache_dir + "/stats.json.tmp";
  std::ofstream out(temp, std::ios::trunc);
  out << json;
  out.close();
  if (out) rename(temp.c_str(), (cache_dir + "/stats.json").c_str());
}

// `cairn scrub` and `cairn disk replace` on a mounted volume (see
// backend/control_channel.h for the protocol).
void HandleControlRequest(Volume& volume, StripedBlobStore& store, StorageMaintenance& maintenance,
                          FileDataCache& cache, TieringService* tiering, BackupService* backups,
                          const std::string& request,
                          const std::function<void(const std::string&)>& reply,
                          const std::function<bool()>& stopping) {
  std::vector<std::string> words = absl::StrSplit(request, '\t');
  if (words[0] == "backup") {
    if (backups == nullptr) {
      return reply("error this volume has no replica: add a [replica] section to cairn.toml "
                   "(docs/CONFIG.md) and mount again");
    }
    if (words.size() == 2 && words[1] == "claim") {
      if (absl::Status s = volume.replica_owner()->Claim(); !s.ok()) {
        return reply("error " + std::string(s.message()));
      }
      return reply("done {}");
    }
    if (words.size() == 2 && words[1] == "gc") {
      absl::StatusOr<ReplicaGcReport> gc = backups->CollectNow();
      if (!gc.ok()) return reply("error " + std::string(gc.status().message()));
      return reply("done " + ReplicaGcJson(*gc));
    }
    if (words.size() != 1) return reply("error bad backup request");
    // What the write cache holds goes into the backup too.
    if (absl::Status s = cache.FlushAll(); !s.ok()) {
      return reply("error could not store the written data first: " + std::string(s.message()));
    }
    absl::StatusOr<BackupService::Result> result = backups->RunNow();
    if (!result.ok()) return reply("error " + std::string(result.status().message()));
    return reply("done " + BackupService::ResultJson(*result));
  }
  if (words[0] == "tier") {
    if (tiering == nullptr) {
      return reply("error this volume has no remote tier: add a [tier] section to cairn.toml "
                   "(docs/CONFIG.md) and mount again");
    }
    // tier out|in INO...: progress {"ino": N} as each file is moved.
    if (words.size() >= 3 && (words[1] == "out" || words[1] == "in")) {
      std::vector<InodeId> inos;
      for (size_t i = 2; i < words.size(); ++i) {
        InodeId ino = 0;
        if (!absl::SimpleAtoi(words[i], &ino)) return reply("error bad tier request");
        // Data still in the write cache goes to the local disks first, so
        // what moves is the file as the user last wrote it.
        if (absl::Status s = cache.Flush(ino); !s.ok()) {
          return reply(absl::StrCat("error inode ", ino, ": ", s.message()));
        }
        inos.push_back(ino);
      }
      auto file_done = [&reply](InodeId ino) { reply(absl::StrCat("progress {\"ino\": ", ino, "}")); };
      absl::Status moved = words[1] == "out" ? tiering->MoveFilesOut(inos, file_done)
                                             : tiering->MoveFilesIn(inos, file_done);
      if (!moved.ok()) return reply("error " + std::string(moved.message()));
      return reply("done {}");
    }
    if (words.size() == 2 && words[1] == "pass") {
      absl::StatusOr<TieringService::PassReport> pass = tiering->RunPass();
      if (!pass.ok()) return reply("error " + std::string(pass.status().message()));
      return reply(absl::StrFormat("done {\"moved\": %d, \"moved_bytes\": %d}", pass->moved,
                                   pass->moved_bytes));
    }
    return reply("error bad tier request");
  }
  ScrubOptions scrub;
  scrub.should_stop = stopping;
  const char* what = words[0] == "replace" ? "rebuild" : "scrub";
  scrub.progress = [&reply, &maintenance, what](const ScrubReport& report) {
    maintenance.NoteManualProgress(what, report);
    if (!report.finished) reply("progress " + report.ToJson());
  };
  // However it ends, `cairn status` stops showing it as running.
  struct Done {
    StorageMaintenance& maintenance;
    const char* what;
    ~Done() {
      ScrubReport over;
      over.finished = true;
      maintenance.NoteManualProgress(what, over);
    }
  } done{maintenance, what};
  if (words[0] == "scrub") {
    scrub.repair = !(words.size() > 1 && words[1] == "norepair");
    absl::StatusOr<ScrubReport> report =
        maintenance.RunExclusive([&] { return ScrubBlobs(volume.ns(), store, scrub); });
    if (!report.ok()) return reply("error " + std::string(report.status().message()));
    if (!report->finished) return reply("error the daemon is shutting down; scrub again later");
    return reply("done " + report->ToJson());
  }
  if (words[0] == "replace" && words.size() == 4) {
    absl::StatusOr<ScrubReport> report = maintenance.RunExclusive(
        [&]() -> absl::StatusOr<ScrubReport> {
          absl::StatusOr<int> index = volume.ReplaceDisk(words[1], words[2], words[3] == "1");
          if (!index.ok()) return index.status();
          absl::StatusOr<ScrubReport> rebuilt = ScrubBlobs(volume.ns(), store, scrub);
          if (rebuilt.ok() && rebuilt->finished) {
            volume.ns().SetVolumeMeta(kRebuildPendingKey, "").IgnoreError();
          }
          return rebuilt;
        });
    if (!report.ok()) return reply("error " + std::string(report.status().message()));
    if (!report->finished) {
      return reply("error the daemon is shutting down; the rebuild goes on at the next mount");
    }
    return reply("done " + report->ToJson());
  }
  reply("error unknown request '" + words[0] + "' (cairn and its daemon differ in version?)");
}

// Each mount numbers its journal records from a new epoch, recorded in the
// namespace before any record is written, so sequence numbers only grow over
// the volume's life even if the cache directory is lost or replaced; a
// file's journal mark is then never ahead of a new record.
absl::StatusOr<std::unique_ptr<WritebackJournal>> OpenJournal(Volume& volume) {
  NamespaceStore& ns = volume.ns();
  absl::StatusOr<std::optional<std::string>> stored = ns.GetVolumeMeta(kJournalEpochKey);
  if (!stored.ok()) return stored.status();
  uint64_t epoch = 0;
  if (stored->has_value() && !absl::SimpleAtoi(**stored, &epoch)) {
    return absl::DataLossError("the namespace's journal epoch is corrupt; run cairn fsck");
  }
  epoch++;
  if (absl::Status s = ns.SetVolumeMeta(kJournalEpochKey, absl::StrCat(epoch)); !s.ok()) {
    return s;
  }
  if (absl::Status s = ns.Sync(); !s.ok()) return s;
  const VolumeConfig& config = volume.config();
  if (absl::Status s = Env::Default()->CreateDir(config.cache_dir); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot use cache_dir ", config.cache_dir, ": ", s.message(),
        "; check the path in cairn.toml"));
  }
  JournalOptions options;
  options.dir = config.cache_dir + "/journal";
  options.volume_id = config.volume_id;
  return WritebackJournal::Open(Env::Default(), options, epoch << 40);
}

}  // namespace

absl::Status ServeFuse(Volume& volume, const FuseMountOptions& options,
                       const std::function<void()>& on_ready) {
  const VolumeConfig& config = volume.config();
  absl::StatusOr<std::unique_ptr<WritebackJournal>> journal = OpenJournal(volume);
  if (!journal.ok()) return journal.status();
  FileDataCacheOptions cache_options;
  cache_options.max_dirty_bytes = config.max_dirty_bytes;
  cache_options.read_cache_bytes = config.read_cache_bytes;
  cache_options.dirty_flush_seconds = config.dirty_flush_seconds;
  cache_options.max_journal_bytes = config.max_journal_bytes;
  cache_options.journal = journal->get();
  FileDataCache cache(volume.ns(), volume.blobs(), cache_options);
  absl::StatusOr<WritebackJournal::ReplayStats> replayed = cache.ReplayJournal();
  if (!replayed.ok()) {
    return absl::DataLossError(absl::StrCat(
        "could not replay the writeback journal in ", config.cache_dir,
        "/journal: ", replayed.status().message()));
  }
  // With the replay committed, any blob file without a record is a leftover
  // of a crash between storing and committing it.
  if (absl::StatusOr<uint64_t> swept = SweepOrphanBlobs(volume.ns(), volume.blobs());
      !swept.ok()) {
    LogWarning("could not sweep uncommitted blob files: %s", swept.status().ToString());
  }
  if (replayed->applied > 0 || replayed->damaged_segments > 0) {
    LogInfo("replayed the writeback journal: %d of %d records were not yet "
            "stored and are now; %d segments, %d ended by a torn or damaged record",
            replayed->applied, replayed->records, replayed->segments,
            replayed->damaged_segments);
  }

  FsContext ctx;
  ctx.ns = &volume.ns();
  ctx.blobs = &volume.blobs();
  ctx.cache = &cache;
  ctx.read_only = options.read_only;

  std::string fuse_options = absl::StrCat(
      "default_permissions,fsname=", EscapeOptionValue(volume.dir()),
      ",subtype=cairn");
  // Mounted by root, a volume serves every user, as a kernel filesystem
  // does; the kernel enforces permissions (default_permissions).
  if (options.allow_other || geteuid() == 0) {
    absl::StrAppend(&fuse_options, ",allow_other");
  }
  if (options.read_only) absl::StrAppend(&fuse_options, ",ro");
  if (options.noatime) absl::StrAppend(&fuse_options, ",noatime");

  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, "cairn");
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, fuse_options.c_str());
  if (options.debug) fuse_opt_add_arg(&args, "-d");

  fuse_session* session = fuse_session_new(
      &args, &CairnFuseOperations(), sizeof(fuse_lowlevel_ops), &ctx);
  fuse_opt_free_args(&args);
  if (session == nullptr) {
    return absl::InternalError(
        "could not create the FUSE session (see the message above); check "
        "that /dev/fuse exists and fuse3 is installed");
  }
  if (pipe2(g_stop_pipe, O_CLOEXEC) != 0) {
    fuse_session_destroy(session);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  InstallStopHandlers();
  if (fuse_session_mount(session, options.mountpoint.c_str()) != 0) {
    fuse_session_destroy(session);
    RestoreDefaultHandlers();
    close(g_stop_pipe[0]);
    close(g_stop_pipe[1]);
    return absl::FailedPreconditionError(absl::StrCat(
        "could not mount on ", options.mountpoint,
        " (see the message above); check that it is an empty directory you "
        "may mount on"));
  }

  std::atomic<bool> loop_done{false};
  std::thread stopper([&] {
    char byte;
    while (read(g_stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (!loop_done.load()) StopServing(options.mountpoint, session);
  });

  LogInfo("serving volume %s at %s", volume.dir(), options.mountpoint);
  if (on_ready) on_ready();
  RaiseReadahead(options.mountpoint);
  std::unique_ptr<TieringService> tiering;
  if (volume.tier_mover() != nullptr) {
    TieringService::Options tiering_options;
    tiering = std::make_unique<TieringService>(volume.ns(), volume.local_blobs(),
                                               *volume.tier_mover(), *config.tier,
                                               tiering_options);
  }
  // Every blob to the replica bucket, in the background; what the last
  // flush stores waits in the queue for the next mount.
  std::unique_ptr<Replicator> replicator;
  if (volume.replica() != nullptr) {
    Replicator::Options replicator_options;
    replicator_options.tier_is_replica =
        config.tier.has_value() && config.tier->SameObjectsAs(*config.replica);
    replicator_options.owner = volume.replica_owner();
    replicator = std::make_unique<Replicator>(volume.ns(), volume.blobs(), *volume.replica(),
                                              replicator_options);
  }
  // Namespace backups to the replica, and its garbage collection.
  std::unique_ptr<BackupStore> backup_store;
  std::unique_ptr<BackupService> backups;
  if (volume.replica() != nullptr) {
    backup_store = std::make_unique<BackupStore>(*volume.replica_client(), config.replica->prefix,
                                                 config.volume_id);
    backup_store->set_owner(volume.replica_owner());
    BackupService::Options backup_options;
    backup_options.interval_seconds = config.replica->backup_interval_seconds;
    backup_options.keep = static_cast<int>(config.replica->keep_backups);
    backup_options.backup.work_dir = BackupWorkDir(volume.dir());
    backup_options.backup.replication_wait_seconds = config.replica->backup_wait_seconds;
    backups = std::make_unique<BackupService>(volume.ns(), *backup_store, *volume.replica(),
                                              backup_options);
  }
  std::unique_ptr<StorageMaintenance> maintenance;
  std::unique_ptr<ControlServer> control;
  if (StripedBlobStore* striped = volume.striped()) {
    StorageMaintenance::Options maintenance_options;
    maintenance_options.scrub_interval_seconds = config.scrub_interval_seconds;
    maintenance_options.scrub_bytes_per_second = config.scrub_bytes_per_second;
    maintenance = std::make_unique<StorageMaintenance>(volume.ns(), *striped,
                                                       maintenance_options);
    absl::StatusOr<std::unique_ptr<ControlServer>> server = ControlServer::Start(
        config.volume_id,
        [&volume, &cache, &tiering, &backups, striped, m = maintenance.get()](
            const std::string& request, const std::function<void(const std::string&)>& reply,
            const std::function<bool()>& stopping) {
          HandleControlRequest(volume, *striped, *m, cache, tiering.get(), backups.get(),
                               request, reply, stopping);
        });
    if (server.ok()) {
      control = std::move(*server);
    } else {
      LogWarning("cairn scrub and disk replace will not reach this daemon: %s",
                 server.status().message());
    }
  }
  // Prometheus metrics, once every part they read exists. A port in use
  // costs the metrics, never the mount.
  std::unique_ptr<MetricsServer> metrics;
  if (!config.metrics.listen.empty()) {
    VolumeMetricsSources sources;
    sources.fuse = &ctx.metrics;
    sources.cache = &cache;
    sources.ns = &volume.ns();
    sources.striped = volume.striped();
    sources.maintenance = maintenance.get();
    sources.tiered = volume.tiered();
    sources.mover = volume.tier_mover();
    sources.tiering = tiering.get();
    sources.replicator = replicator.get();
    sources.backups = backups.get();
    absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(
        config.metrics.listen, [sources] { return RenderVolumeMetrics(sources); });
    if (server.ok()) {
      metrics = std::move(*server);
      LogInfo("serving metrics at http://%s/metrics", config.metrics.listen);
    } else {
      LogWarning("metrics are not served: %s; the volume is mounted without them. Free the "
                 "port or change [metrics] listen in cairn.toml and mount again",
                 server.status().message());
    }
  }
  absl::Notification stats_stop;
  std::thread stats_writer([&] {
    do {
      std::string storage;
      if (volume.striped() != nullptr) {
        storage = StorageJson(volume.ns(), *volume.striped());
        storage.pop_back();  // the closing brace: the scrub goes inside
        absl::StrAppend(&storage, ", \"scrub\": ", maintenance->ScrubJson(), "}");
      }
      if (tiering) {
        if (storage.empty()) storage = "{}";
        storage.pop_back();
        std::string tier = tiering->StatsJson();
        if (volume.tiered() != nullptr) {
          tier.pop_back();
          absl::StrAppend(&tier, ", ", volume.tiered()->StatsJsonFields(), "}");
        }
        absl::StrAppend(&storage, storage.size() > 1 ? ", " : "", "\"tier\": ", tier, "}");
      }
      if (replicator) {
        if (storage.empty()) storage = "{}";
        storage.pop_back();
        std::string replica = replicator->StatsJson();
        if (backups) {
          replica.pop_back();
          absl::StrAppend(&replica, ", ", backups->StatsJsonFields(), "}");
        }
        absl::StrAppend(&storage, storage.size() > 1 ? ", " : "", "\"replica\": ", replica,
                        "}");
      }
      WriteCacheStats(config.cache_dir, cache.GetStats(), storage);
    } while (!stats_stop.WaitForNotificationWithTimeout(absl::Seconds(2)));
  });

  fuse_loop_config* loop_config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(loop_config, 32);
  fuse_loop_cfg_set_idle_threads(loop_config, 8);
  int loop_rc = fuse_session_loop_mt(session, loop_config);
  fuse_loop_cfg_destroy(loop_config);
  loop_done = true;

  // Wake the stopper if no signal came (plain umount ended the loop).
  char byte = 'x';
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &byte, 1);
  stopper.join();
  fuse_session_unmount(session);
  fuse_session_destroy(session);
  RestoreDefaultHandlers();
  close(g_stop_pipe[0]);
  close(g_stop_pipe[1]);

  metrics.reset();  // before the parts it reads go away
  stats_stop.Notify();
  stats_writer.join();
  control.reset();      // stops a manual scrub or rebuild in progress
  maintenance.reset();  // and the background one
  tiering.reset();
  backups.reset();  // before the replicator a backup may be waiting for
  replicator.reset();
  LogInfo("unmounted %s; flushing", options.mountpoint);
  absl::Status flushed = cache.FlushAll();
  if (flushed.ok() && (*journal)->Roll().ok()) {
    // Everything is stored: a second pass deletes the segment just sealed.
    flushed = cache.FlushAll();
  }
  absl::Status synced = volume.ns().Sync();
  if (!flushed.ok()) {
    // The data is still in the writeback journal: made durable there, it
    // is stored by the next mount, once the problem is fixed.
    absl::Status journal_synced = (*journal)->Sync();
    if (!journal_synced.ok()) {
      return absl::DataLossError(absl::StrCat(
          "could not store all written data (", flushed.message(),
          ") nor make the writeback journal durable (", journal_synced.message(),
          "); data written since the last fsync may be lost if the machine "
          "stops before the journal reaches the disk"));
    }
    return absl::DataLossError(absl::StrCat(
        "could not store all written data as blobs before exiting (",
        flushed.message(), "); it is kept in the writeback journal in ",
        config.cache_dir, "/journal and stored at the next mount: fix the "
        "problem (free space, a failing disk) and mount again"));
  }
  if (!synced.ok()) return synced;
  if (loop_rc != 0 && loop_rc != -ENODEV) {
    LogWarning("request loop ended with %d", loop_rc);
  }
  return absl::OkStatus();
}

}  // namespace cairn
