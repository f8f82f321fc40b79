#include "backend/namespace/pg_kv_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backend/namespace/pg_session.h"
#include "backend/namespace/recent_values.h"

namespace cairn {

namespace {

constexpr uint32_t kInt2Oid = 21;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kTextOid = 25;
constexpr uint32_t kByteaOid = 17;

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// ---- Binary encodings of parameters and results (network byte order). ----

void AppendBe(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string Int2(int v) {
  std::string s;
  AppendBe(&s, static_cast<uint16_t>(v), 2);
  return s;
}

std::string Int8(int64_t v) {
  std::string s;
  AppendBe(&s, static_cast<uint64_t>(v), 8);
  return s;
}

int64_t DecodeInt8(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return static_cast<int64_t>(v);
}

// A one-dimensional array in PostgreSQL's binary array format (array_recv):
// ndim, has-nulls, element type, then length and lower bound, then each
// element as a length and its bytes. Never empty: callers send no
// statement for an empty set.
class ArrayBuilder {
 public:
  explicit ArrayBuilder(uint32_t elem_oid) : elem_oid_(elem_oid) {}
  void Add(std::string_view elem) {
    AppendBe(&body_, elem.size(), 4);
    body_.append(elem);
    ++count_;
  }
  size_t count() const { return count_; }
  std::string Finish() const {
    std::string out;
    AppendBe(&out, 1, 4);
    AppendBe(&out, 0, 4);
    AppendBe(&out, elem_oid_, 4);
    AppendBe(&out, count_, 4);
    AppendBe(&out, 1, 4);
    out += body_;
    return out;
  }

 private:
  uint32_t elem_oid_;
  size_t count_ = 0;
  std::string body_;
};

// ---- The statements, prepared on every connection. ----

struct Statement {
  const char* name;
  const char* sql;
};
// Parameters are cast in the text so the server knows their types; all
// are sent and read in binary.
constexpr Statement kStatements[] = {
    {"get", "SELECT value FROM cairn_kv WHERE space = $1::int2 AND key = $2::bytea"},
    {"mget",
     "SELECT key, value FROM cairn_kv WHERE space = $1::int2 AND key = ANY($2::bytea[])"},
    {"scan_open",
     "SELECT key, value FROM cairn_kv WHERE space = $1::int2 AND key >= $2::bytea "
     "ORDER BY key LIMIT $3::int8"},
    {"scan_range",
     "SELECT key, value FROM cairn_kv WHERE space = $1::int2 AND key >= $2::bytea "
     "AND key < $3::bytea ORDER BY key LIMIT $4::int8"},
    {"put",
     "INSERT INTO cairn_kv (space, key, value) "
     "SELECT * FROM unnest($1::int2[], $2::bytea[], $3::bytea[]) "
     "ON CONFLICT (space, key) DO UPDATE SET value = EXCLUDED.value"},
    // One statement per key: a DELETE over arrays of keys (a join with
    // unnest) cost the server 0.3 ms in a directory of 1,000 entries,
    // against 0.01 ms for each of these, pipelined in the commit's round trip.
    {"del", "DELETE FROM cairn_kv WHERE space = $1::int2 AND key = $2::bytea"},
    {"add",
     "INSERT INTO cairn_counters (name, slot, value) "
     "SELECT * FROM unnest($1::text[], $2::int2[], $3::int8[]) "
     "ON CONFLICT (name, slot) DO UPDATE SET value = cairn_counters.value + EXCLUDED.value"},
    {"last_open",
     "SELECT key, value FROM cairn_kv WHERE space = $1::int2 AND key >= $2::bytea "
     "ORDER BY key DESC LIMIT 1"},
    {"last_range",
     "SELECT key, value FROM cairn_kv WHERE space = $1::int2 AND key >= $2::bytea "
     "AND key < $3::bytea ORDER BY key DESC LIMIT 1"},
    // Slots may sum below zero (each add is blind, see ReadCounter).
    {"counter",
     "SELECT greatest(coalesce(sum(value), 0), 0)::int8 FROM cairn_counters "
     "WHERE name = $1::text"},
    {"peek", "SELECT next FROM cairn_sequences WHERE name = $1::text"},
    // Its own autocommit statement (never inside Run's transactions): the
    // row lock is held for one statement, and no rollback gives a range
    // back.
    {"allocate",
     "INSERT INTO cairn_sequences AS s (name, next) VALUES ($1::text, $2::int8 + $3::int8) "
     "ON CONFLICT (name) DO UPDATE SET next = s.next + $3::int8 RETURNING s.next - $3::int8"},
    // The change feed's row of a writing transaction, last before its
    // COMMIT (so the number it takes commits within the same round trip),
    // and the doorbell, which PostgreSQL sends at commit.
    // A transaction's first statements, prepared too (parsing and planning
    // them at each transaction cost the server as much as the reads).
    {"begin", "BEGIN ISOLATION LEVEL SERIALIZABLE"},
    // What a transaction runs right after its BEGIN: its id, assigned now
    // rather than at the first write (costing one for read-only runs too)
    // so that a commit whose answer is lost can be looked up
    // (pg_xact_status) even if no result of the commit's round trip came;
    // and, with a session ($1 not 0), whether it is alive, locking its row
    // FOR KEY SHARE until the end (fencing: pg_session.h).
    {"begin_check",
     "SELECT pg_current_xact_id()::text, $1::int8 = 0 OR (SELECT id FROM cairn_sessions "
     "WHERE id = $1::int8 AND expires > clock_timestamp() FOR KEY SHARE) IS NOT NULL"},
    {"commit", "COMMIT"},
    // A speculative run (RecentValues) sends everything in one round trip,
    // the COMMIT too, so what the client would have looked at fails the
    // transaction instead (division by zero, SQLSTATE 22012): begin_check
    // with a dead session failing, and one check per value or empty range
    // the run took from memory. Their reads are the transaction's, so
    // serializable isolation covers them as any read.
    {"begin_assert",
     "SELECT pg_current_xact_id()::text, 1 / (CASE WHEN $1::int8 = 0 OR (SELECT id FROM "
     "cairn_sessions WHERE id = $1::int8 AND expires > clock_timestamp() FOR KEY SHARE) IS NOT "
     "NULL THEN 1 ELSE 0 END)"},
    {"assert_value",
     "SELECT 1 / (CASE WHEN (SELECT value FROM cairn_kv WHERE space = $1::int2 AND key = "
     "$2::bytea) = $3::bytea THEN 1 ELSE 0 END)"},
    {"assert_absent",
     "SELECT 1 / (CASE WHEN EXISTS (SELECT 1 FROM cairn_kv WHERE space = $1::int2 AND key = "
     "$2::bytea) THEN 0 ELSE 1 END)"},
    {"assert_empty",
     "SELECT 1 / (CASE WHEN EXISTS (SELECT 1 FROM cairn_kv WHERE space = $1::int2 AND key >= "
     "$2::bytea AND key < $3::bytea) THEN 0 ELSE 1 END)"},
    {"assert_empty_open",
     "SELECT 1 / (CASE WHEN EXISTS (SELECT 1 FROM cairn_kv WHERE space = $1::int2 AND key >= "
     "$2::bytea) THEN 0 ELSE 1 END)"},
    {"assert_range",
     "SELECT 1 / (CASE WHEN ROW($4::bytea[], $5::bytea[]) = (SELECT "
     "coalesce(array_agg(key ORDER BY key), '{}'), coalesce(array_agg(value ORDER BY key), '{}') "
     "FROM cairn_kv WHERE space = $1::int2 AND key >= $2::bytea AND key < $3::bytea) "
     "THEN 1 ELSE 0 END)"},
    {"assert_range_open",
     "SELECT 1 / (CASE WHEN ROW($3::bytea[], $4::bytea[]) = (SELECT "
     "coalesce(array_agg(key ORDER BY key), '{}'), coalesce(array_agg(value ORDER BY key), '{}') "
     "FROM cairn_kv WHERE space = $1::int2 AND key >= $2::bytea) THEN 1 ELSE 0 END)"},
    {"feed",
     "WITH f AS (INSERT INTO cairn_feed (session, changes) VALUES ($1::int8, $2::bytea)) "
     "SELECT pg_notify('cairn_feed', $1::int8::text)"},
};

constexpr const char* kSchemaSql =
    "CREATE TABLE IF NOT EXISTS cairn_kv ("
    "  space smallint NOT NULL, key bytea NOT NULL, value bytea NOT NULL,"
    "  PRIMARY KEY (space, key));"
    "CREATE TABLE IF NOT EXISTS cairn_counters ("
    "  name text NOT NULL, slot smallint NOT NULL, value bigint NOT NULL,"
    "  PRIMARY KEY (name, slot));"
    "CREATE TABLE IF NOT EXISTS cairn_sequences ("
    "  name text PRIMARY KEY, next bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cairn_schema ("
    "  one int PRIMARY KEY CHECK (one = 1), version int NOT NULL);"
    // Sessions (pg_session.h); as agreed for issue 18.
    "CREATE SEQUENCE IF NOT EXISTS cairn_session_ids;"
    "CREATE TABLE IF NOT EXISTS cairn_sessions ("
    "  id bigint PRIMARY KEY, host text NOT NULL, pid int NOT NULL, mountpoint text NOT NULL,"
    "  started timestamptz NOT NULL, heartbeat timestamptz NOT NULL,"
    "  expires timestamptz NOT NULL, journal_backlog bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS cairn_feed ("
    "  seq bigserial PRIMARY KEY, session bigint NOT NULL,"
    "  at timestamptz NOT NULL DEFAULT now(), changes bytea NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cairn_feed_readers ("
    "  session bigint PRIMARY KEY, seen bigint NOT NULL);";

// ---- Errors. ----

// Debian's Abseil has its own string_view, which StrCat takes.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

enum class FailKind { kConflict, kLost, kTimeout, kMissingTable, kFull, kOther };

bool IsLost(PGconn* pg, const char* sqlstate) {
  if (PQstatus(pg) == CONNECTION_BAD || sqlstate == nullptr) return true;
  std::string_view s(sqlstate);
  // 08: connection exceptions; 57P01-57P03: the server is shutting down
  // or starting, so the session ends.
  return s.substr(0, 2) == "08" || s == "57P01" || s == "57P02" || s == "57P03";
}

FailKind Classify(PGconn* pg, const PGresult* res) {
  const char* sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (IsLost(pg, sqlstate)) return FailKind::kLost;
  std::string_view s(sqlstate);
  if (s == "40001" || s == "40P01") return FailKind::kConflict;
  if (s == "57014") return FailKind::kTimeout;
  if (s == "42P01") return FailKind::kMissingTable;
  if (s.substr(0, 2) == "53") return FailKind::kFull;
  return FailKind::kOther;
}

std::string Where(PGconn* pg) {
  const char* host = pg ? PQhost(pg) : nullptr;
  const char* port = pg ? PQport(pg) : nullptr;
  return absl::StrCat(host && *host ? host : "(default host)", ":",
                      port && *port ? port : "(default port)");
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A status a person can act on, for statement `what` that failed.
absl::Status ErrorStatus(PGconn* pg, const PGresult* res, std::string_view what) {
  std::string detail = Trim(res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                               : PQerrorMessage(pg));
  std::string where = Where(pg);
  switch (Classify(pg, res)) {
    case FailKind::kLost:
      return absl::UnavailableError(absl::StrCat(
          "lost the connection to PostgreSQL at ", where, " during ", Sv(what), ": ", detail,
          "; check the server is running and reachable"));
    case FailKind::kConflict:
      return absl::AbortedError(absl::StrCat("PostgreSQL at ", where,
                                             ": conflict with another transaction during ", Sv(what),
                                             ": ", detail));
    case FailKind::kTimeout:
      return absl::DeadlineExceededError(absl::StrCat(
          "PostgreSQL at ", where, ": ", Sv(what),
          " ran past the statement timeout and was cancelled; check the server's load: ",
          detail));
    case FailKind::kMissingTable:
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL at ", where, ": the namespace tables are missing (", detail,
          "); was the database dropped or emptied, or does the volume's URL name another "
          "database? cairn never recreates them: restore the database from a backup"));
    case FailKind::kFull:
      return absl::ResourceExhaustedError(absl::StrCat(
          "PostgreSQL at ", where, " is out of resources during ", Sv(what), ": ", detail,
          "; free disk space or memory on the database server"));
    case FailKind::kOther:
      break;
  }
  return absl::InternalError(absl::StrCat("PostgreSQL at ", where, ": ", Sv(what), " failed: ", detail));
}

// ---- Connections. ----

struct Conn {
  explicit Conn(PGconn* p) : pg(p) {}
  ~Conn() { PQfinish(pg); }
  PGconn* pg;
  // Set when the connection is gone or in an unknown state: it is closed
  // instead of going back to the pool.
  bool broken = false;
};

// Runs a prepared statement with binary parameters and results.
Result Exec(Conn& c, const char* name, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats(params.size(), 1);
  for (const std::string& p : params) {
    values.push_back(p.data());
    lengths.push_back(static_cast<int>(p.size()));
  }
  return Result(PQexecPrepared(c.pg, name, static_cast<int>(params.size()), values.data(),
                               lengths.data(), formats.data(), /*resultFormat=*/1));
}

bool ResultOk(const Result& r) {
  if (!r) return false;
  ExecStatusType s = PQresultStatus(r.get());
  return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

// Marks the connection broken when `r` tells it is lost.
absl::Status Check(Conn& c, const Result& r, std::string_view what) {
  if (ResultOk(r)) return absl::OkStatus();
  absl::Status st = ErrorStatus(c.pg, r.get(), what);
  if (absl::IsUnavailable(st)) c.broken = true;
  return st;
}

absl::Status ExecSimple(Conn& c, const char* sql, std::string_view what) {
  Result r(PQexec(c.pg, sql));
  return Check(c, r, what);
}

std::string_view Value(const Result& r, int row, int col) {
  return std::string_view(PQgetvalue(r.get(), row, col), PQgetlength(r.get(), row, col));
}

thread_local std::mt19937_64 tls_rng{std::random_device{}()};

// Before attempt `attempt` (2, 3, ...): a random wait of up to 1 ms, 2 ms,
// ... 128 ms, so that writers that collided do not collide again in step.
void Backoff(int attempt) {
  int64_t cap_us = int64_t{1000} << std::min(attempt - 2, 7);
  std::uniform_int_distribution<int64_t> d(cap_us / 4, cap_us);
  std::this_thread::sleep_for(std::chrono::microseconds(d(tls_rng)));
}

enum class CommitFate { kCommitted, kNotCommitted, kUnknown };

}  // namespace

// ---- The store. ----

struct PgKvStore::Impl {
  explicit Impl(PgKvOptions o) : options(std::move(o)) {}

  PgKvOptions options;
  // With options.session: this daemon's session (heartbeat, leader, feed).
  std::unique_ptr<PgSession> session;
  // Stateless: every call takes a connection of its own.
  std::unique_ptr<KvReader> reader;
  // What this host last knew, for speculative runs; used (and kept) only
  // while the change feed is watched, which drops what other hosts change.
  RecentValues recent;
  std::atomic<int> watches{0};
  std::atomic<uint64_t> speculative_runs{0};
  std::atomic<uint64_t> stale_runs{0};
  bool Speculating() const { return session != nullptr && watches.load() > 0; }

  absl::Mutex mu;
  std::vector<std::unique_ptr<Conn>> idle ABSL_GUARDED_BY(mu);

  // A connection made ready for statements: settings and prepared
  // statements (unless `prepare` is false: before the tables exist).
  absl::StatusOr<std::unique_ptr<Conn>> Connect(bool prepare) {
    // The URL comes last so that what it says overrides these defaults.
    std::string timeout = std::to_string(options.connect_timeout_s);
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {timeout.c_str(), "cairn", options.url.c_str(), nullptr};
    auto c = std::make_unique<Conn>(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
    if (c->pg == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach PostgreSQL at ", Where(c->pg), ": ", Trim(PQerrorMessage(c->pg)),
          "; check the server is running and the volume's namespace URL (--namespace)"));
    }
    // The server's notices (a shutdown's warning, ...) would go to stderr;
    // what matters reaches the caller as a failed statement.
    PQsetNoticeProcessor(c->pg, [](void*, const char*) {}, nullptr);
    // synchronous_commit on: COMMIT answers only once the commit is
    // durable, which is what lets Sync() be a no-op. Set per session so a
    // server default of off cannot weaken it.
    std::string settings = absl::StrCat("SET synchronous_commit = on; SET statement_timeout = ",
                                        options.statement_timeout_ms, ";");
    if (options.session.has_value()) {
      // A host paused inside a transaction holds its session's row (FOR
      // KEY SHARE, pg_session.h), and so everything hanging on it, until
      // the transaction ends: the server ends it after twice the expiry.
      absl::StrAppend(&settings, "SET idle_in_transaction_session_timeout = ",
                      int64_t{options.session->expiry_s} * 2000, ";");
    }
    if (absl::Status st = ExecSimple(*c, settings.c_str(), "session setup"); !st.ok()) return st;
    if (prepare) {
      for (const Statement& s : kStatements) {
        Result r(PQprepare(c->pg, s.name, s.sql, 0, nullptr));
        if (absl::Status st = Check(*c, r, absl::StrCat("preparing ", s.name)); !st.ok()) {
          return st;
        }
      }
    }
    return c;
  }

  // A pooled connection, or a new one. Never waits for another thread's
  // connection (a scan callback may read again on the same thread).
  absl::StatusOr<std::unique_ptr<Conn>> Acquire(bool* fresh) {
    for (;;) {
      std::unique_ptr<Conn> c;
      {
        absl::MutexLock lock(&mu);
        if (idle.empty()) break;
        c = std::move(idle.back());
        idle.pop_back();
      }
      if (!QuietWhileIdle(*c)) continue;
      *fresh = false;
      return c;
    }
    *fresh = true;
    return Connect(/*prepare=*/true);
  }

  // Whether nothing came from the server while `c` sat idle. A server
  // that restarted or ended the session says so (then closes): such a
  // connection is dropped here rather than found dead mid-commit, where a
  // speculative run's one round trip could not tell whether its COMMIT
  // ran.
  static bool QuietWhileIdle(const Conn& c) {
    pollfd p{PQsocket(c.pg), POLLIN, 0};
    return p.fd >= 0 && poll(&p, 1, 0) == 0;
  }

  void Release(std::unique_ptr<Conn> c) {
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
      // A lost connection usually means the server went away: the idle
      // ones are likely dead too, and each would cost a failed call.
      if (c->broken) DropIdle();
      return;
    }
    absl::MutexLock lock(&mu);
    if (static_cast<int>(idle.size()) < options.pool_size) idle.push_back(std::move(c));
  }

