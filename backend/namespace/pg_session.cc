#include "backend/namespace/pg_session.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {

namespace {

using Clock = std::chrono::steady_clock;

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// A connection of the session's own (not the store's pool): the heartbeat,
// the leader lock and the watcher each hold one, so none waits behind a
// transaction.
absl::StatusOr<ConnPtr> ConnectTo(const std::string& url, int connect_timeout_s,
                                  const std::string& app, int statement_timeout_ms) {
  std::string timeout = std::to_string(connect_timeout_s);
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), app.c_str(), url.c_str(), nullptr};
  ConnPtr c(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (!c) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(c.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("cannot reach PostgreSQL: ",
                                               Trim(PQerrorMessage(c.get()))));
  }
  PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);
  std::string set = absl::StrCat("SET statement_timeout = ", statement_timeout_ms);
  Result r(PQexec(c.get(), set.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return absl::UnavailableError(absl::StrCat("PostgreSQL session setup failed: ",
                                               Trim(PQerrorMessage(c.get()))));
  }
  return c;
}

// Runs `sql` with text parameters; results in `format` (0 text, 1 binary).
absl::StatusOr<Result> Query(PGconn* c, const char* sql, const std::vector<std::string>& params,
                             std::string_view what, int format = 0) {
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  Result r(PQexecParams(c, sql, static_cast<int>(params.size()), nullptr, values.data(), nullptr,
                        nullptr, format));
  ExecStatusType s = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
    std::string detail = Trim(r && *PQresultErrorMessage(r.get()) ? PQresultErrorMessage(r.get())
                                                                 : PQerrorMessage(c));
    return absl::UnavailableError(absl::StrCat("PostgreSQL: ", Sv(what), " failed: ", detail));
  }
  return r;
}

bool Broken(PGconn* c) { return c == nullptr || PQstatus(c) != CONNECTION_OK; }

