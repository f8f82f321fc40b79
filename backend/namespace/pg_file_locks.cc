#include "backend/namespace/pg_file_locks.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/fs_error.h"

namespace cairn {

namespace {

// Every statement here carries only integers, formatted into its text by
// this file (never a caller's string), so statements go as plain text
// with PQexec: several statements of one transaction in one round trip.

// Serialized with PgKvStore::Format (the same advisory key), never with
// the leader election's (kPgLeaderLock), which a live daemon holds for good.
constexpr const char* kSchemaSql =
    "BEGIN; SELECT pg_advisory_xact_lock(4242001801);"
    "CREATE TABLE IF NOT EXISTS cairn_locks ("
    "  inode bigint NOT NULL, session bigint NOT NULL, owner bigint NOT NULL,"
    "  kind smallint NOT NULL, type smallint NOT NULL,"
    "  first_byte bigint NOT NULL, last_byte bigint NOT NULL, pid int NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cairn_locks_inode ON cairn_locks (inode);"
    "CREATE INDEX IF NOT EXISTS cairn_locks_session ON cairn_locks (session);"
    "COMMIT";

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct Conn {
  explicit Conn(PGconn* p) : pg(p) {}
  ~Conn() { PQfinish(pg); }
  PGconn* pg;
  bool broken = false;
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Where(PGconn* pg) {
  const char* host = pg ? PQhost(pg) : nullptr;
  const char* port = pg ? PQport(pg) : nullptr;
  return absl::StrCat(host && *host ? host : "(default host)", ":",
                      port && *port ? port : "(default port)");
}

bool IsLost(PGconn* pg, const PGresult* res) {
  const char* sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (PQstatus(pg) == CONNECTION_BAD || sqlstate == nullptr) return true;
  std::string_view s(sqlstate);
  return s.substr(0, 2) == "08" || s == "57P01" || s == "57P02" || s == "57P03";
}

// Runs `sql` (one or more statements); the last statement's result. On
// failure the transaction, if one is open, is rolled back, and a lost
// connection is marked broken. Every failure is ENOLCK to the caller: the
// lock table could not answer.
absl::StatusOr<Result> Exec(Conn& c, const std::string& sql, std::string_view what) {
  Result r(PQexec(c.pg, sql.c_str()));
  ExecStatusType s = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return r;
  std::string detail = Trim(r && *PQresultErrorMessage(r.get()) ? PQresultErrorMessage(r.get())
                                                                 : PQerrorMessage(c.pg));
  if (IsLost(c.pg, r.get())) {
    c.broken = true;
  } else if (PQtransactionStatus(c.pg) != PQTRANS_IDLE) {
    PQclear(PQexec(c.pg, "ROLLBACK"));
  }
  return FsError(FsErrorKind::kNoLocks,
                 absl::StrCat("the shared lock table in PostgreSQL at ", Where(c.pg),
                              " failed during ", absl::string_view(what.data(), what.size()), ": ",
                              detail));
}

int64_t Int(const Result& r, int row, int col) {
  return std::strtoll(PQgetvalue(r.get(), row, col), nullptr, 10);
}

// Rows of "SELECT session, owner, kind, type, first_byte, last_byte, pid".
std::vector<HeldLock> Rows(const Result& r) {
  std::vector<HeldLock> out;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    HeldLock h;
    h.session = static_cast<uint64_t>(Int(r, i, 0));
    h.owner = static_cast<uint64_t>(Int(r, i, 1));
    h.kind = static_cast<LockKind>(Int(r, i, 2));
    h.type = static_cast<LockType>(Int(r, i, 3));
    h.start = Int(r, i, 4);
    h.last = Int(r, i, 5);
    h.pid = static_cast<int32_t>(Int(r, i, 6));
    out.push_back(h);
  }
  return out;
}

std::string S(uint64_t v) { return absl::StrCat(static_cast<int64_t>(v)); }

std::string LockInode(InodeId ino) {
  return absl::StrCat("SELECT pg_advisory_xact_lock(", kPgLockAdvisoryClass, ", hashint8(", S(ino),
                      "::int8));");
}

// Rows whose session is alive, as SQL.
constexpr const char* kAlive =
    "EXISTS (SELECT 1 FROM cairn_sessions s WHERE s.id = l.session AND s.expires > now())";

}  // namespace

struct PgFileLocks::Impl {
  explicit Impl(PgFileLocksOptions o) : options(std::move(o)) {}
  PgFileLocksOptions options;
  absl::Mutex mu;
  std::vector<std::unique_ptr<Conn>> idle ABSL_GUARDED_BY(mu);
  // The (inode, owner) pairs that may have rows: every close of a shared
  // volume's file releases its owner's locks (POSIX), and most closes are
  // of files nobody locked, which then cost no round trip. A pair goes in
  // before its set reaches the server and out before its release does, so
  // a set racing a release is never forgotten.
  absl::flat_hash_set<std::pair<InodeId, uint64_t>> may_hold ABSL_GUARDED_BY(mu);