  void DropIdle() {
    std::vector<std::unique_ptr<Conn>> dropped;
    absl::MutexLock lock(&mu);
    dropped.swap(idle);
  }

  // Runs `fn` on a connection; when a pooled connection turns out to be
  // lost (the server restarted since it was last used), once more on a
  // fresh one. Only for calls that are safe to repeat: reads, and
  // Allocate, whose lost answer at worst skips numbers.
  template <typename T>
  absl::StatusOr<T> WithConn(const std::function<absl::StatusOr<T>(Conn&)>& fn) {
    for (int tries = 0;; ++tries) {
      bool fresh;
      absl::StatusOr<std::unique_ptr<Conn>> c = Acquire(&fresh);
      if (!c.ok()) return c.status();
      absl::StatusOr<T> result = fn(**c);
      bool lost = (*c)->broken;
      Release(*std::move(c));
      if (lost && !fresh && tries == 0) continue;
      return result;
    }
  }

  // What became of transaction `xid`, whose COMMIT was sent on the
  // session of backend `pid` before the connection was lost.
  CommitFate ResolveCommit(const std::string& xid, int pid) {
    absl::StatusOr<std::unique_ptr<Conn>> c = Connect(/*prepare=*/false);
    if (!c.ok()) return CommitFate::kUnknown;
    PGconn* pg = (*c)->pg;
    const std::string pid_text = std::to_string(pid);
    for (int poll = 0; poll < 40; ++poll) {
      const char* xid_param[] = {xid.c_str()};
      Result r(PQexecParams(pg, "SELECT pg_xact_status($1::xid8)", 1, nullptr, xid_param,
                            nullptr, nullptr, 0));
      // Null: too old to know (past the commit log's horizon); cannot
      // happen seconds after the commit.
      if (!ResultOk(r) || PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) {
        return CommitFate::kUnknown;
      }
      std::string_view fate = PQgetvalue(r.get(), 0, 0);
      if (fate == "committed") return CommitFate::kCommitted;
      if (fate == "aborted") return CommitFate::kNotCommitted;
      // "in progress": the old session has not finished, perhaps unaware
      // its client is gone. After a while, end it (it is ours: same role)
      // and look again: it then either committed or never will.
      if (poll == 20) {
        const char* pid_param[] = {pid_text.c_str()};
        Result t(PQexecParams(pg, "SELECT pg_terminate_backend($1::int, 2000)", 1, nullptr,
                              pid_param, nullptr, nullptr, 0));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return CommitFate::kUnknown;
  }

  absl::Status ReadSchema(Conn& c) {
    Result r(PQexec(c.pg, "SELECT version FROM cairn_schema"));
    if (!ResultOk(r)) {
      if (Classify(c.pg, r.get()) == FailKind::kMissingTable) {
        return absl::FailedPreconditionError(absl::StrCat(
            "PostgreSQL at ", Where(c.pg), ", database ", PQdb(c.pg),
            ": no cairn namespace (no table cairn_schema); format the volume with this URL, or "
            "check the URL names the right database"));
      }
      return Check(c, r, "reading the schema version");
    }
    if (PQntuples(r.get()) != 1) {
      return absl::DataLossError(absl::StrCat("PostgreSQL at ", Where(c.pg), ", database ",
                                              PQdb(c.pg), ": cairn_schema has ", PQntuples(r.get()),
                                              " rows, not one; restore the database"));
    }
    int version = atoi(PQgetvalue(r.get(), 0, 0));
    if (version != kPgSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PostgreSQL at ", Where(c.pg), ", database ", PQdb(c.pg), ": namespace schema version ",
          version, ", this cairn knows version ", kPgSchemaVersion, "; use a matching cairn"));
    }
    return absl::OkStatus();
  }
};

namespace {

struct KeyInSpace {
  KvSpace space;
  std::string key;
  bool operator<(const KeyInSpace& o) const {
    if (space != o.space) return space < o.space;
    return key < o.key;  // std::string orders bytes as unsigned char, as bytea does
  }
};

// A prepared statement and its binary parameters.
struct Stmt {
  const char* name;
  std::vector<std::string> params;
  int result_format = 1;  // binary
};

// Sends `stmts` in one pipelined round trip and puts one result per
// statement in `results` (a failed statement's error result, those after
// it aborted). Not OK when the connection failed (then marked broken);
// `results` holds what came before. With `flush_after`, the server sends
// the results of the first that many statements as soon as it has them,
// not with the rest.
absl::Status PipelineInto(Conn& c, const std::vector<Stmt>& stmts, std::string_view what,
                          std::vector<Result>* results, size_t flush_after = 0) {
  PGconn* pg = c.pg;
  auto lost = [&]() {
    c.broken = true;
    return absl::UnavailableError(absl::StrCat("lost the connection to PostgreSQL at ", Where(pg),
                                               " during ", Sv(what), ": ",
                                               Trim(PQerrorMessage(pg))));
  };
  if (PQenterPipelineMode(pg) != 1) return lost();
  bool sent = true;
  for (size_t i = 0; i < stmts.size(); ++i) {
    const Stmt& s = stmts[i];
    std::vector<const char*> values;
    std::vector<int> lengths, formats(s.params.size(), 1);
    for (const std::string& p : s.params) {
      values.push_back(p.data());
      lengths.push_back(static_cast<int>(p.size()));
    }
    sent = sent && PQsendQueryPrepared(pg, s.name, static_cast<int>(s.params.size()),
                                       values.data(), lengths.data(), formats.data(),
                                       s.result_format) == 1;
    if (i + 1 == flush_after) sent = sent && PQsendFlushRequest(pg) == 1;
  }
  sent = sent && PQpipelineSync(pg) == 1;
  if (!sent) return lost();
  for (size_t i = 0; i < stmts.size(); ++i) {
    Result r(PQgetResult(pg));
    if (!r) return lost();
    if (Result end(PQgetResult(pg)); end) return lost();  // the null after each result
    results->push_back(std::move(r));
  }
  Result sync(PQgetResult(pg));
  if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) return lost();
  if (PQexitPipelineMode(pg) != 1) return lost();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Result>> Pipeline(Conn& c, const std::vector<Stmt>& stmts,
                                             std::string_view what) {
  std::vector<Result> results;
  if (absl::Status st = PipelineInto(c, stmts, what, &results); !st.ok()) return st;
  return results;
}

// Reads shared by the transaction and the plain reader, the statements
// run by a Query (a transaction sends its BEGIN with its first), with the
// `overlay` of buffered writes (nullptr for none).
using Overlay = std::map<KeyInSpace, std::optional<std::string>>;
// Runs `stmts` (one round trip for several); a failed one is an error
// (`what` names it), never a result.
using Query = std::function<absl::StatusOr<std::vector<Result>>(std::vector<Stmt> stmts,
                                                                std::string_view what)>;

// The single statement's result of a Query.
absl::StatusOr<Result> One(const Query& q, const char* name, std::vector<std::string> params,
                           std::string_view what) {
  absl::StatusOr<std::vector<Result>> r = q({Stmt{name, std::move(params)}}, what);
  if (!r.ok()) return r.status();
  return std::move(r->front());
}

Query QueryOn(Conn& c) {
  return [&c](std::vector<Stmt> stmts,
              std::string_view what) -> absl::StatusOr<std::vector<Result>> {
    std::vector<Result> results;
    if (stmts.size() == 1) {
      results.push_back(Exec(c, stmts[0].name, stmts[0].params));
    } else {
      absl::StatusOr<std::vector<Result>> piped = Pipeline(c, stmts, what);
      if (!piped.ok()) return piped.status();
      results = *std::move(piped);
    }
    for (const Result& r : results) {
      if (absl::Status st = Check(c, r, what); !st.ok()) return st;
    }
    return results;
  };
}

// The prepared Get of one key, and what its result says of the key.
Stmt GetStmt(KvSpace space, std::string_view key) {
  return Stmt{"get", {Int2(static_cast<int>(space)), std::string(key)}};
}
std::optional<std::string> GotValue(const Result& r) {
  if (PQntuples(r.get()) == 0) return std::nullopt;
  return std::string(Value(r, 0, 0));
}

absl::StatusOr<std::optional<std::string>> DoGet(const Query& q, KvSpace space,
                                                 std::string_view key) {
  Stmt get = GetStmt(space, key);
  absl::StatusOr<Result> got = One(q, get.name, std::move(get.params), "a read (Get)");
  if (!got.ok()) return got.status();
  return GotValue(*got);
}

absl::StatusOr<std::vector<std::optional<std::string>>> DoMultiGet(
    const Query& q, KvSpace space, absl::Span<const std::string> keys, const Overlay* overlay) {
  std::vector<std::optional<std::string>> out(keys.size());
  ArrayBuilder wanted(kByteaOid);
  for (const std::string& k : keys) {
    if (overlay == nullptr || !overlay->count({space, k})) wanted.Add(k);
  }
  std::map<std::string, std::string> found;
  if (wanted.count() > 0) {
    absl::StatusOr<Result> got =
        One(q, "mget", {Int2(static_cast<int>(space)), wanted.Finish()}, "a read (MultiGet)");
    if (!got.ok()) return got.status();
    const Result& r = *got;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      found.emplace(std::string(Value(r, i, 0)), std::string(Value(r, i, 1)));
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (overlay != nullptr) {
      auto it = overlay->find({space, keys[i]});
      if (it != overlay->end()) {
        out[i] = it->second;
        continue;
      }
    }
    auto it = found.find(keys[i]);
    if (it != found.end()) out[i] = it->second;
  }
  return out;
}

// The values of keys of several spaces, in one round trip; absent keys
// are left out.
absl::StatusOr<std::map<KeyInSpace, std::string>> DoGetEach(
    const Query& q, absl::Span<const KvReader::SpaceKey> keys) {
  // A prepared Get per key, pipelined: one round trip, and each planned
  // once per connection (one statement over arrays of keys was planned
  // again at every call, costing the server more than the lookups).
  std::vector<Stmt> gets;
  for (const KvReader::SpaceKey& k : keys) gets.push_back(GetStmt(k.space, k.key));
  std::map<KeyInSpace, std::string> found;
  if (keys.empty()) return found;
  absl::StatusOr<std::vector<Result>> got = q(std::move(gets), "a read (GetEach)");
  if (!got.ok()) return got.status();
  for (size_t i = 0; i < keys.size(); ++i) {
    if (std::optional<std::string> value = GotValue((*got)[i])) {
      found.emplace(KeyInSpace{keys[i].space, keys[i].key}, *std::move(value));
    }
  }
  return found;
}

using Rows = std::vector<std::pair<std::string, std::string>>;

// The statement reading the first `page` pairs of [start, end) in `space`.
Stmt ScanPage(KvSpace space, std::string_view start, std::string_view end, int page) {
  if (end.empty()) {
    return Stmt{"scan_open", {Int2(static_cast<int>(space)), std::string(start), Int8(page)}};
  }
  return Stmt{"scan_range",
              {Int2(static_cast<int>(space)), std::string(start), std::string(end), Int8(page)}};
}

Rows RowsOf(const Result& r) {
  Rows rows;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    rows.emplace_back(std::string(Value(r, i, 0)), std::string(Value(r, i, 1)));
  }
  return rows;
}

// Pages through the range, merging the overlay's writes in key order.
// `first_page`, when given, is the range's first page as already read
// (Prefetch): it is not asked again.
absl::Status DoScan(const Query& q, int page, KvSpace space, std::string_view start,
                    std::string_view end, const KvScanFn& fn, const Overlay* overlay,
                    const Rows* first_page = nullptr) {
  std::string next(start);  // the smallest key not yet passed over
  Rows rows;
  size_t row = 0;
  bool db_done = false;
  if (first_page != nullptr) {
    rows = *first_page;
    db_done = static_cast<int>(rows.size()) < page;
  }
  auto in_range = [&](std::string_view k) { return end.empty() || k < end; };
  while (true) {
    if (row == rows.size() && !db_done) {
      Stmt stmt = ScanPage(space, next, end, page);
      absl::StatusOr<Result> got = One(q, stmt.name, std::move(stmt.params), "a read (Scan)");
      if (!got.ok()) return got.status();
      rows = RowsOf(*got);
      row = 0;
      db_done = static_cast<int>(rows.size()) < page;
    }
    const std::pair<std::string, std::string>* db = row < rows.size() ? &rows[row] : nullptr;
    // Looked up afresh each step: the callback may write to the overlay.
    const std::pair<const KeyInSpace, std::optional<std::string>>* mine = nullptr;
    if (overlay != nullptr) {
      auto it = overlay->lower_bound({space, next});
      if (it != overlay->end() && it->first.space == space && in_range(it->first.key)) {
        mine = &*it;
      }
    }
    if (db == nullptr && mine == nullptr) return absl::OkStatus();
    std::string key;
    const std::string* value;
    if (mine != nullptr && (db == nullptr || mine->first.key <= db->first)) {
      if (db != nullptr && mine->first.key == db->first) ++row;  // the buffered write wins
      key = mine->first.key;
      if (!mine->second.has_value()) {  // deleted in this transaction
        next = key + '\0';
        continue;
      }
      value = &*mine->second;
    } else {
      key = db->first;
      value = &db->second;
      ++row;
    }
    // The smallest key after `key`: the next page starts there.
    next = key + '\0';
    std::string v = *value;  // the callback may overwrite the overlay's copy
    if (!fn(key, v)) return absl::OkStatus();
  }
}

// The greatest key in [start, end) of the committed state seen through
// `overlay`: the server's last key that the overlay does not shadow,
// against the overlay's last put in the range.
absl::StatusOr<std::optional<KvReader::KeyValue>> DoLast(const Query& q, KvSpace space,
                                                         std::string_view start,
                                                         std::string_view end,
                                                         const Overlay* overlay) {
  std::optional<KvReader::KeyValue> db;
  std::string below(end);  // empty: no upper bound
  while (true) {
    absl::StatusOr<Result> got =
        below.empty()
            ? One(q, "last_open", {Int2(static_cast<int>(space)), std::string(start)},
                  "a read (Last)")
            : One(q, "last_range", {Int2(static_cast<int>(space)), std::string(start), below},
                  "a read (Last)");
    if (!got.ok()) return got.status();
    const Result& r = *got;
    if (PQntuples(r.get()) == 0) break;
    std::string key(Value(r, 0, 0));
    if (overlay != nullptr && overlay->count({space, key})) {
      below = key;  // written in this transaction: the overlay decides
      continue;
    }
    db.emplace(std::move(key), std::string(Value(r, 0, 1)));
    break;
  }
  std::optional<KvReader::KeyValue> mine;
  if (overlay != nullptr) {
    auto it = end.empty() ? overlay->lower_bound(
                                {static_cast<KvSpace>(static_cast<int>(space) + 1), ""})
                          : overlay->lower_bound({space, std::string(end)});
    while (it != overlay->begin()) {
      --it;
      if (it->first.space != space || it->first.key < start) break;
      if (it->second.has_value()) {
        mine.emplace(it->first.key, *it->second);
        break;
      }
    }
  }
  if (mine && (!db || mine->first > db->first)) return mine;
  return db;
}

class PgReader : public KvReader {
 public:
  explicit PgReader(PgKvStore::Impl* impl) : impl_(impl) {}

