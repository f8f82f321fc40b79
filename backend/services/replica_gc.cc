#include "backend/services/replica_gc.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"

namespace cairn {

absl::StatusOr<ReplicaGcReport> CollectReplicaGarbage(NamespaceStore& ns, BackupStore& store,
                                                      RemoteBlobStore& replica, int keep) {
  absl::MutexLock lock(&store.mutex());
  if (absl::Status s = store.CheckOwner(); !s.ok()) return s;
  ReplicaGcReport report;
  absl::StatusOr<std::vector<BackupListing>> listed = store.List();
  if (!listed.ok()) return listed.status();
  // Nothing is being taken (we hold the lock): an incomplete backup is an
  // interrupted one, and never completes.
  std::vector<std::string> complete;
  for (const BackupListing& backup : *listed) {
    if (backup.complete) {
      complete.push_back(backup.id);
    } else {
      if (absl::Status s = store.Delete(backup.id); !s.ok()) return s;
      report.backups_deleted++;
    }
  }
  const size_t keep_count = static_cast<size_t>(std::max(keep, 1));
  while (complete.size() > keep_count) {
    if (absl::Status s = store.Delete(complete.front()); !s.ok()) return s;
    complete.erase(complete.begin());
    report.backups_deleted++;
  }
  report.backups_kept = complete.size();

  // The objects first: any blob uploaded after this listing is not
  // considered, and any listed one was committed before it (the replicator
  // copies only committed blobs), so the records read next show it unless
  // it was freed since.
  absl::StatusOr<std::vector<BlobId>> objects = replica.ListIds(0);
  if (!objects.ok()) return objects.status();
  report.objects_listed = objects->size();
  // A sorted vector, not a set: a million ids cost 8 MB, not 40.
  std::vector<BlobId> needed;
  for (const std::string& id : complete) {
    absl::StatusOr<BackupManifest> manifest = store.ReadManifest(id);
    if (!manifest.ok()) return manifest.status();
    absl::StatusOr<std::vector<NeededBlob>> blobs = store.ReadBlobList(*manifest);
    if (!blobs.ok()) return blobs.status();
    for (const NeededBlob& blob : *blobs) needed.push_back(blob.id);
  }
  absl::Status recorded = ForEachBlobRecord(ns, [&](BlobId id, const BlobRecord&) {
    needed.push_back(id);
    return absl::OkStatus();
  });
  if (!recorded.ok()) return recorded;
  absl::Status queued = ForEachQueuedReplication(ns, [&](const QueuedReplication& q) {
    needed.push_back(q.id);
    return absl::OkStatus();
  });
  if (!queued.ok()) return queued;
  std::sort(needed.begin(), needed.end());
  std::vector<std::string> keys;
  for (BlobId id : *objects) {
    if (!std::binary_search(needed.begin(), needed.end(), id)) keys.push_back(replica.KeyOf(id));
  }
  for (size_t i = 0; i < keys.size(); i += 1000) {
    std::vector<std::string> batch(keys.begin() + i,
                                   keys.begin() + std::min(keys.size(), i + 1000));
    if (absl::Status s = store.client().DeleteObjects(batch); !s.ok()) return s;
    report.objects_deleted += batch.size();
  }
  return report;
}

}  // namespace cairn
