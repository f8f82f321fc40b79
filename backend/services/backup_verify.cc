#include "backend/services/backup_verify.h"

#include <algorithm>
#include <atomic>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/parallel.h"

namespace cairn {

absl::StatusOr<VerifyReport> VerifyBackup(BackupStore& store, RemoteBlobStore& replica,
                                          const BackupManifest& manifest, int parallel,
                                          const RestoreProgress& progress) {
  VerifyReport report;
  report.backup_id = manifest.backup_id;
  if (absl::Status s = store.FetchCheckpoint(manifest, ""); !s.ok()) {
    report.problems.push_back(std::string(s.message()));
  }
  absl::StatusOr<std::vector<NeededBlob>> blobs = store.ReadBlobList(manifest);
  if (!blobs.ok()) {
    report.problems.push_back(std::string(blobs.status().message()));
    return report;
  }
  absl::StatusOr<std::vector<BlobId>> present = replica.ListIds(0);
  if (!present.ok()) return present.status();
  absl::Mutex mu;
  std::atomic<uint64_t> done{0}, bytes{0};
  std::vector<BlobId> ids;
  absl::flat_hash_map<BlobId, NeededBlob> by_id;
  for (const NeededBlob& blob : *blobs) {
    if (!std::binary_search(present->begin(), present->end(), blob.id)) {
      report.missing++;
      if (report.problems.size() < 100) {
        report.problems.push_back(absl::StrCat("blob ", blob.id, ": missing from the replica"));
      }
      continue;
    }
    ids.push_back(blob.id);
    by_id[blob.id] = blob;
  }
  // A damaged blob is counted, not fatal: the walk goes on.
  absl::Status walked = RunInParallel(
      ids.size(), parallel,
      [&](size_t i) {
        const BlobId id = ids[i];
        const NeededBlob& blob = by_id.at(id);
        absl::Status s = replica.Verify(id, blob.length, blob.crc32c);
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          report.damaged++;
          if (report.problems.size() < 100) {
            report.problems.push_back(absl::StrCat("blob ", id, ": ", s.message()));
          }
        }
        bytes += blob.length;
        return absl::OkStatus();
      },
      [&](size_t) {
        uint64_t n = ++done;
        if (progress) progress(n, ids.size(), bytes, manifest.blob_bytes);
      });
  if (!walked.ok()) return walked;
  report.blobs = blobs->size();
  report.bytes = manifest.blob_bytes;
  return report;
}

}  // namespace cairn
