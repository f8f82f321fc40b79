// Sessions, fencing, the leader and the change feed of PgKvStore, against a
// real PostgreSQL 15 (tests/pg-server.sh; skipped only when it is not
// installed). Each PgKvStore opened with a session stands for one host's
// daemon; timings are shortened (expiry of a few seconds).
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/pg_kv_store.h"
#include "backend/namespace/pg_session.h"
#include "backend/namespace/records.h"
#include "gtest/gtest.h"
#include "tests/support/pg_server.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

// True once `cond` holds, polling for up to `ms`.
bool Eventually(const std::function<bool()>& cond, int ms = 8000) {
  auto deadline = std::chrono::steady_clock::now() + milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return cond();
}

// What a watcher was handed.
class Collected {
 public:
  KvStore::ChangeFn Fn() {
    return [this](uint64_t session, const std::vector<KvStore::Change>& changes) {
      absl::MutexLock lock(&mu_);
      for (const KvStore::Change& c : changes) got_.push_back({session, c.space, c.key});
    };
  }
  bool Has(uint64_t session, KvSpace space, const std::string& key) {
    absl::MutexLock lock(&mu_);
    for (const Got& g : got_) {
      if (g.session == session && g.space == space && g.key == key) return true;
    }
    return false;
  }
  std::set<uint64_t> Sessions() {
    absl::MutexLock lock(&mu_);
    std::set<uint64_t> out;
    for (const Got& g : got_) out.insert(g.session);
    return out;
  }
  size_t Count(const std::string& key) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const Got& g : got_) n += g.key == key;
    return n;
  }

 private:
  struct Got {
    uint64_t session;
    KvSpace space;
    std::string key;
  };
  absl::Mutex mu_;
  std::vector<Got> got_ ABSL_GUARDED_BY(mu_);
};

class PgSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase("session");
    if (url_.empty()) return;
    PgKvOptions o;
    o.url = url_;
    auto store = PgKvStore::Format(o);
    ASSERT_TRUE(store.ok()) << store.status();
  }

  static PgSessionOptions Fast(const std::string& host) {
    PgSessionOptions s;
    s.host = host;
    s.pid = getpid();
    s.mountpoint = "/mnt/" + host;
    s.expiry_s = 3;
    s.heartbeat_ms = 200;
    s.reap_grace_s = 1;
    s.feed_poll_ms = 200;
    return s;
  }

  std::unique_ptr<PgKvStore> Host(const PgSessionOptions& session) {
    PgKvOptions o;
    o.url = url_;
    o.session = session;
    auto store = PgKvStore::Open(o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static absl::Status Put(KvStore& store, const std::string& key, const std::string& value = "v") {
    return store.Run([&](KvTxn& txn) {
      txn.Put(KvSpace::kMeta, key, value);
      return absl::OkStatus();
    });
  }

  std::string url_;
};

TEST_F(PgSessionTest, SessionRowIsListedWithItsDetailsAndGoesAtClose) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->session_id(), 0u);
  EXPECT_NE(a->session_id(), b->session_id());
  auto sessions = a->ListSessions();
  ASSERT_TRUE(sessions.ok()) << sessions.status();
  ASSERT_EQ(sessions->size(), 2u);
  const KvStore::SessionInfo& s = (*sessions)[0];
  EXPECT_EQ(s.id, a->session_id());
  EXPECT_EQ(s.host, "alpha");
  EXPECT_EQ(s.pid, getpid());
  EXPECT_EQ(s.mountpoint, "/mnt/alpha");
  EXPECT_TRUE(s.alive);
  EXPECT_GT(s.expires_unix_ms, s.heartbeat_unix_ms);
  EXPECT_GE(s.heartbeat_unix_ms, s.started_unix_ms);

  const uint64_t a_id = a->session_id();
  a.reset();
  auto live = b->LiveSessions();
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(*live, std::vector<uint64_t>{b->session_id()});
  // Ids are never reused.
  auto c = Host(Fast("gamma"));
  ASSERT_TRUE(c);
  EXPECT_GT(c->session_id(), std::max(a_id, b->session_id()));

  // A store without a session (format, fsck, status) holds none.
  PgKvOptions plain;
  plain.url = url_;
  auto tool = PgKvStore::Open(plain);
  ASSERT_TRUE(tool.ok()) << tool.status();
  EXPECT_EQ((*tool)->session_id(), 0u);
  EXPECT_FALSE((*tool)->IsLeader());
  EXPECT_TRUE(Put(**tool, "k").ok());
}