  absl::StatusOr<std::optional<std::string>> Get(KvSpace space, std::string_view key) override {
    const uint64_t epoch = impl_->recent.Epoch();
    absl::StatusOr<std::optional<std::string>> got = impl_->WithConn<std::optional<std::string>>(
        [&](Conn& c) { return DoGet(QueryOn(c), space, key); });
    if (got.ok() && impl_->Speculating()) impl_->recent.NoteRead(epoch, space, key, *got);
    return got;
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      KvSpace space, absl::Span<const std::string> keys) override {
    const uint64_t epoch = impl_->recent.Epoch();
    absl::StatusOr<std::vector<std::optional<std::string>>> got =
        impl_->WithConn<std::vector<std::optional<std::string>>>(
            [&](Conn& c) { return DoMultiGet(QueryOn(c), space, keys, nullptr); });
    if (got.ok() && impl_->Speculating()) {
      for (size_t i = 0; i < keys.size(); ++i) {
        impl_->recent.NoteRead(epoch, space, keys[i], (*got)[i]);
      }
    }
    return got;
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> GetEach(
      absl::Span<const KvReader::SpaceKey> keys) override {
    const uint64_t epoch = impl_->recent.Epoch();
    absl::StatusOr<std::map<KeyInSpace, std::string>> found =
        impl_->WithConn<std::map<KeyInSpace, std::string>>(
            [&](Conn& c) { return DoGetEach(QueryOn(c), keys); });
    if (!found.ok()) return found.status();
    const bool noting = impl_->Speculating();
    std::vector<std::optional<std::string>> out;
    for (const KvReader::SpaceKey& k : keys) {
      auto it = found->find({k.space, k.key});
      out.push_back(it != found->end() ? std::optional<std::string>(it->second) : std::nullopt);
      if (noting) impl_->recent.NoteRead(epoch, k.space, k.key, out.back());
    }
    return out;
  }
  absl::StatusOr<std::optional<KeyValue>> Last(KvSpace space, std::string_view start,
                                               std::string_view end) override {
    return impl_->WithConn<std::optional<KeyValue>>(
        [&](Conn& c) { return DoLast(QueryOn(c), space, start, end, nullptr); });
  }
  absl::Status Scan(KvSpace space, std::string_view start, std::string_view end,
                    const KvScanFn& fn) override {
    return ScanAfter(std::nullopt, space, start, end, fn);
  }
  // The Last and the scan's first page pipelined: a read's extent lookup
  // is one round trip, not two.
  absl::Status ScanFromLastBefore(KvSpace space, std::string_view floor, std::string_view start,
                                  std::string_view end, const KvScanFn& fn) override {
    return ScanAfter(
        Stmt{"last_range", {Int2(static_cast<int>(space)), std::string(floor), std::string(start)}},
        space, start, end, fn);
  }

 private:
  // Scan, after handing `fn` the row `last` (a Last) finds, if any, which
  // goes in the round trip of the scan's first page.
  absl::Status ScanAfter(std::optional<Stmt> last, KvSpace space, std::string_view start,
                         std::string_view end, const KvScanFn& fn) {
    // One snapshot for every page, as a RocksDB iterator gives. Retried on
    // a fresh connection only while nothing reached the callback.
    bool called = false;
    KvScanFn wrapped = [&](std::string_view k, std::string_view v) {
      called = true;
      return fn(k, v);
    };
    absl::StatusOr<bool> done = impl_->WithConn<bool>([&](Conn& c) -> absl::StatusOr<bool> {
      if (called) {
        return absl::UnavailableError("the connection to PostgreSQL was lost during a scan");
      }
      // A range within one page (the extents under a read, say) is one
      // statement, itself a snapshot: one round trip, not BEGIN, page and
      // COMMIT. A longer one is read again in a transaction.
      const int page = impl_->options.scan_page;
      std::vector<Stmt> stmts;
      if (last.has_value()) stmts.push_back(*last);
      stmts.push_back(ScanPage(space, start, end, page));
      absl::StatusOr<std::vector<Result>> got = QueryOn(c)(std::move(stmts), "a read (Scan)");
      if (!got.ok()) return got.status();
      if (last.has_value() && PQntuples(got->front().get()) > 0 &&
          !wrapped(Value(got->front(), 0, 0), Value(got->front(), 0, 1))) {
        return true;
      }
      Rows rows = RowsOf(got->back());
      if (static_cast<int>(rows.size()) < page) {
        absl::Status st = DoScan(QueryOn(c), page, space, start, end, wrapped, nullptr, &rows);
        if (!st.ok()) return st;
        return true;
      }
      if (absl::Status st =
              ExecSimple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "a scan's BEGIN");
          !st.ok()) {
        return st;
      }
      absl::Status st = DoScan(QueryOn(c), page, space, start, end, wrapped, nullptr);
      absl::Status end_st = ExecSimple(c, st.ok() ? "COMMIT" : "ROLLBACK", "a scan's end");
      if (!st.ok()) return st;
      if (!end_st.ok()) return end_st;
      return true;
    });
    return done.status();
  }

