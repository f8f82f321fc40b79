// The replica's garbage collection: backups beyond the ones kept, and the
// blob objects no kept backup and no blob record of the volume needs.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/namespace/namespace_store.h"
#include "backend/services/backup.h"

namespace cairn {

struct ReplicaGcReport {
  uint64_t backups_deleted = 0;   // beyond `keep`, or incomplete
  uint64_t backups_kept = 0;
  uint64_t objects_listed = 0;
  uint64_t objects_deleted = 0;
};

// Deletes the complete backups beyond the newest `keep` and every
// incomplete one, then every blob object no kept backup and no blob record
// (nor queue entry) of `ns` needs. Takes the store's mutex. Stops, deleting
// nothing more, at the first error reading what is needed.
absl::StatusOr<ReplicaGcReport> CollectReplicaGarbage(NamespaceStore& ns, BackupStore& store,
                                                      RemoteBlobStore& replica, int keep);

}  // namespace cairn
