#include "fs/open_holds.h"

#include <utility>

namespace cairn {

OpenHolds::OpenHolds(std::function<absl::Status(InodeId)> hold,
                     std::function<absl::Status(const std::vector<InodeId>&)> drop,
                     absl::Duration gather)
    : hold_(std::move(hold)), drop_(std::move(drop)), gather_(gather) {
  thread_ = std::thread([this] { Loop(); });
}

OpenHolds::~OpenHolds() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  DropPending().IgnoreError();  // the session's end releases what is left
}

absl::Status OpenHolds::Acquire(InodeId ino) {
  absl::MutexLock lock(&mu_);
  states_[ino].opens++;
  WaitIdle(ino);
  State& state = states_[ino];
  if (state.held) {
    state.dropping = false;  // closed and opened again before the removal
    return absl::OkStatus();
  }
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

void OpenHolds::Adopt(InodeId ino) {
  absl::MutexLock lock(&mu_);
  State& state = states_[ino];
  state.opens++;
  state.held = true;
  state.dropping = false;
}

void OpenHolds::Release(InodeId ino) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(ino);
  if (it == states_.end()) return;
  State& state = it->second;
  if (state.opens > 0) state.opens--;
  if (state.opens > 0 || !state.held || state.dropping) {
    EraseIfIdle(ino);
    return;
  }
  state.dropping = true;
  pending_.push_back(ino);
}

absl::Status OpenHolds::Flush() {
  absl::MutexLock lock(&mu_);
  // A batch the background took is waited for, as if this one took it.
  mu_.Await(absl::Condition(this, &OpenHolds::NothingInFlight));
  absl::Status s = DropPending();
  mu_.Await(absl::Condition(this, &OpenHolds::NothingInFlight));
  return s;
}

bool OpenHolds::Holds(InodeId ino) {
  absl::MutexLock lock(&mu_);
  auto it = states_.find(ino);
  return it != states_.end() && it->second.held;
}

void OpenHolds::WaitIdle(InodeId ino) {
  while (states_[ino].busy) idle_.Wait(&mu_);
}

void OpenHolds::EraseIfIdle(InodeId ino) {
  auto it = states_.find(ino);
  if (it != states_.end() && it->second.opens == 0 && !it->second.held && !it->second.busy) {
    states_.erase(it);
  }
}

absl::Status OpenHolds::DropPending() {
  std::vector<InodeId> batch;
  for (InodeId ino : pending_) {
    auto it = states_.find(ino);
    if (it == states_.end()) continue;
    State& state = it->second;
    // Opened again meanwhile, or already in this batch, or being dropped
    // by another flush.
    if (!state.dropping || state.opens > 0 || state.busy || !state.held) continue;
    state.busy = true;
    batch.push_back(ino);
  }
  pending_.clear();
  if (batch.empty()) return absl::OkStatus();
  ++in_flight_;
  mu_.Unlock();
  absl::Status s = drop_(batch);
  mu_.Lock();
  --in_flight_;
  for (InodeId ino : batch) {
    State& state = states_[ino];
    state.busy = false;
    if (s.ok()) {
      state.held = false;
      state.dropping = false;
    } else if (state.dropping) {
      pending_.push_back(ino);  // with the next batch
    }
    EraseIfIdle(ino);
  }
  idle_.SignalAll();
  return s;
}

bool OpenHolds::NothingInFlight() const { return in_flight_ == 0; }

void OpenHolds::Loop() {
  absl::MutexLock lock(&mu_);
  auto stopping = [](bool* stopping) { return *stopping; };
  bool failed = false;
  while (true) {
    mu_.Await(absl::Condition(this, &OpenHolds::ShouldWake));
    if (stopping_) return;
    // Let more closes join the batch; after a failure, let the database
    // recover rather than spin.
    if (mu_.AwaitWithTimeout(absl::Condition(+stopping, &stopping_),
                             failed ? absl::Seconds(1) : gather_)) {
      return;
    }
    failed = !DropPending().ok();  // kept pending: the next batch tries again
  }
}

bool OpenHolds::ShouldWake() const { return stopping_ || !pending_.empty(); }

}  // namespace cairn
