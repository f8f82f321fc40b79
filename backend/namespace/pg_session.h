// The session of a daemon on a shared (PostgreSQL) namespace: its row in
// cairn_sessions, the heartbeat that keeps it alive, the leader election,
// and the watcher of the change feed. Internal to backend/namespace/;
// PgKvStore owns one when opened with PgKvOptions::session.
//
// Liveness is decided by the server's clock alone: a session is alive while
// its row's `expires > now()`. The heartbeat extends `expires` only while
// the row is still alive (`WHERE expires > now()`), so a dead session never
// revives; its daemon learns it is fenced and must mount again.
//
// Fencing: each transaction of PgKvStore::Run begins with
//   SELECT ... FROM cairn_sessions WHERE id = $self
//     AND expires > clock_timestamp() FOR KEY SHARE
// in its first round trip: a dead session's transaction is refused before
// it reads anything. FOR KEY SHARE does not conflict with the heartbeat's
// UPDATE of non-key columns (FOR NO KEY UPDATE), so it neither waits for nor
// fails against it, even under SERIALIZABLE (the heartbeat runs READ
// COMMITTED, which takes no predicate locks). It does block a DELETE of the
// row: the reaper deletes with FOR UPDATE SKIP LOCKED, so a session's row
// stays until none of its transactions is in flight, and whatever such a
// transaction commits is ordered before the row is gone (and before anyone
// releases what the session held).
//
// Who reaps: every live session's heartbeat thread deletes rows dead for
// reap_grace_s (an idempotent statement; the first to run it wins), and
// trims the feed.
//
// Leader: the session that holds advisory lock kPgLeaderLock on a
// connection of its own (application_name "cairn leader <id>"). Followers
// try for it each heartbeat; a follower that finds it held by a session
// whose row is no longer alive terminates that backend (a paused host keeps
// its TCP connection, and so the lock, however long it sleeps).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "backend/namespace/kv_store.h"
#include "backend/namespace/pg_kv_store.h"

namespace cairn {

inline constexpr int64_t kPgLeaderLock = 4242001802;

// The feed's `changes`: for each key, one byte of KvSpace, four bytes of
// length (big-endian) and the key.
std::string EncodeFeedChanges(const std::vector<KvStore::Change>& changes);
absl::StatusOr<std::vector<KvStore::Change>> DecodeFeedChanges(std::string_view bytes);

class PgSession {
 public:
  // Inserts the session's row and starts its heartbeat thread.
  static absl::StatusOr<std::unique_ptr<PgSession>> Start(const PgKvOptions& options);
  // Stops the threads and deletes the row (a clean end: nothing waits for
  // an expiry).
  ~PgSession();

  uint64_t id() const { return id_; }
  const PgSessionOptions& options() const { return options_; }
  bool fenced() const { return fenced_.load(); }
  // Called when the server refused a transaction: the session is dead.
  void Fence() { fenced_.store(true); }
  absl::Status FencedError() const;
  // Also false once no heartbeat succeeded for the expiry (by this host's
  // clock, which can only make it step down early): a host cut off from
  // the server stops its services before another may take over.
  bool IsLeader() const;
  void SetBacklog(uint64_t bytes) { backlog_.store(bytes); }
  void PauseHeartbeat(bool paused) { paused_.store(paused); }

  absl::StatusOr<std::unique_ptr<KvStore::Watch>> Watch(KvStore::ChangeFn fn);

  struct Threads;

 private:
  PgSession(const PgKvOptions& options, uint64_t id);
  void HeartbeatLoop();

  const std::string url_;
  const int connect_timeout_s_;
  const PgSessionOptions options_;
  const uint64_t id_;
  std::atomic<bool> fenced_{false};
  std::atomic<bool> leader_{false};
  std::atomic<bool> paused_{false};
  std::atomic<uint64_t> backlog_{0};
  std::atomic<int64_t> last_beat_ms_;  // steady clock, of the last extension
  std::unique_ptr<Threads> threads_;
};

}  // namespace cairn
