#include "backend/services/tier_mover.h"

#include "absl/strings/str_cat.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"

namespace cairn {

TierMover::TierMover(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote)
    : ns_(ns), local_(local), remote_(remote) {}

absl::Status TierMover::MoveOut(BlobId id) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) return record.status();
  if (record->location == BlobLocation::kRemote) return absl::OkStatus();
  auto fail = [&](absl::Status s) {
    errors_++;
    return s;
  };
  if (record->location == BlobLocation::kLocal) {
    absl::StatusOr<std::string> data = local_.Read(id, 0, record->length);
    if (!data.ok()) return fail(data.status());
    if (Crc32c(*data) != record->crc32c) {
      return fail(FsError(FsErrorKind::kIo, absl::StrCat("blob ", id, " does not match its "
                                                         "checksum; not moved")));
    }
    if (absl::StatusOr<BlobInfo> put = remote_.Put(id, *data); !put.ok()) return fail(put.status());
    if (absl::Status s = remote_.Verify(id, record->length, record->crc32c); !s.ok()) {
      return fail(s);
    }
    moved_out_bytes_ += record->length;
  }
  // From here the remote copy is the one that counts; the commit is made
  // durable before any local byte is freed.
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kFreeing); !s.ok()) {
    // Deleted meanwhile (garbage collection): the object just uploaded is
    // referenced by nothing.
    if (IsNotFoundError(s)) remote_.Delete(id).IgnoreError();
    return fail(s);
  }
  if (absl::Status s = ns_.Sync(); !s.ok()) return fail(s);
  if (absl::Status s = local_.Delete(id); !s.ok()) return fail(s);
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kRemote); !s.ok() && !IsNotFoundError(s)) {
    return fail(s);
  }
  moved_out_++;
  return absl::OkStatus();
}

absl::Status TierMover::MoveIn(BlobId id) {
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  if (!record.ok()) return record.status();
  if (record->location == BlobLocation::kLocal || record->location == BlobLocation::kBoth) {
    return absl::OkStatus();
  }
  // A recall is never worth the namespace's last room: the data reads as
  // well from the tier.
  if (room_check_) {
    if (absl::Status room = room_check_(record->length); !room.ok()) {
      errors_++;
      return room;
    }
  }
  absl::StatusOr<std::string> data = remote_.Read(id, 0, record->length);
  if (!data.ok() || Crc32c(*data) != record->crc32c) {
    errors_++;
    return data.ok() ? FsError(FsErrorKind::kIo,
                               absl::StrCat("remote copy of blob ", id, " does not match its "
                                            "checksum"))
                     : data.status();
  }
  // kFreeing: some local shards may be left; Put replaces them all.
  if (absl::StatusOr<BlobInfo> put = local_.Put(id, *data); !put.ok()) {
    errors_++;
    return put.status();
  }
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kBoth); !s.ok()) {
    errors_++;
    return s;
  }
  moved_in_++;
  moved_in_bytes_ += record->length;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> TierMover::FinishFreeing() {
  uint64_t finished = 0;
  absl::Status scanned = ForEachBlobRecord(ns_, [&](BlobId id, const BlobRecord& record) {
    if (record.location != BlobLocation::kFreeing) return absl::OkStatus();
    if (absl::Status s = local_.Delete(id); !s.ok()) return s;
    absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kRemote);
    if (!s.ok() && !IsNotFoundError(s)) return s;
    finished++;
    return absl::OkStatus();
  });
  if (!scanned.ok()) return scanned;
  return finished;
}

TierMover::Stats TierMover::GetStats() {
  return Stats{moved_out_, moved_out_bytes_, moved_in_, moved_in_bytes_, errors_};
}

}  // namespace cairn