int64_t DecodeInt8(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return static_cast<int64_t>(v);
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

int HeartbeatMs(const PgSessionOptions& o) {
  return o.heartbeat_ms > 0 ? o.heartbeat_ms : std::max(100, o.expiry_s * 1000 / 6);
}

// ---- The watcher of the change feed. ----

// Reads cairn_feed by sequence number, on a NOTIFY and every feed_poll_ms.
//
// Numbers are taken at insert and transactions commit out of order, so
// "seq > last seen" could pass over a row that commits later. The watcher
// keeps `floor_` (every number up to it is settled: read, or given up on)
// and the gaps above it: numbers below the highest seen that it has not
// read. Each poll reads what is new and what fills a gap; a gap is given up
// after feed_gap_grace_ms (a rolled-back transaction leaves one forever;
// one that took a number commits in the same round trip). The floor is
// published in cairn_feed_readers so the trim never passes it.
class FeedWatcher : public KvStore::Watch {
 public:
  FeedWatcher(std::string url, int connect_timeout_s, uint64_t session, PgSessionOptions options,
              KvStore::ChangeFn fn)
      : url_(std::move(url)),
        connect_timeout_s_(connect_timeout_s),
        session_(session),
        options_(std::move(options)),
        fn_(std::move(fn)),
        wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  // Connects and sets the starting point before returning, so that every
  // transaction committed after WatchChanges returned is delivered.
  absl::Status Start() {
    if (absl::Status st = Reconnect(); !st.ok()) return st;
    thread_ = std::thread([this] { Loop(); });
    return absl::OkStatus();
  }

  ~FeedWatcher() override {
    stop_.store(true);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
    if (thread_.joinable()) thread_.join();
    if (!Broken(conn_.get())) {
      Query(conn_.get(), "DELETE FROM cairn_feed_readers WHERE session = $1::int8",
            {std::to_string(session_)}, "forgetting a feed reader")
          .IgnoreError();
    }
    close(wake_fd_);
  }

 private:
  absl::Status Reconnect() {
    conn_.reset();
    absl::StatusOr<ConnPtr> c = ConnectTo(url_, connect_timeout_s_,
                                          absl::StrCat("cairn watcher ", session_), 10000);
    if (!c.ok()) return c.status();
    if (options_.listen) {
      absl::StatusOr<Result> r = Query(c->get(), "LISTEN cairn_feed", {}, "LISTEN");
      if (!r.ok()) return r.status();
    }
    conn_ = *std::move(c);
    if (!started_) {
      // Start at the end of the feed, taking the last numbers as read
      // without delivering them: a number below the end that is not there
      // yet is a gap, delivered if it commits within the grace.
      absl::StatusOr<Result> r =
          Query(conn_.get(), "SELECT coalesce(max(seq), 0) FROM cairn_feed", {}, "reading the feed");
      if (!r.ok()) return r.status();
      int64_t end = atoll(PQgetvalue(r->get(), 0, 0));
      floor_ = std::max<int64_t>(0, end - kStartWindow);
      max_seen_ = floor_;
      deliver_ = false;
      absl::Status st = Poll();
      deliver_ = true;
      if (!st.ok()) return st;
      started_ = true;
    }
    return absl::OkStatus();
  }

  void Loop() {
    while (!stop_.load()) {
      if (Broken(conn_.get())) {
        if (absl::Status st = Reconnect(); !st.ok()) {
          LogWarning("change feed: %s; trying again", st.message());
          Wait(1000);
          continue;
        }
      }
      if (absl::Status st = Poll(); !st.ok()) {
        LogWarning("change feed: %s", st.message());
        if (Broken(conn_.get())) continue;
      }
      Wait(options_.feed_poll_ms);
    }
  }

  // Whether another session's NOTIFY came (this host's own commits ring
  // too, with its session as the payload: their rows it skips anyway, and
  // reading the feed after each would double its commits' cost).
  bool OthersRang() {
    bool rang = false;
    const std::string self = std::to_string(session_);
    while (PGnotify* note = PQnotifies(conn_.get())) {
      rang = rang || self != note->extra;
      PQfreemem(note);
    }
    return rang;
  }

  // Until another session's NOTIFY, the stop, or `ms`.
  void Wait(int ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {-1, POLLIN, 0}};
    int n = 1;
    if (!Broken(conn_.get())) {
      // One that came in during the last poll's query is already read off
      // the socket: look again at once.
      if (OthersRang()) return;
      fds[1].fd = PQsocket(conn_.get());
      n = 2;
    }
    while (!stop_.load()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      if (left.count() <= 0) return;
      fds[0].revents = fds[1].revents = 0;
      if (poll(fds, n, static_cast<int>(left.count())) <= 0 || fds[0].revents != 0) return;
      if (PQconsumeInput(conn_.get()) != 1 || OthersRang()) return;
    }
  }

  absl::Status Poll() {
    const std::string self = std::to_string(session_);
    for (;;) {
      std::string gaps = "{";
      for (const auto& [seq, noticed] : gaps_) {
        if (gaps.size() > 1) gaps += ',';
        gaps += std::to_string(seq);
      }
      gaps += '}';
      // Binary results: the changes are bytea.
      absl::StatusOr<Result> r = Query(
          conn_.get(),
          "SELECT seq, session, CASE WHEN session <> $2::int8 THEN changes END FROM cairn_feed "
          "WHERE seq > $1::int8 AND (seq > $3::int8 OR seq = ANY($4::int8[])) "
          "ORDER BY seq LIMIT $5::int8",
          {std::to_string(floor_), self, std::to_string(max_seen_), gaps,
           std::to_string(kPage)},
          "reading the feed", /*format=*/1);
      if (!r.ok()) return r.status();
      const int rows = PQntuples(r->get());
      const auto now = Clock::now();
      for (int i = 0; i < rows; ++i) {
        int64_t seq = DecodeInt8(PQgetvalue(r->get(), i, 0));
        if (seq <= floor_ || seen_.count(seq)) continue;
        seen_.insert(seq);
        gaps_.erase(seq);
        for (int64_t g = max_seen_ + 1; g < seq; ++g) gaps_.emplace(g, now);
        max_seen_ = std::max(max_seen_, seq);
        if (!deliver_ || PQgetisnull(r->get(), i, 2)) continue;  // before the start, or ours
        uint64_t writer = static_cast<uint64_t>(DecodeInt8(PQgetvalue(r->get(), i, 1)));
        absl::StatusOr<std::vector<KvStore::Change>> changes = DecodeFeedChanges(
            std::string_view(PQgetvalue(r->get(), i, 2), PQgetlength(r->get(), i, 2)));
        if (!changes.ok()) {
          LogWarning("change feed: row %d: %s", seq, changes.status().message());
          continue;
        }
        fn_(writer, *changes);
      }
      if (rows < kPage) break;
    }
    // Settle what can be: read numbers, and gaps past their grace.
    const auto given_up = Clock::now() - std::chrono::milliseconds(options_.feed_gap_grace_ms);
    while (floor_ < max_seen_) {
      int64_t next = floor_ + 1;
      if (seen_.erase(next)) {
        ++floor_;
        continue;
      }
      auto gap = gaps_.find(next);
      if (gap != gaps_.end() && gap->second > given_up) break;
      if (gap != gaps_.end()) gaps_.erase(gap);
      ++floor_;
    }
    // Published now and then, not at each read: the trim (after
    // feed_keep_s) needs it roughly, and each publication is a commit.
    const auto publish_every = std::min<Clock::duration>(
        std::chrono::seconds(5), std::chrono::milliseconds(int64_t{options_.feed_keep_s} * 250));
    if (!published_ ||
        (floor_ != published_floor_ && Clock::now() - published_at_ >= publish_every)) {
      absl::StatusOr<Result> r = Query(
          conn_.get(),
          "INSERT INTO cairn_feed_readers (session, seen) VALUES ($1::int8, $2::int8) "
          "ON CONFLICT (session) DO UPDATE SET seen = EXCLUDED.seen",
          {self, std::to_string(floor_)}, "recording how far the feed was read");
      if (!r.ok()) return r.status();
      published_ = true;
      published_at_ = Clock::now();
      published_floor_ = floor_;
    }
    return absl::OkStatus();
  }

  static constexpr int64_t kStartWindow = 1000;
  static constexpr int kPage = 1000;

  const std::string url_;
  const int connect_timeout_s_;
  const uint64_t session_;
  const PgSessionOptions options_;
  const KvStore::ChangeFn fn_;
  const int wake_fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // The watcher thread's alone (Start's before the thread exists).
  ConnPtr conn_;
  bool started_ = false;
  bool deliver_ = true;
  bool published_ = false;
  Clock::time_point published_at_;
  int64_t published_floor_ = 0;
  int64_t floor_ = 0;
  int64_t max_seen_ = 0;
  std::set<int64_t> seen_;                    // read, above the floor
  std::map<int64_t, Clock::time_point> gaps_;  // not read, below max_seen_; when first missed
};

}  // namespace

