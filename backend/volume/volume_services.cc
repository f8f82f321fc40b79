#include "backend/volume/volume_services.h"

namespace cairn {

VolumeServices::VolumeServices(Volume& volume, Options options) {
  const VolumeConfig& config = volume.config();
  const Io& io = volume.io();
  if (volume.tier_mover() != nullptr) {
    TieringService::Options tiering;
    tiering.background = options.background;
    tiering.clock = io.clock;
    if (const s3::HealthTrackingStore* health = volume.tier_health()) {
      tiering.remote_health = [health] { return health->Health(); };
    }
    tiering_ = std::make_unique<TieringService>(volume.ns(), volume.local_blobs(),
                                                *volume.tier_mover(), *config.tier, tiering);
  }
  // Every blob to the replica bucket; what the last flush of a mount stores
  // waits in the queue for the next one.
  if (volume.replica() != nullptr) {
    Replicator::Options replication;
    replication.background = options.background;
    replication.tier_is_replica =
        config.tier.has_value() && config.tier->SameObjectsAs(*config.replica);
    replication.owner = volume.replica_owner();
    replication.clock = io.clock;
    replicator_ = std::make_unique<Replicator>(volume.ns(), volume.blobs(), *volume.replica(),
                                               replication);
    backup_store_ = std::make_unique<BackupStore>(*volume.replica_client(),
                                                  config.replica->prefix, config.volume_id, io.env);
    backup_store_->set_owner(volume.replica_owner());
    BackupService::Options backup;
    backup.background = options.background;
    backup.interval_seconds = config.replica->backup_interval_seconds;
    backup.keep = static_cast<int>(config.replica->keep_backups);
    backup.backup.work_dir = BackupWorkDir(volume.dir());
    backup.backup.env = io.env;
    backup.backup.clock = io.clock;
    backup.backup.replication_wait_seconds =
        options.backup_wait_seconds.value_or(config.replica->backup_wait_seconds);
    backups_ = std::make_unique<BackupService>(volume.ns(), *backup_store_, *volume.replica(),
                                               backup);
  }
  if (options.background) {
    BlobCollector::Options gc;
    gc.clock = io.clock;
    gc.on_deleted = options.on_blob_deleted;
    collector_ = std::make_unique<BlobCollector>(volume.ns(), volume.blobs(), gc);
  }
  // Leftovers of crashes in a shared bucket: the leader's, like GC. A
  // command (no background threads) never sweeps: it is no leader.
  if (RemoteBlobStore* shared = volume.shared_remote(); shared != nullptr && options.background) {
    SharedBlobSweeper::Options sweep = options.shared_sweep;
    sweep.clock = io.clock;
    shared_sweeper_ = std::make_unique<SharedBlobSweeper>(volume.ns(), *shared, sweep);
  }
  if (StripedBlobStore* striped = volume.striped(); striped != nullptr && options.background) {
    StorageMaintenance::Options maintenance;
    maintenance.scrub_interval_seconds = config.scrub_interval_seconds;
    maintenance.scrub_bytes_per_second = config.scrub_bytes_per_second;
    maintenance.clock = io.clock;
    maintenance_ = std::make_unique<StorageMaintenance>(volume.ns(), *striped, maintenance);
  }
  if (volume.replica() != nullptr || volume.remote() != nullptr) {
    RemoteCopies copies;
    copies.replica = volume.replica();
    copies.tier = volume.remote();
    copies.tier_is_replica = config.tier.has_value() && config.replica.has_value() &&
                             config.tier->SameObjectsAs(*config.replica);
    copies.local = &volume.local_blobs();
    copies.owner = volume.replica_owner();
    RemoteScrubber::Options scrub;
    scrub.interval_seconds = options.background ? config.remote_scrub_interval_seconds : 0;
    scrub.bytes_per_second = config.remote_scrub_bytes_per_second;
    scrub.clock = io.clock;
    remote_scrubber_ = std::make_unique<RemoteScrubber>(volume.ns(), copies, scrub);
  }
}

VolumeServices::~VolumeServices() { Stop(); }

void VolumeServices::Stop() {
  shared_sweeper_.reset();
  collector_.reset();
  maintenance_.reset();
  remote_scrubber_.reset();
  tiering_.reset();
  backups_.reset();
  backup_store_.reset();
  replicator_.reset();
}

}  // namespace cairn
