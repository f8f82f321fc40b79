// This host's holds on the inodes it has open, on a namespace several
// hosts share (NamespaceStore::HoldOpen): the first open of an inode here
// commits the hold before the open succeeds; after the last close the
// hold is removed in the background, together with those of other files
// closed meanwhile, in one commit (closing many files then costs a
// transaction per batch, not per file, and no close waits for one). An
// open of an inode whose removal is still pending keeps the hold, at no
// cost. Opens and closes of one inode that race with a commit of its hold
// wait for it, so no open returns while its inode is unheld. Inodes are
// independent.
#pragma once

#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend/base/types.h"

namespace cairn {

class OpenHolds {
 public:
  // `hold` commits this host's hold on an inode; `drop` removes the holds
  // on several, all or none. A removal waits `gather` after the close that
  // asked for it, for more to join it.
  OpenHolds(std::function<absl::Status(InodeId)> hold,
            std::function<absl::Status(const std::vector<InodeId>&)> drop,
            absl::Duration gather = absl::Milliseconds(20));
  // Removes the holds still pending (a clean unmount).
  ~OpenHolds();
  OpenHolds(const OpenHolds&) = delete;
  OpenHolds& operator=(const OpenHolds&) = delete;

  // Counts an open of `ino`; the first (unless a removal is pending)
  // commits the hold. On an error the open is not counted.
  absl::Status Acquire(InodeId ino);
  // An open whose hold a create committed with the inode.
  void Adopt(InodeId ino);
  // Gives back an open of `ino`; the last queues the hold's removal. A
  // removal that fails is tried again with the next batch (the leader's
  // ReleaseUnheldOrphans cannot: this host lives).
  void Release(InodeId ino);
  // Removes every pending hold now; the batch's error if it failed.
  absl::Status Flush();

  // Whether this host holds `ino` (for tests).
  bool Holds(InodeId ino);

 private:
  struct State {
    uint64_t opens = 0;
    bool held = false;      // the namespace has this host's hold
    bool dropping = false;  // closed: the hold is to be removed
    bool busy = false;      // a hold or its removal is being committed
  };
  // Looked up again after each wait: the map may have rehashed meanwhile.
  void WaitIdle(InodeId ino) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseIfIdle(InodeId ino) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the pending holds in one batch.
  absl::Status DropPending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();
  bool ShouldWake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool NothingInFlight() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<absl::Status(InodeId)> hold_;
  const std::function<absl::Status(const std::vector<InodeId>&)> drop_;
  const absl::Duration gather_;
  absl::Mutex mu_;
  absl::CondVar idle_;
  absl::flat_hash_map<InodeId, State> states_ ABSL_GUARDED_BY(mu_);
  // Inodes whose removal was asked for; an entry no longer `dropping` (it
  // was opened again) is skipped.
  std::vector<InodeId> pending_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // batches being committed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace cairn