// ---- Feed encoding. ----

std::string EncodeFeedChanges(const std::vector<KvStore::Change>& changes) {
  std::string out;
  for (const KvStore::Change& c : changes) {
    out.push_back(static_cast<char>(c.space));
    uint32_t n = static_cast<uint32_t>(c.key.size());
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out += c.key;
  }
  return out;
}

absl::StatusOr<std::vector<KvStore::Change>> DecodeFeedChanges(std::string_view bytes) {
  std::vector<KvStore::Change> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 5) {
      return absl::DataLossError("a change feed entry ends inside a key's header");
    }
    uint8_t space = static_cast<uint8_t>(bytes[pos]);
    if (space >= kKvSpaceCount) {
      return absl::DataLossError(absl::StrCat("a change feed entry names key space ", space));
    }
    uint32_t n = 0;
    for (int i = 1; i <= 4; ++i) n = (n << 8) | static_cast<uint8_t>(bytes[pos + i]);
    pos += 5;
    if (bytes.size() - pos < n) return absl::DataLossError("a change feed entry ends inside a key");
    out.push_back({static_cast<KvSpace>(space), std::string(bytes.substr(pos, n))});
    pos += n;
  }
  return out;
}

// ---- The session. ----

struct PgSession::Threads {
  absl::Mutex mu;
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread heartbeat;
};

PgSession::PgSession(const PgKvOptions& options, uint64_t id)
    : url_(options.url),
      connect_timeout_s_(options.connect_timeout_s),
      options_(*options.session),
      id_(id),
      last_beat_ms_(SteadyMs()),
      threads_(std::make_unique<Threads>()) {}