  PgKvStore::Impl* impl_;
};

// One run of a transaction body on one connection. The BEGIN goes to the
// server with the first read, in one pipelined round trip, or with the
// commit's statements for a body that read nothing from the server (a
// body that neither read nor wrote costs none).
//
// A speculative run takes the values and empty ranges RecentValues knows
// instead of reading them, and its commit checks each on the server
// first (the assert_* statements): a body that read only such values
// costs one round trip. When a check fails the run is thrown away
// (stale()) and the body runs again on what the server has.
class PgTxn : public KvTxn {
 public:
  // `session`: 0, or the session whose changes go to the feed. `recent`:
  // nullptr, or what this host knows, kept up to date with this run's
  // outcome and, if `speculate`, used for its reads.
  PgTxn(Conn& c, int page, uint64_t session, RecentValues* recent, bool speculate)
      : c_(c),
        page_(page),
        session_(session),
        recent_(recent),
        speculate_(speculate && recent != nullptr),
        epoch_(recent != nullptr ? recent->Epoch() : 0),
        query_([this](std::vector<Stmt> stmts, std::string_view what) {
          return Run(std::move(stmts), what);
        }) {}

  absl::StatusOr<std::optional<std::string>> Get(KvSpace space, std::string_view key) override {
    if (absl::Status st = Usable(); !st.ok()) return st;
    KeyInSpace sk{space, std::string(key)};
    if (auto it = writes_.find(sk); it != writes_.end()) return it->second;
    if (auto it = reads_.find(sk); it != reads_.end()) return it->second;
    if (std::optional<std::optional<std::string>> known = Assume(sk)) return *known;
    absl::StatusOr<std::optional<std::string>> got = Note(DoGet(query_, space, key));
    if (got.ok()) reads_[std::move(sk)] = *got;
    return got;
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> MultiGet(
      KvSpace space, absl::Span<const std::string> keys) override {
    if (absl::Status st = Usable(); !st.ok()) return st;
    std::vector<std::string> missing;
    for (const std::string& k : keys) {
      KeyInSpace sk{space, k};
      if (!writes_.count(sk) && !reads_.count(sk) && !Assume(sk)) missing.push_back(k);
    }
    if (!missing.empty()) {
      absl::StatusOr<std::vector<std::optional<std::string>>> got =
          Note(DoMultiGet(query_, space, missing, nullptr));
      if (!got.ok()) return got.status();
      for (size_t i = 0; i < missing.size(); ++i) reads_[{space, missing[i]}] = (*got)[i];
    }
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    for (const std::string& k : keys) {
      KeyInSpace sk{space, k};
      auto it = writes_.find(sk);
      out.push_back(it != writes_.end() ? it->second : reads_[sk]);
    }
    return out;
  }
  using KvTxn::Prefetch;
  void Prefetch(absl::Span<const KvReader::SpaceKey> keys,
                absl::Span<const KvTxn::SpaceRange> scans) override {
    if (!failure_.ok()) return;
    std::vector<KvReader::SpaceKey> asked;
    std::vector<Stmt> stmts;
    for (const KvReader::SpaceKey& k : keys) {
      KeyInSpace sk{k.space, k.key};
      if (!writes_.count(sk) && !reads_.count(sk) && !Assume(sk)) {
        asked.push_back(k);
        stmts.push_back(GetStmt(k.space, k.key));
      }
    }
    std::vector<ScanKey> ranges;
    for (const KvTxn::SpaceRange& r : scans) {
      ScanKey range{r.space, r.start, r.end};
      if (scans_.count(range) || AssumeRange(range)) continue;
      stmts.push_back(ScanPage(r.space, r.start, r.end, page_));
      ranges.push_back(std::move(range));
    }
    if (stmts.empty()) return;
    absl::StatusOr<std::vector<Result>> got = Note(query_(std::move(stmts), "a read (Prefetch)"));
    if (!got.ok()) return;
    for (size_t i = 0; i < asked.size(); ++i) {
      reads_[{asked[i].space, asked[i].key}] = GotValue((*got)[i]);
    }
    for (size_t i = 0; i < ranges.size(); ++i) {
      scans_[std::move(ranges[i])] = RowsOf((*got)[asked.size() + i]);
    }
  }
  absl::StatusOr<std::vector<std::optional<std::string>>> GetEach(
      absl::Span<const KvReader::SpaceKey> keys) override {
    Prefetch(keys);
    std::vector<std::optional<std::string>> out;
    for (const KvReader::SpaceKey& k : keys) {
      absl::StatusOr<std::optional<std::string>> value = Get(k.space, k.key);
      if (!value.ok()) return value.status();
      out.push_back(*std::move(value));
    }
    return out;
  }
  absl::StatusOr<std::optional<KeyValue>> Last(KvSpace space, std::string_view start,
                                               std::string_view end) override {
    if (absl::Status st = Usable(); !st.ok()) return st;
    return Note(DoLast(query_, space, start, end, &writes_));
  }
  absl::Status Scan(KvSpace space, std::string_view start, std::string_view end,
                    const KvScanFn& fn) override {
    if (absl::Status st = Usable(); !st.ok()) return st;
    ScanKey range{space, std::string(start), std::string(end)};
    if (!scans_.count(range)) AssumeRange(range);
    auto fetched = scans_.find(range);
    absl::Status st = DoScan(query_, page_, space, start, end, fn, &writes_,
                             fetched != scans_.end() ? &fetched->second : nullptr);
    if (!st.ok() && failure_.ok()) failure_ = st;
    return st;
  }
  void Put(KvSpace space, std::string_view key, std::string_view value) override {
    writes_[{space, std::string(key)}] = std::string(value);
  }
  void Delete(KvSpace space, std::string_view key) override {
    writes_[{space, std::string(key)}] = std::nullopt;
  }
  void AddToCounter(std::string_view counter, int64_t delta) override {
    counters_[std::string(counter)] += delta;
  }
  void NoteNewRanges(absl::Span<const KvTxn::SpaceRange> ranges) override {
    if (recent_ != nullptr) new_ranges_.insert(new_ranges_.end(), ranges.begin(), ranges.end());
  }

  // The first read error of this run: a conflict or a lost connection
  // decides what Run does, whatever the body made of it.
  const absl::Status& failure() const { return failure_; }
  // Whether Commit lost the connection after it may have sent the COMMIT.
  bool outcome_unknown() const { return outcome_unknown_; }
  // Whether the BEGIN found this host's session dead: nothing may commit.
  bool fenced() const { return fenced_; }
  // The transaction's id ("begin_check"); empty before the BEGIN.
  const std::string& xid() const { return xid_; }
  // Whether the body read anything from RecentValues: its outcome, an
  // error too, stands only once the commit's checks confirm it.
  bool speculated() const { return !assumed_.empty() || !assumed_ranges_.empty(); }
  // Whether a commit check found a remembered value changed: nothing was
  // committed, and the run must be done again from the server.
  bool stale() const { return stale_; }

  // Tells RecentValues what this run found: forgotten when it may not
  // have committed as known (`committed` false: the outcome is unknown),
  // remembered when it committed.
  void NoteOutcome(bool committed) {
    if (recent_ == nullptr) return;
    std::vector<RecentValues::Value> writes;
    std::vector<KvStore::Change> changed;
    for (const auto& [sk, value] : writes_) {
      writes.push_back({sk.space, sk.key, value});
      changed.push_back({sk.space, sk.key});
    }
    if (!committed) {
      recent_->Changed(changed);
      return;
    }
    std::vector<RecentValues::Value> reads;
    for (const auto& [sk, value] : reads_) {
      if (!writes_.count(sk)) reads.push_back({sk.space, sk.key, value});
    }
    recent_->NoteCommit(epoch_, reads, writes, new_ranges_);
  }
  // Forgets what the commit's checks found changed.
  void ForgetAssumed() {
    if (recent_ == nullptr) return;
    std::vector<KvStore::Change> keys;
    for (const KeyInSpace& sk : assumed_) keys.push_back({sk.space, sk.key});
    std::vector<KvTxn::SpaceRange> ranges;
    for (const auto& [space, start, end] : assumed_ranges_) ranges.push_back({space, start, end});
    recent_->Forget(keys, ranges);
  }

  // Sends the checks of what the run assumed, every buffered write and the
  // COMMIT (and the BEGIN, if no read sent it) in one pipelined round trip.
  absl::Status Commit() {
    const bool counting = std::any_of(counters_.begin(), counters_.end(),
                                      [](const auto& c) { return c.second != 0; });
    if (!begun_ && writes_.empty() && !counting && !speculated()) {
      return absl::OkStatus();  // nothing read, nothing to write
    }
    std::vector<Stmt> stmts;
    const bool begins = !begun_;
    if (begins) {
      stmts.push_back(Stmt{"begin", {}});
      stmts.push_back(
          Stmt{"begin_assert", {Int8(static_cast<int64_t>(session_))}, /*result_format=*/0});
    }
    const size_t first_check = stmts.size();
    for (const KeyInSpace& sk : assumed_) {
      const std::optional<std::string>& value = reads_[sk];
      if (value.has_value()) {
        stmts.push_back(Stmt{"assert_value", {Int2(static_cast<int>(sk.space)), sk.key, *value}});
      } else {
        stmts.push_back(Stmt{"assert_absent", {Int2(static_cast<int>(sk.space)), sk.key}});
      }
    }
    for (const ScanKey& range : assumed_ranges_) {
      const auto& [space, start, end] = range;
      const Rows& rows = scans_[range];
      std::vector<std::string> params = {Int2(static_cast<int>(space)), start};
      if (!end.empty()) params.push_back(end);
      if (rows.empty()) {
        stmts.push_back(Stmt{end.empty() ? "assert_empty_open" : "assert_empty", params});
        continue;
      }
      ArrayBuilder keys(kByteaOid), values(kByteaOid);
      for (const auto& [key, value] : rows) {
        keys.Add(key);
        values.Add(value);
      }
      params.push_back(keys.Finish());
      params.push_back(values.Finish());
      stmts.push_back(Stmt{end.empty() ? "assert_range_open" : "assert_range", params});
    }
    const size_t end_checks = stmts.size();
    ArrayBuilder put_space(kInt2Oid), put_key(kByteaOid), put_value(kByteaOid);
    for (const auto& [sk, value] : writes_) {
      if (value.has_value()) {
        put_space.Add(Int2(static_cast<int>(sk.space)));
        put_key.Add(sk.key);
        put_value.Add(*value);
      } else {
        // No key is both put and deleted: the DELETEs may go before the upsert.
        stmts.push_back(Stmt{"del", {Int2(static_cast<int>(sk.space)), sk.key}});
      }
    }
    if (put_key.count() > 0) {
      stmts.push_back(Stmt{"put", {put_space.Finish(), put_key.Finish(), put_value.Finish()}});
    }
    ArrayBuilder names(kTextOid), slots(kInt2Oid), deltas(kInt8Oid);
    std::uniform_int_distribution<int> slot(0, kPgCounterSlots - 1);
    for (const auto& [name, delta] : counters_) {
      if (delta == 0) continue;
      names.Add(name);
      slots.Add(Int2(slot(tls_rng)));
      deltas.Add(Int8(delta));
    }
    if (names.count() > 0) {
      stmts.push_back(Stmt{"add", {names.Finish(), slots.Finish(), deltas.Finish()}});
    }
    if (session_ != 0 && !writes_.empty()) {
      std::vector<KvStore::Change> changes;
      changes.reserve(writes_.size());
      for (const auto& [sk, value] : writes_) changes.push_back({sk.space, sk.key});
      stmts.push_back(
          Stmt{"feed", {Int8(static_cast<int64_t>(session_)), EncodeFeedChanges(changes)}});
    }
    stmts.push_back(Stmt{"commit", {}});

    PGconn* pg = c_.pg;
    auto lost_mid_commit = [&](std::string_view detail) {
      c_.broken = true;
      outcome_unknown_ = true;
      return absl::UnavailableError(absl::StrCat(
          "lost the connection to PostgreSQL at ", Where(pg), " while committing: ", Sv(detail)));
    };
    // The transaction's id comes back before the server goes on to the
    // COMMIT (a flush after begin_assert), so a commit whose answer is
    // lost can be looked up.
    std::vector<Result> results;
    absl::Status piped = PipelineInto(c_, stmts, "COMMIT", &results, begins ? 2 : 0);
    if (begins) {
      begun_ = true;
      if (results.size() >= 2 && PQresultStatus(results[1].get()) == PGRES_TUPLES_OK &&
          PQntuples(results[1].get()) == 1) {
        xid_ = PQgetvalue(results[1].get(), 0, 0);
      }
    }
    if (!piped.ok()) return lost_mid_commit(Trim(PQerrorMessage(pg)));
    // The first error decides; the statements after it come back "aborted".
    absl::Status first_error;
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      ExecStatusType st = PQresultStatus(r.get());
      if (st == PGRES_FATAL_ERROR && first_error.ok()) {
        const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
        const bool failed_check = state != nullptr && std::string_view(state) == "22012";
        if (failed_check && begins && i == 1) {
          fenced_ = true;
          return absl::FailedPreconditionError("this host's database session has expired");
        }
        if (failed_check && i >= first_check && i < end_checks) {
          stale_ = true;
          return absl::AbortedError("a value this host remembered had changed on the server");
        }
        first_error = ErrorStatus(pg, r.get(), i + 1 < stmts.size() ? "a write" : "COMMIT");
      } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
                 st != PGRES_PIPELINE_ABORTED && st != PGRES_FATAL_ERROR) {
        return lost_mid_commit(absl::StrCat("unexpected result ", PQresStatus(st)));
      }
    }
    if (first_error.ok()) return absl::OkStatus();
    if (absl::IsUnavailable(first_error)) return lost_mid_commit(std::string(first_error.message()));
    return first_error;
  }