TEST_F(PgSessionTest, HeartbeatKeepsTheSessionAliveAndReportsTheBacklog) {
  auto a = Host(Fast("alpha"));
  ASSERT_TRUE(a);
  a->SetSessionBacklog(123456);
  // Twice the expiry: only the heartbeat keeps it alive.
  std::this_thread::sleep_for(milliseconds(6000));
  EXPECT_TRUE(Put(*a, "k").ok());
  auto sessions = a->ListSessions();
  ASSERT_TRUE(sessions.ok()) << sessions.status();
  ASSERT_EQ(sessions->size(), 1u);
  EXPECT_TRUE((*sessions)[0].alive);
  EXPECT_EQ((*sessions)[0].journal_backlog, 123456u);
}

TEST_F(PgSessionTest, ExpiredSessionIsFencedForGoodWhileAnotherGoesOn) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Put(*a, "before").ok());
  a->PauseHeartbeatForTest(true);  // as a host paused or cut off
  std::this_thread::sleep_for(milliseconds(3500));
  absl::Status st = Put(*a, "after");
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("session with the namespace expired"), std::string::npos) << st;
  EXPECT_NE(st.message().find("unmount and mount again"), std::string::npos) << st;
  // The heartbeat cannot revive it: it stays fenced.
  a->PauseHeartbeatForTest(false);
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_TRUE(absl::IsFailedPrecondition(Put(*a, "later")));
  EXPECT_FALSE(a->IsLeader());
  // Its reads go on; nothing of its refused changes is there.
  auto v = a->Reader().Get(KvSpace::kMeta, "before");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, "v");
  v = a->Reader().Get(KvSpace::kMeta, "after");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_FALSE(v->has_value());
  // The other host goes on.
  EXPECT_TRUE(Put(*b, "other").ok());
}

TEST_F(PgSessionTest, DeadSessionIsDeletedByALiveOne) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  const uint64_t a_id = a->session_id();
  a->PauseHeartbeatForTest(true);
  EXPECT_TRUE(Eventually([&] {
    auto live = b->LiveSessions();
    return live.ok() && *live == std::vector<uint64_t>{b->session_id()};
  })) << "session " << a_id << " was not deleted";
}

TEST_F(PgSessionTest, DeadSessionRowStaysWhileItsTransactionIsInFlight) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  const uint64_t a_id = a->session_id();
  a->PauseHeartbeatForTest(true);
  // Begun while alive (at the server: with its first read), the
  // transaction holds the row (FOR KEY SHARE) past the expiry and the
  // reaper's grace: the row, and so whatever the session held, stays
  // until it ends.
  bool listed_during = false;
  absl::Status st = a->Run([&](KvTxn& txn) {
    EXPECT_TRUE(txn.Get(KvSpace::kMeta, "slow").ok());
    txn.Put(KvSpace::kMeta, "slow", "v");
    std::this_thread::sleep_for(milliseconds(5500));
    auto live = b->LiveSessions();
    listed_during = live.ok() && std::count(live->begin(), live->end(), a_id) == 1;
    return absl::OkStatus();
  });
  EXPECT_TRUE(listed_during);
  EXPECT_TRUE(st.ok()) << st;  // ordered before the row's deletion
  EXPECT_TRUE(Eventually([&] {
    auto live = b->LiveSessions();
    return live.ok() && *live == std::vector<uint64_t>{b->session_id()};
  }));
  EXPECT_TRUE(absl::IsFailedPrecondition(Put(*a, "after")));
}

TEST_F(PgSessionTest, ExactlyOneLeaderAndAnotherTakesOverAfterItCloses) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Eventually([&] { return a->IsLeader() || b->IsLeader(); }));
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_NE(a->IsLeader(), b->IsLeader());
  std::unique_ptr<PgKvStore>& leader = a->IsLeader() ? a : b;
  std::unique_ptr<PgKvStore>& follower = a->IsLeader() ? b : a;
  leader.reset();
  EXPECT_TRUE(Eventually([&] { return follower->IsLeader(); }));
}