bool PgSession::IsLeader() const {
  return leader_.load() && !fenced_.load() &&
         SteadyMs() - last_beat_ms_.load() < int64_t{options_.expiry_s} * 1000;
}

absl::StatusOr<std::unique_ptr<PgSession>> PgSession::Start(const PgKvOptions& options) {
  const PgSessionOptions& s = *options.session;
  if (s.expiry_s < 1) return absl::InvalidArgumentError("a session's expiry must be at least 1 s");
  absl::StatusOr<ConnPtr> c =
      ConnectTo(options.url, options.connect_timeout_s, "cairn session", 10000);
  if (!c.ok()) return c.status();
  absl::StatusOr<Result> r = Query(
      c->get(),
      "INSERT INTO cairn_sessions (id, host, pid, mountpoint, started, heartbeat, expires) "
      "VALUES (nextval('cairn_session_ids'), $1, $2::int, $3, now(), now(), "
      "now() + make_interval(secs => $4::int)) RETURNING id",
      {s.host, std::to_string(s.pid), s.mountpoint, std::to_string(s.expiry_s)},
      "opening a session");
  if (!r.ok()) return r.status();
  uint64_t id = strtoull(PQgetvalue(r->get(), 0, 0), nullptr, 10);
  std::unique_ptr<PgSession> session(new PgSession(options, id));
  session->threads_->heartbeat = std::thread([p = session.get()] { p->HeartbeatLoop(); });
  return session;
}

PgSession::~PgSession() {
  {
    absl::MutexLock lock(&threads_->mu);
    threads_->stop = true;
  }
  threads_->heartbeat.join();
  absl::StatusOr<ConnPtr> c = ConnectTo(url_, connect_timeout_s_, "cairn session", 10000);
  if (!c.ok()) {
    LogWarning("could not end session %d (%s); it ends at its expiry", id_, c.status().message());
    return;
  }
  const std::string id = std::to_string(id_);
  for (const char* sql : {"DELETE FROM cairn_feed_readers WHERE session = $1::int8",
                          "DELETE FROM cairn_sessions WHERE id = $1::int8"}) {
    absl::StatusOr<Result> r = Query(c->get(), sql, {id}, "ending the session");
    if (!r.ok()) LogWarning("session %d: %s; it ends at its expiry", id_, r.status().message());
  }
}

absl::Status PgSession::FencedError() const {
  // EROFS to programs: reads go on, every change is refused, as on a
  // filesystem the kernel remounted read-only after an error.
  return FsError(FsErrorKind::kReadOnly,
                 absl::StrCat("this host's session with the namespace expired (paused or cut "
                              "off for more than ",
                              options_.expiry_s,
                              " s); its changes are refused: unmount and mount again"));
}

absl::StatusOr<std::unique_ptr<KvStore::Watch>> PgSession::Watch(KvStore::ChangeFn fn) {
  auto w = std::make_unique<FeedWatcher>(url_, connect_timeout_s_, id_, options_, std::move(fn));
  if (absl::Status st = w->Start(); !st.ok()) return st;
  return std::unique_ptr<KvStore::Watch>(std::move(w));
}