 private:
  absl::Status Usable() const {
    // After a failed statement PostgreSQL refuses everything until
    // rollback: report the first failure again rather than a vaguer one.
    return failure_;
  }

  // Runs `stmts` in the transaction, in one round trip; the first ones
  // also send the BEGIN, in the same round trip (with none, only that).
  absl::StatusOr<std::vector<Result>> Run(std::vector<Stmt> stmts, std::string_view what) {
    if (begun_) return QueryOn(c_)(std::move(stmts), what);
    const size_t first = 2;
    stmts.insert(stmts.begin(),
                 {Stmt{"begin", {}}, Stmt{"begin_check", {Int8(static_cast<int64_t>(session_))},
                                          /*result_format=*/0}});
    absl::StatusOr<std::vector<Result>> results = Pipeline(c_, stmts, "BEGIN");
    if (!results.ok()) return results.status();
    if (absl::Status st = Check(c_, (*results)[0], "BEGIN"); !st.ok()) return st;
    if (absl::Status st = Check(c_, (*results)[1], "BEGIN"); !st.ok()) return st;
    begun_ = true;
    xid_ = PQgetvalue((*results)[1].get(), 0, 0);
    if (PQgetvalue((*results)[1].get(), 0, 1)[0] != 't') {
      fenced_ = true;
      return absl::FailedPreconditionError("this host's database session has expired");
    }
    for (size_t i = first; i < results->size(); ++i) {
      if (absl::Status st = Check(c_, (*results)[i], what); !st.ok()) return st;
    }
    results->erase(results->begin(), results->begin() + first);
    return results;
  }