TEST_F(PgSessionTest, PausedLeaderLosesLeadershipToALiveSession) {
  auto a = Host(Fast("alpha"));
  ASSERT_TRUE(a);
  ASSERT_TRUE(Eventually([&] { return a->IsLeader(); }));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(b);
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_FALSE(b->IsLeader());
  // Its connection, and so the advisory lock, stays open while it sleeps:
  // the follower ends it once the session is dead.
  a->PauseHeartbeatForTest(true);
  EXPECT_TRUE(Eventually([&] { return !a->IsLeader(); }, 5000));
  EXPECT_TRUE(Eventually([&] { return b->IsLeader(); }));
}

TEST_F(PgSessionTest, ChangesReachOtherHostsWatchersNotTheirOwn) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  Collected at_a, at_b;
  auto wa = a->WatchChanges(at_a.Fn());
  auto wb = b->WatchChanges(at_b.Fn());
  ASSERT_TRUE(wa.ok() && wb.ok()) << wa.status() << wb.status();
  ASSERT_TRUE(a->Run([&](KvTxn& txn) {
                 txn.Put(KvSpace::kDentries, "put", "v");
                 txn.Delete(KvSpace::kInodes, "gone");
                 txn.AddToCounter("c", 1);
                 return absl::OkStatus();
               }).ok());
  EXPECT_TRUE(Eventually([&] {
    return at_b.Has(a->session_id(), KvSpace::kDentries, "put") &&
           at_b.Has(a->session_id(), KvSpace::kInodes, "gone");
  }));
  ASSERT_TRUE(Put(*b, "from-b").ok());
  EXPECT_TRUE(Eventually([&] { return at_a.Has(b->session_id(), KvSpace::kMeta, "from-b"); }));
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(at_a.Sessions(), std::set<uint64_t>{b->session_id()});
  EXPECT_EQ(at_b.Sessions(), std::set<uint64_t>{a->session_id()});
  EXPECT_EQ(at_b.Count("put"), 1u);  // once, however often it was read
}

TEST_F(PgSessionTest, PollingAloneLosesNoChange) {
  auto a = Host(Fast("alpha"));
  PgSessionOptions deaf = Fast("beta");
  deaf.listen = false;  // every NOTIFY lost
  deaf.feed_poll_ms = 1000;
  auto b = Host(deaf);
  ASSERT_TRUE(a && b);
  Collected at_b;
  auto wb = b->WatchChanges(at_b.Fn());
  ASSERT_TRUE(wb.ok()) << wb.status();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(*a, "k" + std::to_string(i)).ok());
  EXPECT_TRUE(Eventually([&] {
    for (int i = 0; i < 20; ++i) {
      if (!at_b.Has(a->session_id(), KvSpace::kMeta, "k" + std::to_string(i))) return false;
    }
    return true;
  }, 4000));
}

TEST_F(PgSessionTest, ChangeCommittedAfterALaterOneIsStillDelivered) {
  auto a = Host(Fast("alpha"));
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  Collected at_b;
  auto wb = b->WatchChanges(at_b.Fn());
  ASSERT_TRUE(wb.ok()) << wb.status();
  // A writer that takes its feed number, then commits after A's later one.
  PGconn* slow = PQconnectdb(url_.c_str());
  ASSERT_EQ(PQstatus(slow), CONNECTION_OK) << PQerrorMessage(slow);
  std::string changes = EncodeFeedChanges({{KvSpace::kMeta, "early"}});
  auto exec = [&](const char* sql, std::vector<std::string> params = {}) {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const std::string& p : params) {
      values.push_back(p.data());
      lengths.push_back(static_cast<int>(p.size()));
      formats.push_back(1);
    }
    PGresult* r = PQexecParams(slow, sql, static_cast<int>(params.size()), nullptr, values.data(),
                               lengths.data(), formats.data(), 0);
    ExecStatusType s = PQresultStatus(r);
    EXPECT_TRUE(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) << PQerrorMessage(slow);
    PQclear(r);
  };
  exec("BEGIN");
  exec("INSERT INTO cairn_feed (session, changes) VALUES (999999, $1::bytea)", {changes});
  ASSERT_TRUE(Put(*a, "late").ok());
  ASSERT_TRUE(Eventually([&] { return at_b.Has(a->session_id(), KvSpace::kMeta, "late"); }));
  std::this_thread::sleep_for(milliseconds(500));  // a few polls pass over the gap
  exec("SELECT pg_notify('cairn_feed', '')");
  exec("COMMIT");
  PQfinish(slow);
  EXPECT_TRUE(Eventually([&] { return at_b.Has(999999, KvSpace::kMeta, "early"); }));
}

