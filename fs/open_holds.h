// This host's holds on the inodes it has open, on a namespace several
// hosts share (NamespaceStore::HoldOpen): the first open of an inode here
// commits the hold before the open succeeds, the last close removes it.
// Opens and closes of one inode that race with a hold's commit wait for
// it, so no open returns while its inode is unheld, and no close removes
// a hold another open still counts on. Inodes are independent.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/types.h"

namespace cairn {

class OpenHolds {
 public:
  // `hold` commits this host's hold on an inode; `drop` removes it.
  OpenHolds(std::function<absl::Status(InodeId)> hold, std::function<absl::Status(InodeId)> drop)
      : hold_(std::move(hold)), drop_(std::move(drop)) {}

  // Counts an open of `ino`; the first commits the hold. On an error the
  // open is not counted.
  absl::Status Acquire(InodeId ino) {
    absl::MutexLock lock(&mu_);
    states_[ino].opens++;
    WaitIdle(ino);
    State& state = states_[ino];
    if (state.held) return absl::OkStatus();
    state.busy = true;
    mu_.Unlock();
    absl::Status s = hold_(ino);
    mu_.Lock();
    State& after = states_[ino];
    after.busy = false;
    if (s.ok()) {
      after.held = true;
    } else {
      after.opens--;
      EraseIfIdle(ino);
    }
    idle_.SignalAll();
    return s;
  }

  // An open whose hold a create committed with the inode.
  void Adopt(InodeId ino) {
    absl::MutexLock lock(&mu_);
    State& state = states_[ino];
    state.opens++;
    state.held = true;
  }

  // Gives back an open of `ino`; the last removes the hold. A removal
  // that fails leaves the hold counted here, so the next last close tries
  // again (the leader's ReleaseUnheldOrphans cannot: this host lives).
  void Release(InodeId ino) {
    absl::MutexLock lock(&mu_);
    auto it = states_.find(ino);
    if (it == states_.end()) return;
    if (it->second.opens > 0) it->second.opens--;
    WaitIdle(ino);
    State& state = states_[ino];
    if (state.opens > 0 || !state.held) {
      EraseIfIdle(ino);
      return;
    }
    state.busy = true;
    mu_.Unlock();
    absl::Status s = drop_(ino);
    mu_.Lock();
    State& after = states_[ino];
    after.busy = false;
    if (s.ok()) after.held = false;
    EraseIfIdle(ino);
    idle_.SignalAll();
  }

  // Whether this host holds `ino` (for tests).
  bool Holds(InodeId ino) {
    absl::MutexLock lock(&mu_);
    auto it = states_.find(ino);
    return it != states_.end() && it->second.held;
  }

 private:
  struct State {
    uint64_t opens = 0;
    bool held = false;  // the namespace has this host's hold
    bool busy = false;  // a hold or its removal is being committed
  };
  // Looked up again after each wait: the map may have rehashed meanwhile.
  void WaitIdle(InodeId ino) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (states_[ino].busy) idle_.Wait(&mu_);
  }
  void EraseIfIdle(InodeId ino) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = states_.find(ino);
    if (it != states_.end() && it->second.opens == 0 && !it->second.held && !it->second.busy) {
      states_.erase(it);
    }
  }

  const std::function<absl::Status(InodeId)> hold_;
  const std::function<absl::Status(InodeId)> drop_;
  absl::Mutex mu_;
  absl::CondVar idle_;
  absl::flat_hash_map<InodeId, State> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cairn