  template <typename T>
  T Note(T result) {
    if (!result.ok() && failure_.ok()) failure_ = result.status();
    return result;
  }

  // The value RecentValues knows for `sk`, taken as read, in a
  // speculative run; nullopt when it knows none.
  std::optional<std::optional<std::string>> Assume(const KeyInSpace& sk) {
    if (!speculate_) return std::nullopt;
    std::optional<std::optional<std::string>> known = recent_->Find(sk.space, sk.key);
    if (!known.has_value()) return std::nullopt;
    reads_[sk] = *known;
    assumed_.push_back(sk);
    return known;
  }
  // In a speculative run, takes `range` as read if RecentValues knows
  // what it holds (scans_ then has it all, as a first page that ends it).
  using ScanKey = std::tuple<KvSpace, std::string, std::string>;
  bool AssumeRange(const ScanKey& range) {
    if (!speculate_) return false;
    const auto& [space, start, end] = range;
    std::optional<RecentValues::Pairs> known = recent_->FindRange(space, start, end);
    if (!known.has_value() || static_cast<int>(known->size()) >= page_) return false;
    scans_[range] = *known;
    assumed_ranges_.push_back(range);
    return true;
  }

  Conn& c_;
  int page_;
  uint64_t session_;
  RecentValues* const recent_;
  const bool speculate_;
  const uint64_t epoch_;
  const Query query_;
  // What this run read from the server: its snapshot, so read again it
  // would be the same (writes_ shadows it).
  std::map<KeyInSpace, std::optional<std::string>> reads_;
  // The first page of each range a Prefetch scanned, as the server had it.
  std::map<ScanKey, Rows> scans_;
  // What a speculative run took from RecentValues (in reads_ and scans_).
  std::vector<KeyInSpace> assumed_;
  std::vector<ScanKey> assumed_ranges_;
  std::vector<KvTxn::SpaceRange> new_ranges_;
  bool stale_ = false;
  bool begun_ = false;
  bool fenced_ = false;
  std::string xid_;
  Overlay writes_;
  std::map<std::string, int64_t> counters_;
  absl::Status failure_;
  bool outcome_unknown_ = false;
};

}  // namespace