TEST_F(PgSessionTest, FeedKeepsWhatAWatcherHasNotReadAndTrimsTheRest) {
  PgSessionOptions keep = Fast("alpha");
  keep.feed_keep_s = 1;
  auto a = Host(keep);
  auto b = Host(Fast("beta"));
  ASSERT_TRUE(a && b);
  Collected at_b;
  auto wb = b->WatchChanges(at_b.Fn());
  ASSERT_TRUE(wb.ok()) << wb.status();
  ASSERT_TRUE(Put(*a, "old").ok());
  ASSERT_TRUE(Eventually([&] { return at_b.Has(a->session_id(), KvSpace::kMeta, "old"); }));
  PGconn* c = PQconnectdb(url_.c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK);
  auto feed_rows = [&] {
    PGresult* r = PQexec(c, "SELECT count(*) FROM cairn_feed");
    int n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
  };
  // Read by every watcher and older than feed_keep_s: trimmed.
  EXPECT_TRUE(Eventually([&] { return feed_rows() == 0; }));
  // A watcher that has not read a row holds it, whatever its age.
  wb->reset();  // its reader row goes with it
  PGresult* r = PQexec(c, "INSERT INTO cairn_feed_readers VALUES (424242, 0)");
  EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQerrorMessage(c);
  PQclear(r);
  ASSERT_TRUE(Put(*a, "held").ok());
  std::this_thread::sleep_for(milliseconds(2500));
  EXPECT_EQ(feed_rows(), 1);
  r = PQexec(c, "DELETE FROM cairn_feed_readers");
  PQclear(r);
  EXPECT_TRUE(Eventually([&] { return feed_rows() == 0; }));
  PQfinish(c);
}

TEST_F(PgSessionTest, NamespaceReportsOtherHostsChangesAsInodesAndEntries) {
  NamespaceOptions options;
  options.create_if_missing = true;
  auto ns_a = OpenKvNamespace(Host(Fast("alpha")), options);
  ASSERT_TRUE(ns_a.ok()) << ns_a.status();
  auto ns_b = OpenKvNamespace(Host(Fast("beta")), options);
  ASSERT_TRUE(ns_b.ok()) << ns_b.status();
  // Leadership passes through the namespace: one of the two leads.
  EXPECT_TRUE(Eventually([&] { return (*ns_a)->IsLeader() != (*ns_b)->IsLeader(); }));

  absl::Mutex mu;
  std::vector<NamespaceChange> seen;
  auto watch = (*ns_b)->WatchChanges([&](const std::vector<NamespaceChange>& changes) {
    absl::MutexLock lock(&mu);
    seen.insert(seen.end(), changes.begin(), changes.end());
  });
  ASSERT_TRUE(watch.ok()) << watch.status();
  NewNode node;
  node.mode = S_IFREG | 0644;
  auto made = (*ns_a)->MakeNode(kRootInode, "f", node, Caller{0, 0});
  ASSERT_TRUE(made.ok()) << made.status();
  auto has = [&](const NamespaceChange& want) {
    absl::MutexLock lock(&mu);
    return std::count(seen.begin(), seen.end(), want) > 0;
  };
  EXPECT_TRUE(Eventually([&] {
    return has({NamespaceChange::Kind::kEntry, kRootInode, "f"}) &&
           has({NamespaceChange::Kind::kInode, kRootInode, ""}) &&
           has({NamespaceChange::Kind::kInode, made->ino, ""});
  }));
}

