#include "backend/services/unclaimed_remote.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"

namespace cairn {

absl::StatusOr<UnclaimedRemote> SweepUnclaimedRemote(NamespaceStore& ns, RemoteBlobStore& remote,
                                                     s3::ObjectStore& client, bool remove,
                                                     std::vector<std::string>* lines,
                                                     size_t max_lines) {
  UnclaimedRemote found;
  absl::StatusOr<std::vector<BlobId>> ids = remote.ListIds(0);
  if (!ids.ok()) return ids.status();
  std::vector<std::string> keys;
  for (BlobId id : *ids) {
    absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
    if (record.ok() && record->location != BlobLocation::kLocal) continue;
    if (!record.ok() && !IsNotFoundError(record.status())) return record.status();
    keys.push_back(remote.KeyOf(id));
    if (lines->size() < max_lines) {
      lines->push_back(absl::StrCat("remote object ", keys.back(), ": ",
                                    record.ok() ? "an upload whose move was never committed"
                                                : "its blob no longer exists"));
    }
  }
  found.objects = keys.size();
  if (remove && !keys.empty()) {
    if (absl::Status s = client.DeleteObjects(keys); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<s3::MultipartUpload>> uploads =
      client.ListMultipartUploads(remote.prefix());
  if (!uploads.ok()) {
    // s3rver and some other servers do not implement the listing; nothing
    // of ours uses multipart for blobs (they go up in one PUT) anyway.
    if (absl::StrContains(uploads.status().message(), "NotImplemented")) {
      found.uploads_listed = false;
      return found;
    }
    return uploads.status();
  }
  for (const s3::MultipartUpload& upload : *uploads) {
    found.uploads++;
    if (lines->size() < max_lines) {
      lines->push_back(absl::StrCat("multipart upload ", upload.upload_id, " of ", upload.key,
                                    " was never completed"));
    }
    if (remove) {
      if (absl::Status s = client.AbortMultipartUpload(upload.key, upload.upload_id); !s.ok()) {
        return s;
      }
    }
  }
  return found;
}

}  // namespace cairn