PgKvStore::PgKvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->reader = std::make_unique<PgReader>(impl_.get());
}
PgKvStore::~PgKvStore() = default;

absl::StatusOr<std::unique_ptr<PgKvStore>> PgKvStore::Format(const PgKvOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  absl::StatusOr<std::unique_ptr<Conn>> c = impl->Connect(/*prepare=*/false);
  if (!c.ok()) return c.status();
  Conn& conn = **c;
  // One transaction, serialized with any concurrent format of the same
  // database by an advisory lock (CREATE TABLE IF NOT EXISTS alone races).
  absl::Status st = ExecSimple(conn, "BEGIN; SELECT pg_advisory_xact_lock(4242001801)",
                               "formatting (BEGIN)");
  if (!st.ok()) return st;
  Result exists(PQexec(conn.pg, "SELECT to_regclass('cairn_schema') IS NOT NULL"));
  if (absl::Status est = Check(conn, exists, "formatting (looking for a namespace)"); !est.ok()) {
    return est;
  }
  if (PQgetvalue(exists.get(), 0, 0)[0] == 't') {
    return absl::AlreadyExistsError(absl::StrCat(
        "PostgreSQL at ", Where(conn.pg), ", database ", PQdb(conn.pg),
        " already holds a cairn namespace; give each volume its own database"));
  }
  std::string sql = absl::StrCat(kSchemaSql, "INSERT INTO cairn_schema VALUES (1, ",
                                 kPgSchemaVersion, "); COMMIT");
  if (st = ExecSimple(conn, sql.c_str(), "formatting (creating the tables)"); !st.ok()) return st;
  impl->Release(*std::move(c));
  return Open(options);
}

absl::StatusOr<std::unique_ptr<PgKvStore>> PgKvStore::Open(const PgKvOptions& options) {
  auto impl = std::make_unique<Impl>(options);
  absl::StatusOr<std::unique_ptr<Conn>> c = impl->Connect(/*prepare=*/false);
  if (!c.ok()) return c.status();
  if (absl::Status st = impl->ReadSchema(**c); !st.ok()) return st;
  c = nullptr;
  // The first pooled connection, with its statements prepared: this
  // checks every table is there.
  c = impl->Connect(/*prepare=*/true);
  if (!c.ok()) return c.status();
  impl->Release(*std::move(c));
  if (options.session.has_value()) {
    absl::StatusOr<std::unique_ptr<PgSession>> session = PgSession::Start(options);
    if (!session.ok()) return session.status();
    impl->session = *std::move(session);
  }
  return std::unique_ptr<PgKvStore>(new PgKvStore(std::move(impl)));
}

KvReader& PgKvStore::Reader() { return *impl_->reader; }