  void NoteMayHold(InodeId ino, uint64_t owner) {
    absl::MutexLock lock(&mu);
    may_hold.insert({ino, owner});
  }
  // Whether the pair may have rows; forgets it.
  bool TakeMayHold(InodeId ino, uint64_t owner) {
    absl::MutexLock lock(&mu);
    return may_hold.erase({ino, owner}) != 0;
  }

  absl::StatusOr<std::unique_ptr<Conn>> Connect() {
    std::string timeout = std::to_string(options.connect_timeout_s);
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {timeout.c_str(), "cairn-locks", options.url.c_str(), nullptr};
    auto c = std::make_unique<Conn>(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
    if (c->pg == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK) {
      return FsError(FsErrorKind::kNoLocks,
                     absl::StrCat("cannot reach PostgreSQL at ", Where(c->pg),
                                  " for the shared lock table: ", Trim(PQerrorMessage(c->pg))));
    }
    PQsetNoticeProcessor(c->pg, [](void*, const char*) {}, nullptr);
    std::string settings =
        absl::StrCat("SET statement_timeout = ", options.statement_timeout_ms, ";");
    if (absl::StatusOr<Result> r = Exec(*c, settings, "session setup"); !r.ok()) {
      return r.status();
    }
    return c;
  }

  // Runs `fn` on a pooled connection; when a pooled one turns out lost
  // (the server restarted since), once more on a fresh one. Every call
  // here is safe to repeat: a set or release run twice leaves what it
  // left once, so even a COMMIT whose answer was lost may run again.
  template <typename T>
  absl::StatusOr<T> WithConn(const std::function<absl::StatusOr<T>(Conn&)>& fn) {
    for (int tries = 0;; ++tries) {
      std::unique_ptr<Conn> c;
      bool fresh = false;
      {
        absl::MutexLock lock(&mu);
        if (!idle.empty()) {
          c = std::move(idle.back());
          idle.pop_back();
        }
      }
      if (c == nullptr) {
        absl::StatusOr<std::unique_ptr<Conn>> made = Connect();
        if (!made.ok()) return made.status();
        c = *std::move(made);
        fresh = true;
      }
      absl::StatusOr<T> result = fn(*c);
      bool lost = c->broken;
      if (!lost && PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        absl::MutexLock lock(&mu);
        if (static_cast<int>(idle.size()) < options.pool_size) idle.push_back(std::move(c));
      }
      if (lost && !fresh && tries == 0) continue;
      return result;
    }
  }
};

absl::Status PgFileLocks::Prepare(const std::string& url, int connect_timeout_s) {
  PgFileLocksOptions o;
  o.url = url;
  o.connect_timeout_s = connect_timeout_s;
  Impl impl(o);
  absl::StatusOr<std::unique_ptr<Conn>> c = impl.Connect();
  if (!c.ok()) return c.status();
  return Exec(**c, kSchemaSql, "creating cairn_locks").status();
}

absl::StatusOr<std::unique_ptr<PgFileLocks>> PgFileLocks::Open(const PgFileLocksOptions& options) {
  if (options.session_id == 0) {
    return absl::InvalidArgumentError("shared locks need a database session (session id 0)");
  }
  if (absl::Status st = Prepare(options.url, options.connect_timeout_s); !st.ok()) return st;
  return std::unique_ptr<PgFileLocks>(new PgFileLocks(std::make_unique<Impl>(options)));
}

PgFileLocks::PgFileLocks(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgFileLocks::~PgFileLocks() = default;

absl::StatusOr<std::optional<HeldLock>> PgFileLocks::TestRecordLock(InodeId ino, uint64_t owner,
                                                                    const ByteRangeLock& lock) {
  const uint64_t me = impl_->options.session_id;
  std::string sql = absl::StrCat(
      "SELECT session, owner, kind, type, first_byte, last_byte, pid FROM cairn_locks l "
      "WHERE inode = ", S(ino), " AND kind = ", static_cast<int>(LockKind::kRecord), " AND ",
      kAlive);
  return impl_->WithConn<std::optional<HeldLock>>(
      [&](Conn& c) -> absl::StatusOr<std::optional<HeldLock>> {
        absl::StatusOr<Result> r = Exec(c, sql, "testing a lock");
        if (!r.ok()) return r.status();
        std::optional<HeldLock> first =
            FirstConflict(Rows(*r), me, owner, LockKind::kRecord, lock);
        if (first && first->session != me) first->pid = 0;
        return first;
      });
}

absl::StatusOr<std::optional<HeldLock>> PgFileLocks::TrySet(InodeId ino, uint64_t owner,
                                                           LockKind kind,
                                                           const ByteRangeLock& lock) {
  const uint64_t me = impl_->options.session_id;
  const int kind_number = static_cast<int>(kind);
  if (lock.type != LockType::kUnlock) impl_->NoteMayHold(ino, owner);
  std::string mine_where = absl::StrCat("inode = ", S(ino), " AND session = ", S(me),
                                        " AND owner = ", S(owner), " AND kind = ", kind_number);
  return impl_->WithConn<std::optional<HeldLock>>(
      [&](Conn& c) -> absl::StatusOr<std::optional<HeldLock>> {
        // The inode's advisory lock, the dead sessions' locks gone, and
        // whether our own session is alive, in one round trip.
        std::string begin = absl::StrCat(
            "BEGIN; ", LockInode(ino), "DELETE FROM cairn_locks l WHERE inode = ", S(ino),
            " AND NOT ", kAlive, "; SELECT EXISTS (SELECT 1 FROM cairn_sessions WHERE id = ",
            S(me), " AND expires > now())");
        absl::StatusOr<Result> alive = Exec(c, begin, "locking");
        if (!alive.ok()) return alive.status();
        if (lock.type != LockType::kUnlock && PQgetvalue(alive->get(), 0, 0)[0] != 't') {
          Exec(c, "ROLLBACK", "ROLLBACK").IgnoreError();
          return FsError(FsErrorKind::kNoLocks,
                         absl::StrCat("this host's database session ", me,
                                      " has expired: its locks are void for the other hosts "
                                      "and it may take no new ones; remount"));
        }
        absl::StatusOr<Result> rows = Exec(
            c,
            absl::StrCat("SELECT session, owner, kind, type, first_byte, last_byte, pid "
                         "FROM cairn_locks WHERE inode = ", S(ino), " AND kind = ", kind_number),
            "reading locks");
        if (!rows.ok()) return rows.status();
        std::vector<HeldLock> held = Rows(*rows);
        std::optional<HeldLock> in_the_way = FirstConflict(held, me, owner, kind, lock);
        if (in_the_way) {
          // Commit anyway: the dead sessions' locks stay deleted.
          if (absl::StatusOr<Result> r = Exec(c, "COMMIT", "COMMIT"); !r.ok()) return r.status();
          if (in_the_way->session != me) in_the_way->pid = 0;
          return in_the_way;
        }
        std::vector<HeldLock> before, after;
        for (const HeldLock& h : held) {
          if (h.session == me && h.owner == owner) before.push_back(h);
        }
        std::sort(before.begin(), before.end(),
                  [](const HeldLock& a, const HeldLock& b) { return a.start < b.start; });
        after = ApplyLock(before, me, owner, kind, lock);
        std::string change;
        if (after != before) {
          change = absl::StrCat("DELETE FROM cairn_locks WHERE ", mine_where, ";");
          if (!after.empty()) {
            absl::StrAppend(&change, "INSERT INTO cairn_locks (inode, session, owner, kind, "
                                     "type, first_byte, last_byte, pid) VALUES ");
            for (size_t i = 0; i < after.size(); ++i) {
              const HeldLock& h = after[i];
              absl::StrAppend(&change, i ? "," : "", "(", S(ino), ",", S(me), ",", S(owner), ",",
                              kind_number, ",", static_cast<int>(h.type), ",", h.start, ",",
                              h.last, ",", h.pid, ")");
            }
            absl::StrAppend(&change, ";");
          }
        }
        absl::StrAppend(&change, "COMMIT");
        if (absl::StatusOr<Result> r = Exec(c, change, "changing locks"); !r.ok()) {
          return r.status();
        }
        return std::optional<HeldLock>();
      });
}

absl::Status PgFileLocks::ReleaseOwner(InodeId ino, uint64_t owner) {
  if (!impl_->TakeMayHold(ino, owner)) return absl::OkStatus();
  // Under the inode's advisory lock, so it cannot interleave with a set of
  // the same owner (another thread of the closing process) and leave that
  // set's rows behind the close.
  std::string sql = absl::StrCat("BEGIN; ", LockInode(ino),
                                 "DELETE FROM cairn_locks WHERE inode = ", S(ino),
                                 " AND session = ", S(impl_->options.session_id),
                                 " AND owner = ", S(owner), "; COMMIT");
  absl::StatusOr<bool> done = impl_->WithConn<bool>([&](Conn& c) -> absl::StatusOr<bool> {
    absl::StatusOr<Result> r = Exec(c, sql, "releasing locks");
    if (!r.ok()) return r.status();
    return true;
  });
  if (done.ok()) {
    NoteUnlocked();
  } else {
    impl_->NoteMayHold(ino, owner);  // the next close tries again
  }
  return done.status();
}

absl::Status PgFileLocks::ReleaseSession() {
  std::string sql = absl::StrCat("DELETE FROM cairn_locks WHERE session = ",
                                 S(impl_->options.session_id));
  absl::StatusOr<bool> done = impl_->WithConn<bool>([&](Conn& c) -> absl::StatusOr<bool> {
    absl::StatusOr<Result> r = Exec(c, sql, "releasing the session's locks");
    if (!r.ok()) return r.status();
    return true;
  });
  if (done.ok()) {
    {
      absl::MutexLock lock(&impl_->mu);
      impl_->may_hold.clear();
    }
    NoteUnlocked();
  }
  return done.status();
}

}  // namespace cairn
