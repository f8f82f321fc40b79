// The KvStore of a volume several hosts mount (issue 18): the namespace's
// keys in PostgreSQL, reached with libpq.
//
// Layout (schema version 1):
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
#include <string>

#include "absl/status/statusor.h"
#include "backend/namespace/kv_store.h"

namespace cairn {

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
  // Runs of a transaction body before Run gives up with kAborted.
  int max_attempts = 10;
  // Rows a Scan fetches per round trip.
  int scan_page = 256;
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

  struct Impl;

 private:
  explicit PgKvStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Counter slots per counter (see cairn_counters above).
inline constexpr int kPgCounterSlots = 16;
inline constexpr int kPgSchemaVersion = 1;

}  // namespace cairn
