#include "backend/services/replica_owner.h"

#include <unistd.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"

namespace cairn {

std::string NewReplicaOwnerToken() {
  std::random_device random;
  return absl::StrFormat("%08x%08x", random(), random());
}

absl::StatusOr<std::string> ReplicaOwnerToken(NamespaceStore& ns) {
  absl::StatusOr<std::optional<std::string>> stored = ns.GetVolumeMeta(kReplicaOwnerKey);
  if (!stored.ok()) return stored.status();
  if (stored->has_value() && !(*stored)->empty()) return **stored;
  std::string token = NewReplicaOwnerToken();
  if (absl::Status s = ns.SetVolumeMeta(kReplicaOwnerKey, token); !s.ok()) return s;
  return token;
}

ReplicaOwner::ReplicaOwner(s3::ObjectStore& client, std::string volume_root, std::string token,
                           Clock* clock)
    : client_(client), key_(volume_root + "owner"), token_(std::move(token)), clock_(clock) {}

absl::Status ReplicaOwner::Claim() {
  char host[256] = "";
  gethostname(host, sizeof(host) - 1);
  const int64_t now = clock_->NowSeconds();
  std::string record = absl::StrCat(token_, " ", host, " ", now, "\n");
  if (absl::Status s = client_.PutObject(key_, record, Crc32c(record)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  checked_until_ = now + 60;
  return absl::OkStatus();
}

absl::Status ReplicaOwner::Check(bool fresh) {
  const int64_t now = clock_->NowSeconds();
  if (!fresh) {
    absl::MutexLock lock(&mu_);
    if (now < checked_until_) return absl::OkStatus();
  }
  absl::StatusOr<std::string> record = client_.GetObject(key_);
  if (!record.ok() && IsNotFoundError(record.status())) return Claim();
  if (!record.ok()) return record.status();
  std::vector<std::string> words = absl::StrSplit(absl::StripSuffix(*record, "\n"), ' ');
  if (words[0] != token_) {
    std::string who = words.size() >= 3 ? absl::StrCat(" on host ", words[1], " since ",
                                                       absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                                                                        absl::FromUnixSeconds(
                                                                            std::atoll(words[2].c_str())),
                                                                        absl::UTCTimeZone()))
                                            : "";
    return FsError(FsErrorKind::kBusy,
                   absl::StrCat("another copy of this volume", who, " writes the replica ",
                                "(a volume restored with --take-over?); this one no longer "
                                "replicates nor backs up. If this copy is the one to keep and the "
                                "other is gone for good: cairn backup claim VOLUME_DIR"));
  }
  absl::MutexLock lock(&mu_);
  checked_until_ = now + 60;
  return absl::OkStatus();
}

}  // namespace cairn
