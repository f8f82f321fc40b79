// The KvStore of a volume several hosts mount (issue 18): the namespace's
// keys in PostgreSQL, reached with libpq.
//
// Layout (schema version 2):
//   cairn_kv(space smallint, key bytea, value bytea, PRIMARY KEY (space, key))
//     every record; bytea compares bytewise (memcmp, then length), which
//     is the order KvStore promises.
//   cairn_counters(name text, slot smallint, value bigint)
//     a counter is the sum of its slots; a transaction adds to one slot
//     picked at random, so concurrent writers rarely touch the same row.
//     Adds are blind (reading the sum would make every add conflict with
//     every other), so the zero floor of kv_store.h applies when the
//     counter is read: a sum below zero reads as 0, and later additions
//     start from the stored sum, not from 0 (RocksDB stores the clamped
//     value). Only an accounting error can take a counter below zero.
//   cairn_sequences(name text PRIMARY KEY, next bigint)
//     Allocate's ranges, each taken in its own short autocommit statement,
//     which no rollback undoes.
//   cairn_schema(version int)
//   cairn_sessions(id, host, pid, mountpoint, started, heartbeat, expires,
//                  journal_backlog)
//     one row per daemon that opened the store with a session; ids come
//     from the sequence cairn_session_ids and are never reused. Alive while
//     expires > now() by the server's clock (pg_session.h).
//   cairn_feed(seq bigserial, session bigint, at timestamptz, changes bytea)
//     one row per committed writing transaction of a session: the keys it
//     changed (EncodeFeedChanges), written in the transaction itself, with
//     NOTIFY cairn_feed as a doorbell. Trimmed after feed_keep_s.
//   cairn_feed_readers(session bigint, seen bigint)
//     how far each watcher has read: the trim never passes the lowest.
//
// Transactions run SERIALIZABLE. Reads go to the server (prepared
// statements) and see the transaction's own buffered writes; the writes are
// sent at commit in one pipelined round trip with the COMMIT. A
// serialization failure or deadlock (SQLSTATE 40001, 40P01) re-runs the
// body, a bounded number of times with jittered backoff. See
// docs/ARCHITECTURE.md ("The PostgreSQL engine") and docs/DURABILITY.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "backend/namespace/kv_store.h"

namespace cairn {

// The session of a daemon that mounts the volume (see pg_session.h).
struct PgSessionOptions {
  std::string host;  // shown by cairn status
  int pid = 0;
  std::string mountpoint;
  // The session dies when no heartbeat extended it for this long; then its
  // transactions are refused (fencing) until the daemon mounts again.
  int expiry_s = 30;
  // Between heartbeats; 0: expiry_s / 6, so five may fail in a row.
  int heartbeat_ms = 0;
  // A dead session's row is deleted this long after its expiry.
  int reap_grace_s = 5;
  // The change feed: rows older than this are trimmed (once every watcher
  // has read them); a watcher polls this often besides its NOTIFY doorbell.
  int feed_keep_s = 300;
  int feed_poll_ms = 1000;
  // How long a watcher waits for a feed number it has not seen to commit
  // (a transaction that took a number commits just after, in the same
  // round trip; a rolled-back one never does) before passing over it.
  int feed_gap_grace_ms = 30000;
  // Tests turn the doorbell off to show polling alone loses nothing.
  bool listen = true;
};

struct PgKvOptions {
  // A libpq connection URI or key=value string
  // ("postgresql://USER@HOST:PORT/DB?sslmode=..."); a password belongs in
  // ~/.pgpass or PGPASSFILE rather than here, since messages may quote
  // the host and port (never the URL).
  std::string url;
  // Connections kept open at most; transactions on more threads than this
  // wait for one.
  int pool_size = 4;
  // Any one statement longer than this is cancelled by the server (and the
  // call fails with kDeadlineExceeded). Zero: no limit.
  int statement_timeout_ms = 30000;
  int connect_timeout_s = 10;
  // A transaction whose commit keeps conflicting with other writers runs
  // again, with a growing pause (up to 128 ms), at least max_attempts
  // times and for at least conflict_retry_ms, then Run gives up with
  // kAborted. A time as well as a count: two hosts busy in one directory
  // can make one host's removals lose 30 times in a row to the other's
  // shorter transactions, and an application would rather wait than get
  // EIO.
  int max_attempts = 30;
  int conflict_retry_ms = 30000;
  // Rows a Scan fetches per round trip.
  int scan_page = 256;
  // With a session, Open registers this daemon (cairn_sessions), keeps it
  // alive, fences its transactions, takes part in the leader election and
  // records its changes in the feed. Without (format, fsck, status): none
  // of that, and IsLeader is false.
  std::optional<PgSessionOptions> session;
};

class PgKvStore : public KvStore {
 public:
  // Creates the tables in an empty database and opens it; kAlreadyExists
  // if the database already holds a cairn namespace (two volumes must not
  // share one).
  static absl::StatusOr<std::unique_ptr<PgKvStore>> Format(const PgKvOptions& options);
  // Opens a database Format prepared. It never creates tables: a database
  // whose tables are gone (dropped, or the URL names another database) is
  // refused rather than mounted empty.
  static absl::StatusOr<std::unique_ptr<PgKvStore>> Open(const PgKvOptions& options);

  ~PgKvStore() override;

  KvReader& Reader() override;
  absl::Status Run(const std::function<absl::Status(KvTxn&)>& body) override;
  // A no-op: Run returns after COMMIT, which PostgreSQL makes durable
  // (WAL flushed) before answering with synchronous_commit on, which every
  // connection sets for its session whatever the server's default.
  absl::Status Sync() override;
  absl::StatusOr<int64_t> ReadCounter(std::string_view counter) override;
  absl::StatusOr<uint64_t> Allocate(std::string_view sequence, uint64_t first_ever,
                                    uint64_t count) override;

  uint64_t session_id() const override;
  absl::StatusOr<std::vector<uint64_t>> LiveSessions() override;
  absl::StatusOr<std::vector<SessionInfo>> ListSessions() override;
  void SetSessionBacklog(uint64_t bytes) override;
  // Whether this daemon holds the volume's leader lock (an advisory lock
  // on a connection of its own, pg_session.h) and its session is alive.
  bool IsLeader() override;
  absl::StatusOr<std::unique_ptr<Watch>> WatchChanges(ChangeFn fn) override;

  // Transaction runs that took reads from what this host remembered (one
  // round trip where a body needed nothing else), and those of them whose
  // commit found a remembered value changed, run again from the server.
  struct SpeculationCounts {
    uint64_t runs = 0;
    uint64_t stale = 0;
  };
  SpeculationCounts speculation_counts() const;

  // Tests: stops (or resumes) the heartbeat thread's work, as a host
  // paused or cut off would.
  void PauseHeartbeatForTest(bool paused);

  struct Impl;

 private:
  explicit PgKvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Counter slots per counter (see cairn_counters above).
inline constexpr int kPgCounterSlots = 16;
inline constexpr int kPgSchemaVersion = 2;

}  // namespace cairn
