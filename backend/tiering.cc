#include "backend/tiering.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "backend/crc32c.h"
#include "backend/fs_error.h"
#include "backend/log.h"
#include "backend/s3_credentials.h"

namespace cairn {
namespace {

bool RecordGone(const absl::Status& s) {
  return absl::IsNotFound(s) || GetFsErrorKind(s) == FsErrorKind::kNotFound;
}

}  // namespace

absl::StatusOr<s3::S3Options> TierS3Options(const TierConfig& tier,
                                            const std::string& config_path) {
  s3::S3Options options;
  options.endpoint = tier.endpoint;
  options.bucket = tier.bucket;
  options.region = tier.region;
  options.ca_file = tier.ca_file;
  options.path_style = tier.addressing == "path" ||
                       (tier.addressing == "auto" &&
                        tier.endpoint.find("amazonaws.com") == std::string::npos);
  // A read waits for the remote at most this long in all, retries included.
  options.max_retry_seconds = static_cast<double>(tier.read_timeout_seconds);
  s3::CredentialSources sources;
  if (!tier.secret_access_key.empty() || !tier.access_key_id.empty()) {
    sources.config = s3::Credentials{tier.access_key_id, tier.secret_access_key, ""};
  }
  sources.config_path = config_path;
  sources.credentials_file = tier.credentials_file;
  sources.profile = tier.profile;
  absl::StatusOr<s3::Credentials> credentials = s3::ResolveCredentials(sources, ::getenv);
  if (!credentials.ok()) return credentials.status();
  options.credentials = *credentials;
  return options;
}

TieredBlobStore::TieredBlobStore(NamespaceStore& ns, BlobStore& local, RemoteBlobStore& remote)
    : ns_(ns), local_(local), remote_(remote) {}

absl::StatusOr<BlobInfo> TieredBlobStore::Put(BlobId id, std::string_view data) {
  return local_.Put(id, data);
}

absl::StatusOr<std::string> TieredBlobStore::Read(BlobId id, uint64_t offset, uint64_t length) {
  BlobLocation location = BlobLocation::kLocal;
  if (absl::StatusOr<BlobRecord> record = ns_.GetBlob(id); record.ok()) {
    location = record->location;
  }
  auto from_remote = [&]() -> absl::StatusOr<std::string> {
    remote_reads_++;
    absl::StatusOr<std::string> data = remote_.Read(id, offset, length);
    if (!data.ok()) {
      remote_read_errors_++;
      LogError("reading blob %d from the remote tier failed: %s", id, data.status().message());
      return FsError(GetFsErrorKind(data.status()) == FsErrorKind::kInvalid ? FsErrorKind::kInvalid
                                                                            : FsErrorKind::kIo,
                     std::string(data.status().message()));
    }
    remote_read_bytes_ += data->size();
    return data;
  };
  if (location == BlobLocation::kRemote || location == BlobLocation::kFreeing) {
    return from_remote();
  }
  absl::StatusOr<std::string> local = local_.Read(id, offset, length);
  if (local.ok() || GetFsErrorKind(local.status()) == FsErrorKind::kInvalid) return local;
  // The blob may have moved out since we looked, or its local copy is
  // damaged beyond repair while a remote copy exists.
  absl::StatusOr<BlobRecord> again = ns_.GetBlob(id);
  if (again.ok() && again->location != BlobLocation::kLocal) {
    local_fallbacks_++;
    return from_remote();
  }
  return local;
}

absl::Status TieredBlobStore::Delete(BlobId id) {
  // Garbage collection calls this while the record still exists (it forgets
  // the record afterwards), so the record says whether a remote copy exists.
  absl::StatusOr<BlobRecord> record = ns_.GetBlob(id);
  bool remote_copy = record.ok() && record->location != BlobLocation::kLocal;
  if (absl::Status s = local_.Delete(id); !s.ok()) return s;
  if (remote_copy) return remote_.Delete(id);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlobId>> TieredBlobStore::ListIds(BlobId from) {
  return local_.ListIds(from);
}

absl::StatusOr<StoreUsage> TieredBlobStore::Usage() { return local_.Usage(); }

TieredBlobStore::Stats TieredBlobStore::GetStats() {
  return Stats{remote_reads_, remote_read_bytes_, remote_read_errors_, local_fallbacks_};
}

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
    if (RecordGone(s)) remote_.Delete(id).IgnoreError();
    return fail(s);
  }
  if (absl::Status s = ns_.Sync(); !s.ok()) return fail(s);
  if (absl::Status s = local_.Delete(id); !s.ok()) return fail(s);
  if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kRemote); !s.ok() && !RecordGone(s)) {
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
  BlobId from = 0;
  for (;;) {
    absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> batch = ns_.ListBlobs(from, 1024);
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    for (const auto& [id, record] : *batch) {
      from = id + 1;
      if (record.location != BlobLocation::kFreeing) continue;
      if (absl::Status s = local_.Delete(id); !s.ok()) return s;
      if (absl::Status s = ns_.SetBlobLocation(id, BlobLocation::kRemote); !s.ok() && !RecordGone(s)) {
        return s;
      }
      finished++;
    }
  }
  return finished;
}

TierMover::Stats TierMover::GetStats() {
  return Stats{moved_out_, moved_out_bytes_, moved_in_, moved_in_bytes_, errors_};
}

}  // namespace cairn
