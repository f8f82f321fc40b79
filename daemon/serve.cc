#include "daemon/serve.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backend/base/env.h"
#include "backend/base/files.h"
#include "backend/base/log.h"
#include "backend/services/blob_gc.h"
#include "backend/volume/volume_services.h"
#include "cache/file_data_cache.h"
#include "daemon/control_channel.h"
#include "daemon/control_handler.h"
#include "daemon/memory_trimmer.h"
#include "daemon/metrics_server.h"
#include "frontend/s3_handler.h"
#include "frontend/s3_server.h"
#include "daemon/stats_json.h"
#include "daemon/volume_metrics.h"
#include "fs/fs_context.h"
#include "fs/mounted_volume.h"

namespace cairn {
namespace {

int g_stop_pipe[2] = {-1, -1};

void OnStopSignal(int) {
  char byte = 's';
  // Async-signal-safe: just wake the stopper thread.
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &byte, 1);
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

// The daemon's figures in CACHE_DIR/stats.json, replaced atomically, for
// `cairn status` (which runs in another process). Best effort: status then
// reads an older file, or none.
void WriteStatsFile(Volume& volume, VolumeServices& services, FileDataCache& cache,
                    const frontend::S3Server* s3) {
  DaemonStats stats;
  std::optional<frontend::S3ServerStats> s3_stats;
  if (s3 != nullptr) {
    s3_stats = s3->stats();
    stats.s3 = &*s3_stats;
    stats.s3_address = s3->address();
  }
  stats.updated = volume.io().clock->NowSeconds();
  stats.cache = cache.GetStats();
  if (BlobCollector* collector = services.collector()) stats.collector = collector->GetStats();
  if (auto damaged = volume.ns().DamagedFiles(); damaged.ok()) {
    stats.damaged_files = damaged->size();
  }
  std::optional<StorageStatus> storage;
  std::optional<ScrubStatus> scrub;
  if (volume.striped() != nullptr) {
    storage = GetStorageStatus(volume.ns(), *volume.striped());
    stats.storage = &*storage;
    if (StorageMaintenance* maintenance = services.maintenance()) {
      scrub = maintenance->GetScrubStatus();
      stats.scrub = &*scrub;
    }
  }
  std::optional<TieringService::Status> tier;
  std::optional<TieredBlobStore::Stats> tier_reads;
  if (TieringService* tiering = services.tiering()) {
    tier = tiering->GetStatus();
    stats.tier = &*tier;
    if (volume.tiered() != nullptr) {
      tier_reads = volume.tiered()->GetStats();
      stats.tier_reads = &*tier_reads;
    }
  }
  std::optional<Replicator::Status> replica;
  std::optional<BackupService::Status> backups;
  if (Replicator* replicator = services.replicator()) {
    replica = replicator->GetStatus();
    stats.replica = &*replica;
    if (BackupService* backup = services.backups()) {
      backups = backup->GetStatus();
      stats.backups = &*backups;
    }
  }
  std::optional<RemoteScrubStatus> remote_scrub;
  if (RemoteScrubber* scrubber = services.remote_scrubber()) {
    remote_scrub = scrubber->GetStatus();
    stats.remote_scrub = &*remote_scrub;
    // Damage the scrub could not repair makes the copy it found it in
    // unhealthy, however well the copying itself goes.
    const RemoteScrubReport& done = remote_scrub->last_complete;
    const RemoteScrubReport& now = remote_scrub->pass;
    const uint64_t unrepaired_replica = std::max(done.replica_bad - done.replica_repaired,
                                                 now.replica_bad - now.replica_repaired);
    if (replica.has_value() && unrepaired_replica > 0) {
      replica->healthy = false;
      replica->last_error = absl::StrCat("the remote scrub found ", unrepaired_replica,
                                         " damaged replica objects it could not repair "
                                         "(cairn scrub --remote names them)");
    }
    const uint64_t unrepaired_tier =
        std::max(done.tier_bad - done.tier_repaired, now.tier_bad - now.tier_repaired);
    if (tier.has_value() && unrepaired_tier > 0) {
      tier->remote_healthy = false;
      tier->last_error = absl::StrCat("the remote scrub found ", unrepaired_tier,
                                      " damaged tier objects it could not repair "
                                      "(cairn scrub --remote names them)");
    }
  }
  ReplaceFile(volume.io().env, volume.config().cache_dir + "/stats.json", DaemonStatsJson(stats))
      .IgnoreError();
}

}  // namespace

absl::Status ServeVolume(Volume& volume, const FuseMountOptions& options,
                         const std::function<void(const std::string& replay_warning)>& on_ready) {
  const VolumeConfig& config = volume.config();
  MountedVolume::Options mount_options;
  absl::StatusOr<std::unique_ptr<MountedVolume>> mounted =
      MountedVolume::Open(volume, mount_options);
  if (!mounted.ok()) return mounted.status();
  FileDataCache& cache = (*mounted)->cache();
  FsContext ctx;
  ctx.fs = &(*mounted)->fs();
  VolumeServices::Options services_options;
  // Read-only: no service may write, so none runs (the control channel
  // refuses their requests).
  services_options.background = !volume.read_only();
  services_options.on_blob_deleted = [&cache](BlobId id) { cache.ForgetBlob(id); };
  VolumeServices services(volume, services_options);
  // Commands reach this daemon (cairn scrub, tier, backup) through the
  // control channel in the volume directory. A daemon that cannot be
  // reached refuses to mount: its scrubs and backups would answer no one.
  absl::StatusOr<std::unique_ptr<ControlServer>> control = ControlServer::Start(
      volume.dir(), config.volume_id,
      [&volume, &services, &cache](const std::string& request,
                                   const std::function<void(const std::string&)>& reply,
                                   const std::function<bool()>& stopping) {
        HandleControlRequest(volume, services, cache, request, reply, stopping);
      });
  if (!control.ok()) return control.status();

  // The S3 frontend serves the same FileSystem as the mount. Asked for and
  // not possible (the port is taken, the keys file is unsafe) refuses the
  // mount: clients that expect it would otherwise fail later and elsewhere.
  std::atomic<FuseSession*> fuse_for_s3{nullptr};
  std::unique_ptr<frontend::S3Handler> s3_handler;
  std::unique_ptr<frontend::S3Server> s3_server;
  if (!config.s3.listen.empty()) {
    frontend::S3Handler::Options handler_options;
    handler_options.region = config.s3.region;
    handler_options.forget_name = [&fuse_for_s3](InodeId parent, const std::string& name) {
      if (FuseSession* fuse = fuse_for_s3.load()) fuse->ForgetName(parent, name);
    };
    s3_handler = std::make_unique<frontend::S3Handler>(*ctx.fs, handler_options);
    frontend::S3Server::Options server_options;
    server_options.listen = config.s3.listen;
    server_options.region = config.s3.region;
    server_options.keys_file = config.s3.KeysFile(volume.dir());
    absl::StatusOr<std::unique_ptr<frontend::S3Server>> server =
        frontend::S3Server::Start(*s3_handler, server_options);
    if (!server.ok()) return server.status();
    s3_server = std::move(*server);
    LogInfo("serving S3 at http://%s (keys in %s)", s3_server->address(),
            server_options.keys_file);
  }

  if (pipe2(g_stop_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  InstallStopHandlers();
  FuseMountOptions mount = options;
  mount.source = volume.dir();
  mount.env = volume.io().env;
  absl::StatusOr<std::unique_ptr<FuseSession>> session = FuseSession::Mount(&ctx, mount);
  if (!session.ok()) {
    RestoreDefaultHandlers();
    close(g_stop_pipe[0]);
    close(g_stop_pipe[1]);
    return session.status();
  }

  fuse_for_s3 = session->get();

  std::atomic<bool> loop_done{false};
  std::thread stopper([&] {
    char byte;
    while (read(g_stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (!loop_done.load()) (*session)->Stop();
  });

  LogInfo("serving volume %s at %s", volume.dir(), options.mountpoint);
  if (on_ready) on_ready((*mounted)->ReplayWarning());
  // Prometheus metrics, once every part they read exists. A port in use
  // costs the metrics, never the mount.
  std::unique_ptr<MetricsServer> metrics;
  if (!config.metrics.listen.empty()) {
    VolumeMetricsSources sources;
    sources.fuse = &ctx.metrics;
    sources.cache = &cache;
    sources.ns = &volume.ns();
    sources.striped = volume.striped();
    sources.maintenance = services.maintenance();
    sources.collector = services.collector();
    sources.tiered = volume.tiered();
    sources.mover = volume.tier_mover();
    sources.tiering = services.tiering();
    sources.replicator = services.replicator();
    sources.backups = services.backups();
    sources.remote_scrubber = services.remote_scrubber();
    if (s3_server) sources.s3 = &s3_server->metrics();
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
      // Frees the namespace's reserve when the disk fills, and takes it
      // again once there is room.
      if (SpaceReserve* reserve = volume.space_reserve()) reserve->Tend();
      WriteStatsFile(volume, services, cache, s3_server.get());
    } while (!stats_stop.WaitForNotificationWithTimeout(absl::Seconds(2)));
  });

  auto trimmer = std::make_unique<MemoryTrimmer>(MemoryTrimmerOptions{});

  int loop_rc = (*session)->Run();
  loop_done = true;
  // The readers of the S3 server's figures stop first; then S3 requests
  // under way finish (or are cut) before the parts they use go.
  metrics.reset();
  stats_stop.Notify();
  stats_writer.join();
  s3_server.reset();
  fuse_for_s3 = nullptr;

  // Wake the stopper if no signal came (plain umount ended the loop).
  char byte = 'x';
  [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &byte, 1);
  stopper.join();
  session->reset();
  RestoreDefaultHandlers();
  close(g_stop_pipe[0]);
  close(g_stop_pipe[1]);

  trimmer.reset();
  control->reset();  // stops a manual scrub or rebuild in progress
  services.Stop();   // and every background service, in order
  LogInfo("unmounted %s; flushing", options.mountpoint);
  if (absl::Status closed = (*mounted)->Close(); !closed.ok()) return closed;
  if (loop_rc != 0 && loop_rc != -ENODEV) {
    LogWarning("request loop ended with %d", loop_rc);
  }
  return absl::OkStatus();
}

}  // namespace cairn
