// One copy of a volume writes its replica: the object PREFIX<volume id>/owner
// names the token of the copy that does (ReplicaOwner). A restored copy
// that takes the replica over writes its own token there, and the old copy,
// should it come back, stops replicating instead of deleting what the new
// one stores.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/clock.h"
#include "backend/namespace/namespace_store.h"
#include "backend/s3/object_store.h"

namespace cairn {

// Volume meta: this copy's replica-owner token.
inline constexpr char kReplicaOwnerKey[] = "replica_owner";
// This copy's token, made and recorded the first time it is asked for.
absl::StatusOr<std::string> ReplicaOwnerToken(NamespaceStore& ns);
// A new random token (a restored copy gets one: it is another copy).
std::string NewReplicaOwnerToken();

class ReplicaOwner {
 public:
  // `volume_root`: "PREFIX<volume id>/".
  ReplicaOwner(s3::ObjectStore& client, std::string volume_root, std::string token,
               Clock* clock = Clock::Default());
  // OK when the replica is this copy's, claiming it if no copy has; else
  // kFailedPrecondition naming the other copy and what to do. A positive
  // answer is trusted for a minute (for the replicator's passes; deletes
  // and backups ask with `fresh`).
  absl::Status Check(bool fresh = false);
  // Makes the replica this copy's, whoever had it.
  absl::Status Claim();
  const std::string& token() const { return token_; }

 private:
  s3::ObjectStore& client_;
  const std::string key_;
  const std::string token_;
  Clock* const clock_;
  absl::Mutex mu_;
  int64_t checked_until_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cairn
