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

// The daemon's S3 frontend: off, serving [s3] listen from the start, or
// started later by `cairn serve s3` through the control channel. Once it
// serves it serves until the daemon stops; readers (the stats writer, the
// metrics endpoint) see it appear at any time.
class S3Frontend {
 public:
  S3Frontend(FileSystem& fs, const VolumeConfig& config, const std::string& volume_dir,
             std::function<void(InodeId, const std::string&)> forget_name)
      : fs_(fs), config_(config.s3), volume_dir_(volume_dir),
        forget_name_(std::move(forget_name)) {}

  // Serves at `listen` ("": [s3] listen); returns the URL. Asked again, it
  // answers the URL it serves at, unless another address is asked for.
  absl::StatusOr<std::string> Start(const std::string& listen) {
    absl::MutexLock lock(&mu_);
    S3Config s3 = config_;
    if (!listen.empty()) s3.listen = listen;
    if (owned_server_) {
      if (listen.empty() || listen == serving_listen_) return Url(*owned_server_);
      return absl::FailedPreconditionError(absl::StrCat(
          "the daemon already serves S3 at ", Url(*owned_server_), "; it serves one address "
          "until it stops (cairn umount, then mount or serve again to change it)"));
    }
    if (s3.listen.empty()) {
      return absl::InvalidArgumentError(
          "no address to serve S3 on: give --listen HOST:PORT (like 127.0.0.1:9000) or set "
          "listen in the [s3] section of cairn.toml");
    }
    if (absl::Status s = CheckS3Listen(s3); !s.ok()) return s;
    frontend::S3Handler::Options handler_options;
    handler_options.region = s3.region;
    handler_options.forget_name = forget_name_;
    auto handler = std::make_unique<frontend::S3Handler>(fs_, handler_options);
    frontend::S3Server::Options server_options;
    server_options.listen = s3.listen;
    server_options.region = s3.region;
    server_options.keys_file = s3.KeysFile(volume_dir_);
    server_options.tls_cert_file = s3.TlsCertFile(volume_dir_);
    server_options.tls_key_file = s3.TlsKeyFile(volume_dir_);
    absl::StatusOr<std::unique_ptr<frontend::S3Server>> server =
        frontend::S3Server::Start(*handler, server_options);
    if (!server.ok()) return server.status();
    handler_ = std::move(handler);
    owned_server_ = std::move(*server);
    serving_listen_ = s3.listen;
    server_ = owned_server_.get();
    LogInfo("serving S3 at %s (keys in %s)", Url(*owned_server_), server_options.keys_file);
    return Url(*owned_server_);
  }

  // The server, or null while S3 is not served.
  const frontend::S3Server* server() const { return server_.load(); }

  // Requests under way finish (or are cut). Every reader of server() has
  // stopped.
  void Stop() {
    absl::MutexLock lock(&mu_);
    server_ = nullptr;
    owned_server_.reset();
    handler_.reset();
  }

  static std::string Url(const frontend::S3Server& server) { return server.url(); }

 private:
  FileSystem& fs_;
  const S3Config config_;
  const std::string volume_dir_;
  const std::function<void(InodeId, const std::string&)> forget_name_;
  absl::Mutex mu_;
  std::unique_ptr<frontend::S3Handler> handler_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<frontend::S3Server> owned_server_ ABSL_GUARDED_BY(mu_);
  std::string serving_listen_ ABSL_GUARDED_BY(mu_);
  std::atomic<const frontend::S3Server*> server_{nullptr};
};