void PgSession::HeartbeatLoop() {
  const int period_ms = HeartbeatMs(options_);
  // No statement may outlast the expiry it is meant to extend.
  const int timeout_ms = std::max(500, std::min(options_.expiry_s * 1000 / 2, 10000));
  const std::string id = std::to_string(id_);
  const std::string expiry = std::to_string(options_.expiry_s);
  ConnPtr beat;
  ConnPtr leader;  // held while leading: the advisory lock lives with it
  auto last_trim = Clock::now() - std::chrono::hours(1);
  auto connect = [&](ConnPtr* c, const std::string& app) {
    if (!Broken(c->get())) return true;
    absl::StatusOr<ConnPtr> n = ConnectTo(url_, connect_timeout_s_, app, timeout_ms);
    if (!n.ok()) {
      LogWarning("session %d: %s", id_, n.status().message());
      c->reset();
      return false;
    }
    *c = *std::move(n);
    return true;
  };
  for (;;) {
    {
      absl::MutexLock lock(&threads_->mu);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(threads_->mu) { return threads_->stop; };
      threads_->mu.AwaitWithTimeout(absl::Condition(&stopping), absl::Milliseconds(period_ms));
      if (threads_->stop) break;
    }
    if (paused_.load()) continue;
    if (fenced_.load()) {
      leader_.store(false);
      leader.reset();
      continue;
    }
    if (!connect(&beat, "cairn session")) continue;
    // Extends the expiry only while the session is alive: a dead one
    // stays dead. The new expiry counts from about when it was sent.
    const int64_t sent_ms = SteadyMs();
    absl::StatusOr<Result> r = Query(
        beat.get(),
        "UPDATE cairn_sessions SET heartbeat = now(), "
        "expires = now() + make_interval(secs => $2::int), journal_backlog = $3::int8 "
        "WHERE id = $1::int8 AND expires > now() RETURNING id",
        {id, expiry, std::to_string(backlog_.load())}, "heartbeat");
    if (!r.ok()) {
      // The server decides by the expiry; a few failed beats are fine.
      LogWarning("session %d: %s", id_, r.status().message());
      continue;
    }
    if (PQntuples(r->get()) == 0) {
      LogError("session %d expired: the namespace refuses this host's changes from now on", id_);
      Fence();
      continue;
    }
    last_beat_ms_.store(sent_ms);
    // Rows of sessions dead for a while, unless a transaction of theirs is
    // still in flight (it holds FOR KEY SHARE: SKIP LOCKED passes over).
    r = Query(beat.get(),
              "WITH dead AS (DELETE FROM cairn_sessions WHERE id IN (SELECT id FROM "
              "cairn_sessions WHERE expires < now() - make_interval(secs => $1::int) "
              "FOR UPDATE SKIP LOCKED) RETURNING id), "
              "readers AS (DELETE FROM cairn_feed_readers WHERE session IN (SELECT id FROM dead)) "
              "SELECT id FROM dead",
              {std::to_string(options_.reap_grace_s)}, "deleting dead sessions");
    if (r.ok()) {
      for (int i = 0; i < PQntuples(r->get()); ++i) {
        LogInfo("session %d: deleted dead session %s", id_, PQgetvalue(r->get(), i, 0));
      }
    }
    if (Clock::now() - last_trim > std::chrono::seconds(std::max(1, options_.feed_keep_s / 10))) {
      last_trim = Clock::now();
      Query(beat.get(),
            "DELETE FROM cairn_feed WHERE at < now() - make_interval(secs => $1::int) AND seq <= "
            "coalesce((SELECT min(seen) FROM cairn_feed_readers), (SELECT max(seq) FROM cairn_feed))",
            {std::to_string(options_.feed_keep_s)}, "trimming the feed")
          .IgnoreError();
    }
    // The leader lock.
    if (leader_.load()) {
      if (Broken(leader.get()) || !Query(leader.get(), "SELECT 1", {}, "leader check").ok()) {
        LogWarning("session %d: lost the connection holding the leader lock", id_);
        leader_.store(false);
        leader.reset();
      }
      continue;
    }
    if (!connect(&leader, absl::StrCat("cairn leader ", id_))) continue;
    const std::string key = std::to_string(kPgLeaderLock);
    r = Query(leader.get(), "SELECT pg_try_advisory_lock($1::int8)", {key}, "leader election");
    if (!r.ok()) {
      leader.reset();
      continue;
    }
    if (PQgetvalue(r->get(), 0, 0)[0] == 't') {
      LogInfo("session %d leads the volume's background services", id_);
      leader_.store(true);
      continue;
    }
    // Held: by a live session, or by one that is paused or cut off while
    // its connection stays open. End the latter's connection (same role).
    Query(leader.get(),
          "SELECT pg_terminate_backend(a.pid) FROM pg_locks l JOIN pg_stat_activity a "
          "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
          "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
          "AND ((l.classid::int8 << 32) | l.objid::int8) = $1::int8 "
          "AND a.application_name LIKE 'cairn leader %' AND NOT EXISTS (SELECT 1 FROM "
          "cairn_sessions s WHERE s.id::text = substr(a.application_name, 14) "
          "AND s.expires > now())",
          {key}, "ending a dead leader's connection")
        .IgnoreError();
  }
}

}  // namespace cairn
