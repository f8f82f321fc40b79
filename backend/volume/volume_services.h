// The background services of a volume, built in one place for the mounted
// daemon and for the commands that work on an unmounted volume: the
// tiering policy, the replicator, namespace backups with the replica's
// garbage collection, and the striped store's scrub and repair. Which exist
// follows the volume: [tier], [replica], a striped store.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "backend/services/backup.h"
#include "backend/services/blob_gc.h"
#include "backend/services/backup_service.h"
#include "backend/services/remote_scrub.h"
#include "backend/services/replication.h"
#include "backend/services/shared_blob_sweep.h"
#include "backend/services/storage_maintenance.h"
#include "backend/services/tiering.h"
#include "backend/volume/volume.h"

namespace cairn {

class VolumeServices {
 public:
  struct Options {
    // false: no background threads; the services act only when asked
    // (RunPass, RunNow) - a command's way.
    bool background = true;
    // Overrides [replica] backup_wait_seconds (a command copies the queue
    // itself before it backs up, so it waits for nothing).
    std::optional<int64_t> backup_wait_seconds;
    // Called with each blob garbage collection deletes (the daemon's read
    // cache drops it).
    std::function<void(BlobId)> on_blob_deleted;
    // The shared volume's bucket sweep (tests make it quick).
    SharedBlobSweeper::Options shared_sweep;
  };
  VolumeServices(Volume& volume, Options options);
  // Stops them in a safe order (Stop).
  ~VolumeServices();

  // Null when the volume has no such part.
  TieringService* tiering() { return tiering_.get(); }
  Replicator* replicator() { return replicator_.get(); }
  BackupService* backups() { return backups_.get(); }
  StorageMaintenance* maintenance() { return maintenance_.get(); }
  // With a [replica] or a [tier]; its background pass only with background
  // threads.
  RemoteScrubber* remote_scrubber() { return remote_scrubber_.get(); }
  // Only with background threads: commands leave garbage to the daemon.
  BlobCollector* collector() { return collector_.get(); }
  // A shared volume's sweep of its bucket; only with background threads.
  SharedBlobSweeper* shared_sweeper() { return shared_sweeper_.get(); }

  // Stops the threads: the bucket sweep, garbage collection and scrubs
  // first (a manual scrub in progress too), then tiering, then backups
  // before the replicator a backup may wait for.
  // Idempotent.
  void Stop();

 private:
  std::unique_ptr<BlobCollector> collector_;
  std::unique_ptr<SharedBlobSweeper> shared_sweeper_;
  std::unique_ptr<StorageMaintenance> maintenance_;
  std::unique_ptr<RemoteScrubber> remote_scrubber_;
  std::unique_ptr<TieringService> tiering_;
  std::unique_ptr<Replicator> replicator_;
  std::unique_ptr<BackupStore> backup_store_;
  std::unique_ptr<BackupService> backups_;
};

}  // namespace cairn