// A server of its own: it is restarted.
TEST(PgSessionRestartTest, SessionsWatcherAndLeaderResumeAfterTheServerRestarts) {
  std::unique_ptr<PgServer> server = StartPgServerForTest();
  if (server == nullptr) return;
  std::string why_not;
  PgKvOptions plain;
  plain.url = server->url();
  plain.connect_timeout_s = 2;
  ASSERT_TRUE(PgKvStore::Format(plain).ok());
  auto open = [&](const std::string& host) {
    PgKvOptions o = plain;
    o.session = PgSessionOptions{};
    o.session->host = host;
    o.session->expiry_s = 10;  // longer than the restart
    o.session->heartbeat_ms = 200;
    o.session->feed_poll_ms = 200;
    auto store = PgKvStore::Open(o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  };
  auto a = open("alpha");
  auto b = open("beta");
  ASSERT_TRUE(a && b);
  Collected at_b;
  auto wb = b->WatchChanges(at_b.Fn());
  ASSERT_TRUE(wb.ok()) << wb.status();
  ASSERT_TRUE(Eventually([&] { return a->IsLeader() || b->IsLeader(); }));

  ASSERT_TRUE(server->Stop(/*crash=*/true, &why_not)) << why_not;
  std::this_thread::sleep_for(milliseconds(1000));
  ASSERT_TRUE(server->Restart(&why_not)) << why_not;

  // The same sessions go on (the restart was shorter than the expiry);
  // the first Run may meet a dead pooled connection and runs again.
  EXPECT_TRUE(Eventually([&] {
    return a->Run([](KvTxn& t) {
                t.Put(KvSpace::kMeta, "after-restart", "v");
                return absl::OkStatus();
              }).ok();
  }));
  EXPECT_TRUE(Eventually([&] { return at_b.Has(a->session_id(), KvSpace::kMeta, "after-restart"); }));
  EXPECT_TRUE(Eventually([&] { return a->IsLeader() != b->IsLeader(); }));
  auto live = b->LiveSessions();
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(live->size(), 2u);
  wb->reset();
  a.reset();
  b.reset();
}

TEST(NamespaceChangesOf, KeysMapToInodesAndEntriesEachOnce) {
  std::vector<KvStore::Change> keys = {
      {KvSpace::kInodes, InodeKey(7)},
      {KvSpace::kXattrs, XattrKey(7, "user.a")},
      {KvSpace::kExtents, ExtentKey(8, 4096)},
      {KvSpace::kDentries, DentryKey(1, "name")},
      {KvSpace::kDentries, DentryKey(1, "name")},
      {KvSpace::kCookies, CookieKey(1, 5)},
      {KvSpace::kBlobs, BlobKey(99)},
      {KvSpace::kGc, GcKey(10, 99)},
      {KvSpace::kMeta, "volume-id"},
  };
  std::vector<NamespaceChange> want = {
      {NamespaceChange::Kind::kInode, 7, ""},
      {NamespaceChange::Kind::kInode, 8, ""},
      {NamespaceChange::Kind::kEntry, 1, "name"},
      {NamespaceChange::Kind::kInode, 1, ""},
  };
  EXPECT_EQ(NamespaceChangesOf(keys), want);
}

TEST(FeedChanges, RoundTripAndHostileBytesAreRefused) {
  std::vector<KvStore::Change> changes = {{KvSpace::kDentries, std::string("a\0b", 3)},
                                          {KvSpace::kMeta, ""}};
  auto back = DecodeFeedChanges(EncodeFeedChanges(changes));
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].key, std::string("a\0b", 3));
  EXPECT_EQ((*back)[1].space, KvSpace::kMeta);
  std::string bytes = EncodeFeedChanges(changes);
  EXPECT_FALSE(DecodeFeedChanges(bytes.substr(0, 3)).ok());
  EXPECT_FALSE(DecodeFeedChanges(bytes.substr(0, 7)).ok());
  EXPECT_FALSE(DecodeFeedChanges(std::string("\x63\0\0\0\0", 5)).ok());
}

}  // namespace
}  // namespace cairn