// Blocks until a stop signal's byte arrives.
void WaitForStopSignal() {
  char byte;
  while (read(g_stop_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
}

}  // namespace

absl::Status ServeVolume(Volume& volume, const ServeOptions& options,
                         const std::function<void(const ServeReady&)>& on_ready) {
  const VolumeConfig& config = volume.config();
  MountedVolume::Options mount_options;
  mount_options.file_locks = volume.file_locks();
  absl::StatusOr<std::unique_ptr<MountedVolume>> mounted =
      MountedVolume::Open(volume, mount_options);
  if (!mounted.ok()) return mounted.status();
  FileDataCache& cache = (*mounted)->cache();
  FsContext ctx;
  ctx.fs = &(*mounted)->fs();
  // Other hosts change a shared volume behind the kernel's back: what it
  // caches is trusted for a second (their changes also invalidate it as
  // they arrive: docs/MULTIHOST.md).
  if (config.shared()) ctx.cache_timeout_seconds = 1.0;
  VolumeServices::Options services_options;
  // Read-only: no service may write, so none runs (the control channel
  // refuses their requests).
  services_options.background = !volume.read_only();
  services_options.on_blob_deleted = [&cache](BlobId id) { cache.ForgetBlob(id); };
  VolumeServices services(volume, services_options);

  // The S3 frontend serves the same FileSystem as the mount; names it
  // changes are dropped from the kernel's caches.
  std::atomic<FuseSession*> fuse_for_s3{nullptr};
  S3Frontend s3(*ctx.fs, config, volume.dir(),
                [&fuse_for_s3](InodeId parent, const std::string& name) {
                  if (FuseSession* fuse = fuse_for_s3.load()) fuse->ForgetName(parent, name);
                });

  // Commands reach this daemon (cairn scrub, tier, backup, serve s3)
  // through the control channel in the volume directory. A daemon that
  // cannot be reached refuses to start: its scrubs and backups would
  // answer no one.
  absl::StatusOr<std::unique_ptr<ControlServer>> control = ControlServer::Start(
      volume.dir(), config.volume_id,
      [&volume, &services, &cache, &s3](const std::string& request,
                                        const std::function<void(const std::string&)>& reply,
                                        const std::function<bool()>& stopping) {
        DaemonControls controls;
        controls.serve_s3 = [&s3](const std::string& listen) { return s3.Start(listen); };
        HandleControlRequest(volume, services, cache, controls, request, reply, stopping);
      });
  if (!control.ok()) return control.status();

  // S3 asked for and not possible (the port is taken, the keys file is
  // unsafe) refuses to start: clients that expect it would otherwise fail
  // later and elsewhere.
  if (!config.s3.listen.empty() || !options.s3_listen.empty() || !options.fuse) {
    absl::StatusOr<std::string> url = s3.Start(options.s3_listen);
    if (!url.ok()) return url.status();
  }

  if (pipe2(g_stop_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  InstallStopHandlers();
  std::unique_ptr<FuseSession> session;
  if (options.fuse) {
    FuseMountOptions mount = *options.fuse;
    mount.source = volume.dir();
    mount.env = volume.io().env;
    absl::StatusOr<std::unique_ptr<FuseSession>> mounted_session =
        FuseSession::Mount(&ctx, mount);
    if (!mounted_session.ok()) {
      RestoreDefaultHandlers();
      close(g_stop_pipe[0]);
      close(g_stop_pipe[1]);
      return mounted_session.status();
    }
    session = std::move(*mounted_session);
    fuse_for_s3 = session.get();
  }

  std::atomic<bool> loop_done{false};
  std::thread stopper;
  if (session) {
    stopper = std::thread([&] {
      WaitForStopSignal();
      if (!loop_done.load()) session->Stop();
    });
    LogInfo("serving volume %s at %s", volume.dir(), options.fuse->mountpoint);
  } else {
    LogInfo("serving volume %s over S3 only, without a mount", volume.dir());
  }
  ServeReady ready;
  ready.replay_warning = (*mounted)->ReplayWarning();
  if (const frontend::S3Server* server = s3.server()) ready.s3_url = S3Frontend::Url(*server);
  if (on_ready) on_ready(ready);
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
    sources.shared_sweeper = services.shared_sweeper();
    sources.tiered = volume.tiered();
    sources.shared_blobs = volume.shared_blobs();
    sources.mover = volume.tier_mover();
    sources.tiering = services.tiering();
    sources.replicator = services.replicator();
    sources.backups = services.backups();
    sources.remote_scrubber = services.remote_scrubber();
    absl::StatusOr<std::unique_ptr<MetricsServer>> server =
        MetricsServer::Start(config.metrics.listen, [sources, &s3] {
          VolumeMetricsSources now = sources;
          if (const frontend::S3Server* server = s3.server()) now.s3 = &server->metrics();
          return RenderVolumeMetrics(now);
        });
    if (server.ok()) {
      metrics = std::move(*server);
      LogInfo("serving metrics at http://%s/metrics", config.metrics.listen);
    } else {
      LogWarning("metrics are not served: %s; the volume is served without them. Free the "
                 "port or change [metrics] listen in cairn.toml and start again",
                 server.status().message());
    }
  }
  absl::Notification stats_stop;
  std::thread stats_writer([&] {
    int rounds = 0;
    do {
      // The leader of a shared volume frees what hosts that died had open
      // and others removed (their sessions gone), every 30 s.
      if (config.shared() && !volume.read_only() && ++rounds % 15 == 0 &&
          volume.ns().IsLeader()) {
        absl::StatusOr<uint64_t> freed = ctx.fs->ReleaseUnheldOrphans();
        if (!freed.ok()) {
          LogWarning("releasing files no host holds open failed: %s", freed.status().ToString());
        } else if (*freed > 0) {
          LogInfo("released %d removed files that only hosts now gone had open", *freed);
        }
      }
      // Frees the namespace's reserve when the disk fills, and takes it
      // again once there is room.
      if (SpaceReserve* reserve = volume.space_reserve()) reserve->Tend();
      WriteStatsFile(volume, services, cache, s3.server());
      // Other hosts see this host's unstored bytes in cairn status.
      volume.ns().SetSessionBacklog(cache.GetStats().dirty_bytes);
    } while (!stats_stop.WaitForNotificationWithTimeout(absl::Seconds(2)));
  });

  auto trimmer = std::make_unique<MemoryTrimmer>(MemoryTrimmerOptions{});

  int loop_rc = 0;
  if (session) {
    loop_rc = session->Run();
  } else {
    WaitForStopSignal();
  }
  loop_done = true;
  // The readers of the S3 server's figures stop first; then S3 requests
  // under way finish (or are cut) before the parts they use go.
  metrics.reset();
  stats_stop.Notify();
  stats_writer.join();
  // A `cairn serve s3` arriving now must not start a server: the control
  // channel goes before the S3 frontend.
  control->reset();  // also stops a manual scrub or rebuild in progress
  s3.Stop();
  fuse_for_s3 = nullptr;

  if (session) {
    // Wake the stopper if no signal came (plain umount ended the loop).
    char byte = 'x';
    [[maybe_unused]] ssize_t n = write(g_stop_pipe[1], &byte, 1);
    stopper.join();
    session.reset();
  }
  RestoreDefaultHandlers();
  close(g_stop_pipe[0]);
  close(g_stop_pipe[1]);

  trimmer.reset();
  services.Stop();   // and every background service, in order
  LogInfo("%s %s; flushing", options.fuse ? "unmounted" : "stopped serving",
          options.fuse ? options.fuse->mountpoint : volume.dir());
  if (absl::Status closed = (*mounted)->Close(); !closed.ok()) return closed;
  if (loop_rc != 0 && loop_rc != -ENODEV) {
    LogWarning("request loop ended with %d", loop_rc);
  }
  return absl::OkStatus();
}

}  // namespace cairn