absl::Status PgKvStore::Run(const std::function<absl::Status(KvTxn&)>& body) {
  PgSession* session = impl_->session.get();
  // Fenced: fail fast, without a round trip.
  if (session != nullptr && session->fenced()) return session->FencedError();
  const uint64_t session_id = session != nullptr ? session->id() : 0;
  const int attempts = std::max(1, impl_->options.max_attempts);
  const auto retry_until = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(impl_->options.conflict_retry_ms);
  bool retried_lost = false;
  // The first run may take its reads from what this host knows; after a
  // stale one, every run reads the server.
  bool speculate = true;
  absl::Status last_conflict;
  int attempt = 1;
  for (; attempt <= attempts || std::chrono::steady_clock::now() < retry_until; ++attempt) {
    if (attempt > 1 && !last_conflict.ok()) Backoff(attempt);
    bool fresh;
    absl::StatusOr<std::unique_ptr<Conn>> c = impl_->Acquire(&fresh);
    if (!c.ok()) return c.status();
    Conn& conn = **c;
    std::string xid;
    const int backend_pid = PQbackendPID(conn.pg);
    absl::Status st;
    absl::Status outcome;
    bool committing = false;
    bool unknown = false;
    bool stale = false;
    {
      PgTxn txn(conn, impl_->options.scan_page, session_id,
                impl_->Speculating() ? &impl_->recent : nullptr, speculate);
      absl::Status body_st = body(txn);
      // A body failing on remembered values may have failed on stale ones:
      // only a run on the server's values may report its error.
      stale = !body_st.ok() && txn.speculated();
      if (!txn.fenced() && txn.failure().ok() && body_st.ok()) {
        committing = true;
        st = txn.Commit();
        unknown = txn.outcome_unknown();
        stale = txn.stale();
        if (stale) txn.ForgetAssumed();
        if (st.ok()) txn.NoteOutcome(/*committed=*/true);
        if (unknown) txn.NoteOutcome(/*committed=*/false);
      }
      xid = txn.xid();
      if (txn.speculated()) impl_->speculative_runs.fetch_add(1);
      if (stale) impl_->stale_runs.fetch_add(1);
      if (txn.fenced()) {
        if (!conn.broken && PQtransactionStatus(conn.pg) != PQTRANS_IDLE) {
          ExecSimple(conn, "ROLLBACK", "ROLLBACK").IgnoreError();
        }
        impl_->Release(*std::move(c));
        session->Fence();
        return session->FencedError();
      }
      if (!committing) {
        if (!txn.failure().ok()) {
          st = txn.failure();  // a conflict or a lost connection, whatever the body returned
        } else {
          outcome = body_st;
        }
      }
    }
    if (st.ok() && committing) {
      impl_->Release(*std::move(c));
      return absl::OkStatus();
    }
    if (!conn.broken && PQtransactionStatus(conn.pg) != PQTRANS_IDLE) {
      // Nothing of this run is kept. (A lost connection needs no rollback:
      // the server rolls back a session that ends before COMMIT.)
      ExecSimple(conn, "ROLLBACK", "ROLLBACK").IgnoreError();
    }
    impl_->Release(*std::move(c));
    if (stale) {
      speculate = false;
      last_conflict = absl::OkStatus();
      continue;
    }
    if (unknown) {
      // The COMMIT may have been applied with its answer lost. Re-running
      // blindly could apply the transaction twice, so ask the server what
      // became of it (by its transaction id) on a new connection.
      switch (impl_->ResolveCommit(xid, backend_pid)) {
        case CommitFate::kCommitted:
          return absl::OkStatus();
        case CommitFate::kNotCommitted:
          last_conflict = absl::OkStatus();
          continue;  // nothing of it is kept: safe to run again
        case CommitFate::kUnknown:
          return absl::UnavailableError(absl::StrCat(
              st.message(),
              "; the transaction may or may not have committed, and the server could not be "
              "asked (cairn does not run it again, which could apply it twice); check the "
              "server, then retry the operation if its effect is absent"));
      }
    }
    if (st.ok()) return outcome;  // the body's own error
    if (absl::IsAborted(st)) {
      last_conflict = st;
      continue;
    }
    if (absl::IsUnavailable(st) && !fresh && !retried_lost) {
      // A pooled connection that died while idle (the server restarted):
      // nothing was committed, so run once more on a new one.
      retried_lost = true;
      last_conflict = absl::OkStatus();
      continue;
    }
    return st;
  }
  return absl::AbortedError(absl::StrCat(
      "a namespace transaction still conflicted with other writers after ", attempt - 1,
      " attempts (PostgreSQL serialization failures); it made no change; retry the operation (",
      last_conflict.message(), ")"));
}

absl::Status PgKvStore::Sync() { return absl::OkStatus(); }

absl::StatusOr<int64_t> PgKvStore::ReadCounter(std::string_view counter) {
  return impl_->WithConn<int64_t>([&](Conn& c) -> absl::StatusOr<int64_t> {
    Result r = Exec(c, "counter", {std::string(counter)});
    if (absl::Status st = Check(c, r, "reading a counter"); !st.ok()) return st;
    return DecodeInt8(PQgetvalue(r.get(), 0, 0));
  });
}

absl::StatusOr<uint64_t> PgKvStore::Allocate(std::string_view sequence, uint64_t first_ever,
                                             uint64_t count) {
  constexpr uint64_t kMax = uint64_t{1} << 62;  // bigint's room, with margin for the sum
  if (count > kMax || first_ever > kMax) {
    return absl::InvalidArgumentError(absl::StrCat("Allocate(", Sv(sequence), ", ", first_ever, ", ",
                                                   count, "): out of range"));
  }
  return impl_->WithConn<uint64_t>([&](Conn& c) -> absl::StatusOr<uint64_t> {
    if (count == 0) {  // where the next range would start; nothing taken
      Result r = Exec(c, "peek", {std::string(sequence)});
      if (absl::Status st = Check(c, r, "reading a sequence"); !st.ok()) return st;
      if (PQntuples(r.get()) == 0) return first_ever;
      return static_cast<uint64_t>(DecodeInt8(PQgetvalue(r.get(), 0, 0)));
    }
    Result r = Exec(c, "allocate",
                    {std::string(sequence), Int8(static_cast<int64_t>(first_ever)),
                     Int8(static_cast<int64_t>(count))});
    if (absl::Status st = Check(c, r, "allocating numbers"); !st.ok()) return st;
    return static_cast<uint64_t>(DecodeInt8(PQgetvalue(r.get(), 0, 0)));
  });
}

uint64_t PgKvStore::session_id() const {
  return impl_->session != nullptr ? impl_->session->id() : 0;
}

absl::StatusOr<std::vector<uint64_t>> PgKvStore::LiveSessions() {
  return impl_->WithConn<std::vector<uint64_t>>(
      [&](Conn& c) -> absl::StatusOr<std::vector<uint64_t>> {
        // Rows, not unexpired ones: see kv_store.h.
        Result r(PQexec(c.pg, "SELECT id FROM cairn_sessions ORDER BY id"));
        if (absl::Status st = Check(c, r, "listing sessions"); !st.ok()) return st;
        std::vector<uint64_t> ids;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
          ids.push_back(strtoull(PQgetvalue(r.get(), i, 0), nullptr, 10));
        }
        return ids;
      });
}

absl::StatusOr<std::vector<KvStore::SessionInfo>> PgKvStore::ListSessions() {
  return impl_->WithConn<std::vector<SessionInfo>>(
      [&](Conn& c) -> absl::StatusOr<std::vector<SessionInfo>> {
        Result r(PQexec(c.pg,
                        "SELECT id, host, pid, mountpoint, "
                        "(extract(epoch FROM started) * 1000)::int8, "
                        "(extract(epoch FROM heartbeat) * 1000)::int8, "
                        "(extract(epoch FROM expires) * 1000)::int8, journal_backlog, "
                        "expires > now() FROM cairn_sessions ORDER BY id"));
        if (absl::Status st = Check(c, r, "listing sessions"); !st.ok()) return st;
        std::vector<SessionInfo> out;
        for (int i = 0; i < PQntuples(r.get()); ++i) {
          SessionInfo s;
          s.id = strtoull(PQgetvalue(r.get(), i, 0), nullptr, 10);
          s.host = PQgetvalue(r.get(), i, 1);
          s.pid = atoi(PQgetvalue(r.get(), i, 2));
          s.mountpoint = PQgetvalue(r.get(), i, 3);
          s.started_unix_ms = atoll(PQgetvalue(r.get(), i, 4));
          s.heartbeat_unix_ms = atoll(PQgetvalue(r.get(), i, 5));
          s.expires_unix_ms = atoll(PQgetvalue(r.get(), i, 6));
          s.journal_backlog = strtoull(PQgetvalue(r.get(), i, 7), nullptr, 10);
          s.alive = PQgetvalue(r.get(), i, 8)[0] == 't';
          out.push_back(std::move(s));
        }
        return out;
      });
}

void PgKvStore::SetSessionBacklog(uint64_t bytes) {
  if (impl_->session != nullptr) impl_->session->SetBacklog(bytes);
}

bool PgKvStore::IsLeader() { return impl_->session != nullptr && impl_->session->IsLeader(); }

absl::StatusOr<std::unique_ptr<KvStore::Watch>> PgKvStore::WatchChanges(ChangeFn fn) {
  if (impl_->session == nullptr) {
    return absl::FailedPreconditionError(
        "the change feed needs a session (PgKvOptions::session): a store opened without one "
        "cannot tell its own changes from others'");
  }
  // While the feed is watched, what other hosts change reaches
  // RecentValues first, and transactions may speculate on it.
  class SpeculationWatch : public Watch {
   public:
    explicit SpeculationWatch(Impl* impl) : impl_(impl) {}
    ~SpeculationWatch() override {
      inner.reset();  // no delivery after this
      if (impl_->watches.fetch_sub(1) == 1) impl_->recent.Clear();
    }
    std::unique_ptr<Watch> inner;

   private:
    Impl* impl_;
  };
  Impl* impl = impl_.get();
  auto watch = std::make_unique<SpeculationWatch>(impl);
  impl->watches.fetch_add(1);
  absl::StatusOr<std::unique_ptr<Watch>> inner = impl->session->Watch(
      [impl, fn = std::move(fn)](uint64_t session, const std::vector<Change>& changes) {
        impl->recent.Changed(changes);
        fn(session, changes);
      });
  if (!inner.ok()) return inner.status();  // the watch's destructor undoes the count
  watch->inner = *std::move(inner);
  return watch;
}

PgKvStore::SpeculationCounts PgKvStore::speculation_counts() const {
  return SpeculationCounts{impl_->speculative_runs.load(), impl_->stale_runs.load()};
}

void PgKvStore::PauseHeartbeatForTest(bool paused) {
  if (impl_->session != nullptr) impl_->session->PauseHeartbeat(paused);
}

}  // namespace cairn
