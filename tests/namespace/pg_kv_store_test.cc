// PgKvStore against a real PostgreSQL 15 that tests/pg-server.sh starts on
// 127.0.0.1 (skipped only when the server is not installed). Two PgKvStore
// objects on one database stand for two hosts.
#include "backend/namespace/pg_kv_store.h"

#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/pg_server.h"

namespace cairn {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// A TCP relay in front of the server that can lose a commit's answer: when
// armed, it forwards the client's bytes that hold a COMMIT and then closes
// both sides without relaying the reply (as a network cut right after the
// commit was sent). With `refuse_after_cut` it then refuses connections
// until `refusing` is cleared.
class CutProxy {
 public:
  explicit CutProxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(listen_fd_, 16);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~CutProxy() {
    stopping_ = true;
    acceptor_.join();
    for (auto& t : relays_) t.join();
    close(listen_fd_);
  }
  int port() const { return port_; }

  // Whether the client's bytes run the prepared statement "commit": a
  // Bind message ('B', its length, an unnamed portal) naming it. Its
  // Parse, when a connection prepares its statements, does not count.
  static bool SendsCommit(std::string_view sent) {
    const std::string_view bind_commit("\0commit\0", 8);
    for (size_t at = sent.find('B'); at != std::string_view::npos; at = sent.find('B', at + 1)) {
      if (sent.substr(at + 5, bind_commit.size()) == bind_commit) return true;
    }
    return false;
  }

  std::atomic<bool> cut_after_commit{false};
  std::atomic<bool> refuse_after_cut{false};
  std::atomic<bool> refusing{false};
  std::atomic<int> cuts{0};

 private:
  void AcceptLoop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      if (refusing) {
        close(client);
        continue;
      }
      int server = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(upstream_port_);
      if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(server);
        close(client);
        continue;
      }
      relays_.emplace_back([this, client, server] { Relay(client, server); });
    }
  }

  void Relay(int client, int server) {
    char buf[65536];
    while (!stopping_) {
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (poll(p, 2, 50) <= 0) continue;
      if (p[0].revents) {
        ssize_t n = read(client, buf, sizeof(buf));
        if (n <= 0) break;
        if (write(server, buf, n) != n) break;
        if (cut_after_commit && SendsCommit(std::string_view(buf, n))) {
          cut_after_commit = false;
          if (refuse_after_cut) refusing = true;
          ++cuts;
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          break;
        }
      }
      if (p[1].revents) {
        ssize_t n = read(server, buf, sizeof(buf));
        if (n <= 0) break;
        if (write(client, buf, n) != n) break;
      }
    }
    close(client);
    close(server);
  }

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::vector<std::thread> relays_;  // only the acceptor thread adds
};

class PgKvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A database of its own per test.
    options_.url = FreshPgDatabase("t", &server_);
    if (options_.url.empty()) return;
    auto store = PgKvStore::Format(options_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // Another host on the same database.
  std::unique_ptr<PgKvStore> OpenHost(PgKvOptions options) {
    options.url = options_.url;
    auto store = PgKvStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Another host, whose scans read 3 pairs a page.
  std::unique_ptr<PgKvStore> SmallPageHost() {
    PgKvOptions small = options_;
    small.scan_page = 3;
    return OpenHost(small);
  }

  // Commits `count` keys k100, k101, ... of kExtents, each valued
  // value(i, key); returns them in key order.
  std::vector<std::pair<std::string, std::string>> CommitNumberedKeys(
      int count, const std::function<std::string(int, const std::string&)>& value) {
    std::vector<std::pair<std::string, std::string>> all;
    EXPECT_TRUE(store_->Run([&](KvTxn& t) {
                        all.clear();
                        for (int i = 0; i < count; ++i) {
                          std::string k = "k" + std::to_string(100 + i);
                          t.Put(KvSpace::kExtents, k, value(i, k));
                          all.emplace_back(k, value(i, k));
                        }
                        return absl::OkStatus();
                      }).ok());
    return all;
  }

  std::optional<std::string> Committed(KvSpace space, std::string_view key) {
    auto v = store_->Reader().Get(space, key);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }

  PgServer* server_ = nullptr;
  PgKvOptions options_;
  std::unique_ptr<PgKvStore> store_;
};

std::vector<std::pair<std::string, std::string>> ScanAll(KvReader& r, KvSpace space,
                                                         std::string_view start = "",
                                                         std::string_view end = "") {
  std::vector<std::pair<std::string, std::string>> out;
  absl::Status st = r.Scan(space, start, end, [&](std::string_view k, std::string_view v) {
    out.emplace_back(k, v);
    return true;
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

TEST_F(PgKvStoreTest, FormatRefusesAFormattedDatabaseAndOpenRefusesAnEmptyOne) {
  auto again = PgKvStore::Format(options_);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();

  std::string error;
  PgKvOptions o;
  o.url = server_->CreateDatabase(options_.url.substr(options_.url.rfind('/') + 1) + "_empty",
                                  &error);
  ASSERT_NE(o.url, "") << error;
  auto opened = PgKvStore::Open(o);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition) << opened.status();
  EXPECT_NE(opened.status().message().find("format the volume"), std::string::npos);

  o.url = "postgresql://cairn@127.0.0.1:1/cairn";  // nobody listens on port 1
  auto unreachable = PgKvStore::Open(o);
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(unreachable.status().message().find("cannot reach PostgreSQL at 127.0.0.1:1"),
            std::string::npos)
      << unreachable.status();
}

TEST_F(PgKvStoreTest, TransactionReadsSeeItsOwnWrites) {
  ASSERT_TRUE(store_->Run([](KvTxn& t) {
                      t.Put(KvSpace::kInodes, "a", "1");
                      t.Put(KvSpace::kInodes, "c", "3");
                      t.Put(KvSpace::kInodes, "e", "5");
                      return absl::OkStatus();
                    }).ok());
  ASSERT_TRUE(store_->Run([](KvTxn& t) -> absl::Status {
                      t.Put(KvSpace::kInodes, "b", "2");
                      t.Delete(KvSpace::kInodes, "c");
                      t.Put(KvSpace::kInodes, "e", "five");
                      auto b = t.Get(KvSpace::kInodes, "b");
                      EXPECT_EQ(b.value(), "2");
                      EXPECT_EQ(t.Get(KvSpace::kInodes, "c").value(), std::nullopt);
                      std::vector<std::string> keys = {"a", "b", "c", "e", "z"};
                      auto many = t.MultiGet(KvSpace::kInodes, keys);
                      EXPECT_TRUE(many.ok());
                      EXPECT_EQ(*many, (std::vector<std::optional<std::string>>{
                                           "1", "2", std::nullopt, "five", std::nullopt}));
                      EXPECT_EQ(ScanAll(t, KvSpace::kInodes),
                                (std::vector<std::pair<std::string, std::string>>{
                                    {"a", "1"}, {"b", "2"}, {"e", "five"}}));
                      // Another space is another key set.
                      EXPECT_EQ(t.Get(KvSpace::kDentries, "a").value(), std::nullopt);
                      return absl::OkStatus();
                    }).ok());
  EXPECT_EQ(ScanAll(store_->Reader(), KvSpace::kInodes),
            (std::vector<std::pair<std::string, std::string>>{
                {"a", "1"}, {"b", "2"}, {"e", "five"}}));
}

TEST_F(PgKvStoreTest, LastSkipsWhatTheTransactionDeletedAndSeesWhatItPut) {
  ASSERT_TRUE(store_->Run([](KvTxn& t) {
                      for (const char* k : {"a1", "a3", "a5", "a7"}) t.Put(KvSpace::kExtents, k, k);
                      t.Put(KvSpace::kGc, "z", "other space");
                      return absl::OkStatus();
                    }).ok());
  auto key_of = [](const absl::StatusOr<std::optional<KvReader::KeyValue>>& got) {
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() && got->has_value() ? (*got)->first : std::string("none");
  };
  ASSERT_TRUE(store_->Run([&](KvTxn& t) {
                      t.Delete(KvSpace::kExtents, "a7");
                      t.Delete(KvSpace::kExtents, "a5");
                      EXPECT_EQ(key_of(t.Last(KvSpace::kExtents, "a", "")), "a3");
                      t.Put(KvSpace::kExtents, "a4", "mine");
                      EXPECT_EQ(key_of(t.Last(KvSpace::kExtents, "a", "")), "a4");
                      EXPECT_EQ(key_of(t.Last(KvSpace::kExtents, "a", "a4")), "a3");
                      t.Put(KvSpace::kExtents, "a3", "changed");
                      auto got = t.Last(KvSpace::kExtents, "a", "a4");
                      EXPECT_TRUE(got.ok() && got->has_value() && (*got)->second == "changed");
                      EXPECT_EQ(key_of(t.Last(KvSpace::kExtents, "b", "")), "none");
                      t.Delete(KvSpace::kExtents, "a1");
                      t.Delete(KvSpace::kExtents, "a3");
                      t.Delete(KvSpace::kExtents, "a4");
                      EXPECT_EQ(key_of(t.Last(KvSpace::kExtents, "", "")), "none");
                      return absl::CancelledError("only looking");
                    }).code() == absl::StatusCode::kCancelled);
  EXPECT_EQ(key_of(store_->Reader().Last(KvSpace::kExtents, "", "")), "a7");
  EXPECT_EQ(key_of(store_->Reader().Last(KvSpace::kExtents, "a2", "a7")), "a5");
}

TEST_F(PgKvStoreTest, KeysOrderBytewiseWithZeroAndFfBytes) {
  std::vector<std::string> keys = {std::string("\x00", 1), std::string("\x00\x00", 2),
                                   std::string("\x00\xff", 2), "\x01", "a", std::string("a\x00", 2),
                                   "a\x7f", "a\x80", "a\xff", "\xff", "\xff\xff", "\xff\xff\xff"};
  std::vector<std::pair<std::string, std::string>> want;
  for (const std::string& k : keys) want.emplace_back(k, "v" + k);  // already in byte order
  ASSERT_TRUE(store_->Run([&](KvTxn& t) {
                      for (auto it = keys.rbegin(); it != keys.rend(); ++it) {
                        t.Put(KvSpace::kDentries, *it, "v" + *it);
                      }
                      // Own writes merge in the same order before commit.
                      EXPECT_EQ(ScanAll(t, KvSpace::kDentries), want);
                      return absl::OkStatus();
                    }).ok());
  EXPECT_EQ(ScanAll(store_->Reader(), KvSpace::kDentries), want);
  // A range whose bounds hold 0x00 and 0xff bytes.
  auto mid = ScanAll(store_->Reader(), KvSpace::kDentries, std::string("\x00\xff", 2), "a\x80");
  EXPECT_EQ(mid, Pairs(want.begin() + 2, want.begin() + 7));
  for (const std::string& k : keys) EXPECT_EQ(Committed(KvSpace::kDentries, k), "v" + k);
}

TEST_F(PgKvStoreTest, ScansCrossPageBoundariesAndStopWhenAsked) {
  std::unique_ptr<PgKvStore> host = SmallPageHost();
  ASSERT_NE(host, nullptr);
  const Pairs all = CommitNumberedKeys(20, [](int i, const std::string&) {
    return std::string(i, 'x');
  });
  EXPECT_EQ(ScanAll(host->Reader(), KvSpace::kExtents), all);
  EXPECT_EQ(ScanAll(host->Reader(), KvSpace::kExtents, "k103", "k112"),
            Pairs(all.begin() + 3, all.begin() + 12));
  // Less than a page is one statement; a page exactly, and nothing, too.
  EXPECT_EQ(ScanAll(host->Reader(), KvSpace::kExtents, "k103", "k105"),
            Pairs(all.begin() + 3, all.begin() + 5));
  EXPECT_EQ(ScanAll(host->Reader(), KvSpace::kExtents, "k103", "k106"),
            Pairs(all.begin() + 3, all.begin() + 6));
  EXPECT_EQ(ScanAll(host->Reader(), KvSpace::kExtents, "k3", ""), Pairs());
  int seen = 0;
  ASSERT_TRUE(host->Reader()
                  .Scan(KvSpace::kExtents, "", "",
                        [&](std::string_view, std::string_view) { return ++seen < 7; })
                  .ok());
  EXPECT_EQ(seen, 7);
  // In a transaction, pages merge with buffered writes at and between them.
  ASSERT_TRUE(host->Run([&](KvTxn& t) {
                    t.Delete(KvSpace::kExtents, "k102");  // inside the first page
                    t.Delete(KvSpace::kExtents, "k105");  // the first key of the second page
                    t.Put(KvSpace::kExtents, "k105a", "new");
                    t.Put(KvSpace::kExtents, "k119", "changed");
                    t.Put(KvSpace::kExtents, "k2", "after");
                    auto got = ScanAll(t, KvSpace::kExtents);
                    std::vector<std::pair<std::string, std::string>> want;
                    for (auto& [k, v] : all) {
                      if (k == "k102" || k == "k105") continue;
                      want.emplace_back(k, k == "k119" ? "changed" : v);
                      if (k == "k104") want.emplace_back("k105a", "new");
                    }
                    want.emplace_back("k2", "after");
                    EXPECT_EQ(got, want);
                    return absl::OkStatus();
                  }).ok());
}

// A scan a transaction prefetched (with other reads, in one round trip)
// reads as the server had it, past its first page too, merged with the
// transaction's writes made before or after the prefetch; a scan of other
// bounds is read afresh.
TEST_F(PgKvStoreTest, PrefetchedScansReadAsFetchedUnderTheTransactionsOwnWrites) {
  std::unique_ptr<PgKvStore> host = SmallPageHost();
  ASSERT_NE(host, nullptr);
  const Pairs all = CommitNumberedKeys(8, [](int, const std::string& key) { return key; });
  ASSERT_TRUE(store_->Run([&](KvTxn& t) {
                      t.Put(KvSpace::kXattrs, "x", "1");
                      return absl::OkStatus();
                    }).ok());
  ASSERT_TRUE(host->Run([&](KvTxn& t) {
                    t.Put(KvSpace::kExtents, "k100a", "before");
                    t.Prefetch({{KvSpace::kInodes, "none"}},
                               {{KvSpace::kExtents, "k101", "k106"},
                                {KvSpace::kExtents, "", ""},
                                {KvSpace::kXattrs, "x", "y"},
                                {KvSpace::kMeta, "a", "b"}});
                    t.Delete(KvSpace::kExtents, "k102");
                    t.Put(KvSpace::kExtents, "k105", "after");
                    EXPECT_EQ(ScanAll(t, KvSpace::kExtents, "k101", "k106"),
                              (std::vector<std::pair<std::string, std::string>>{
                                  {"k101", "k101"}, {"k103", "k103"}, {"k104", "k104"},
                                  {"k105", "after"}}));
                    std::vector<std::pair<std::string, std::string>> want = {all[0]};
                    want.emplace_back("k100a", "before");
                    want.push_back(all[1]);
                    want.insert(want.end(), all.begin() + 3, all.end());
                    want[5].second = "after";  // k105
                    EXPECT_EQ(ScanAll(t, KvSpace::kExtents), want);
                    EXPECT_EQ(ScanAll(t, KvSpace::kExtents, "k106", ""),
                              Pairs(all.begin() + 6, all.end()));
                    EXPECT_EQ(ScanAll(t, KvSpace::kXattrs, "x", "y"),
                              (std::vector<std::pair<std::string, std::string>>{{"x", "1"}}));
                    EXPECT_TRUE(ScanAll(t, KvSpace::kMeta, "a", "b").empty());
                    auto none = t.Get(KvSpace::kInodes, "none");
                    EXPECT_TRUE(none.ok() && !none->has_value());
                    return absl::OkStatus();
                  }).ok());
}

TEST_F(PgKvStoreTest, FailedBodyLeavesNothing) {
  ASSERT_TRUE(store_->Run([](KvTxn& t) {
                      t.Put(KvSpace::kMeta, "keep", "1");
                      return absl::OkStatus();
                    }).ok());
  absl::Status st = store_->Run([](KvTxn& t) {
    t.Put(KvSpace::kMeta, "lost", "1");
    t.Delete(KvSpace::kMeta, "keep");
    t.AddToCounter("files", 5);
    return absl::NotFoundError("the body gives up");
  });
  EXPECT_EQ(st, absl::NotFoundError("the body gives up"));
  EXPECT_EQ(Committed(KvSpace::kMeta, "lost"), std::nullopt);
  EXPECT_EQ(Committed(KvSpace::kMeta, "keep"), "1");
  EXPECT_EQ(store_->ReadCounter("files").value(), 0);
}

TEST_F(PgKvStoreTest, CountersSumEveryHostsAdditions) {
  std::unique_ptr<PgKvStore> other = OpenHost(options_);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(store_->ReadCounter("bytes").value(), 0);
  for (int i = 0; i < 40; ++i) {
    PgKvStore& host = i % 2 ? *store_ : *other;
    ASSERT_TRUE(host.Run([&](KvTxn& t) {
                      t.AddToCounter("bytes", 100);
                      t.AddToCounter("bytes", 1);  // two adds in one run count once each
                      t.AddToCounter("inodes", i % 3 == 0 ? -1 : 2);
                      return absl::OkStatus();
                    }).ok());
  }
  EXPECT_EQ(store_->ReadCounter("bytes").value(), 40 * 101);
  EXPECT_EQ(other->ReadCounter("inodes").value(), 14 * -1 + 26 * 2);
}

TEST_F(PgKvStoreTest, AllocateNeverRepeatsAcrossHostsThreadsAndReconnects) {
  std::unique_ptr<PgKvStore> other = OpenHost(options_);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(store_->Allocate("ino", 1000, 10).value(), 1000u);  // first_ever starts it
  std::mutex mu;
  std::set<uint64_t> numbers;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      PgKvStore& host = i % 2 ? *store_ : *other;
      for (int j = 0; j < 25; ++j) {
        // Allocate inside a transaction that then fails: the numbers stay taken.
        absl::StatusOr<uint64_t> first;
        absl::Status st = host.Run([&](KvTxn&) {
          first = host.Allocate("ino", 1, 3);
          return absl::CancelledError("rolled back");
        });
        ASSERT_TRUE(first.ok()) << first.status();
        std::lock_guard<std::mutex> lock(mu);
        for (uint64_t n = *first; n < *first + 3; ++n) EXPECT_TRUE(numbers.insert(n).second) << n;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(numbers.size(), 300u);
  EXPECT_GE(*numbers.begin(), 1010u);
  // A host that reconnects (a new store, new connections) continues past them.
  other.reset();
  std::unique_ptr<PgKvStore> reopened = OpenHost(options_);
  ASSERT_NE(reopened, nullptr);
  EXPECT_GT(reopened->Allocate("ino", 1, 1).value(), *numbers.rbegin());
  EXPECT_EQ(reopened->Allocate("blob", 7, 2).value(), 7u);  // sequences are apart
}

// Two hosts, several threads each, read-modify-write one key: with
// SERIALIZABLE and re-runs, no increment is lost or applied twice.
TEST_F(PgKvStoreTest, ConflictingIncrementsFromTwoHostsAllCount) {
  std::unique_ptr<PgKvStore> other = OpenHost(options_);
  ASSERT_NE(other, nullptr);
  constexpr int kThreads = 6, kEach = 15;
  std::atomic<int> runs{0}, gave_up{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      PgKvStore& host = i % 2 ? *store_ : *other;
      for (int j = 0; j < kEach; ++j) {
        absl::Status st;
        do {
          st = host.Run([&](KvTxn& t) -> absl::Status {
            ++runs;
            auto v = t.Get(KvSpace::kMeta, "n");
            if (!v.ok()) return v.status();
            int n = v->has_value() ? std::stoi(**v) : 0;
            t.Put(KvSpace::kMeta, "n", std::to_string(n + 1));
            return absl::OkStatus();
          });
          // kAborted: every re-run conflicted; nothing applied, so the
          // caller may try again.
          if (absl::IsAborted(st)) ++gave_up;
        } while (absl::IsAborted(st));
        ASSERT_TRUE(st.ok()) << st;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Committed(KvSpace::kMeta, "n"), std::to_string(kThreads * kEach));
  EXPECT_GT(runs.load(), kThreads * kEach);  // there were conflicts, and re-runs
  RecordProperty("body_runs", runs.load());
  RecordProperty("gave_up", gave_up.load());
}

// A transaction that keeps losing to another host's commits is run again
// for its retry time, not only max_attempts times; with no time left, it
// gives up with kAborted after its attempts, having changed nothing.
TEST_F(PgKvStoreTest, AConflictingTransactionRunsAgainForItsRetryTimeNotJustACount) {
  if (options_.url.empty()) GTEST_SKIP() << "no PostgreSQL";
  PgKvOptions patient = options_;
  patient.max_attempts = 2;
  patient.conflict_retry_ms = 60000;
  std::unique_ptr<PgKvStore> host = OpenHost(patient);
  std::unique_ptr<PgKvStore> other = OpenHost(options_);
  ASSERT_NE(host, nullptr);
  ASSERT_NE(other, nullptr);
  auto put_n = [&](PgKvStore& store, const std::string& value) {
    return store.Run([&](KvTxn& t) {
      t.Put(KvSpace::kMeta, "n", value);
      return absl::OkStatus();
    });
  };
  ASSERT_TRUE(put_n(*other, "0").ok());
  // Each run reads n, then the other host changes it before this one
  // commits: a serialization failure, six times over.
  int runs = 0, conflicts_left = 6;
  auto losing_body = [&](KvTxn& t) -> absl::Status {
    ++runs;
    absl::StatusOr<std::optional<std::string>> n = t.Get(KvSpace::kMeta, "n");
    if (!n.ok()) return n.status();
    if (conflicts_left-- > 0) {
      if (absl::Status s = put_n(*other, "other" + std::to_string(runs)); !s.ok()) return s;
    }
    t.Put(KvSpace::kMeta, "n", "mine");
    return absl::OkStatus();
  };
  absl::Status st = host->Run(losing_body);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(runs, 7);
  EXPECT_EQ(Committed(KvSpace::kMeta, "n"), "mine");

  PgKvOptions hasty = patient;
  hasty.conflict_retry_ms = 0;
  std::unique_ptr<PgKvStore> hasty_host = OpenHost(hasty);
  ASSERT_NE(hasty_host, nullptr);
  runs = 0;
  conflicts_left = 6;
  st = hasty_host->Run(losing_body);
  EXPECT_TRUE(absl::IsAborted(st)) << st;
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(Committed(KvSpace::kMeta, "n"), "other2") << "the given-up run changed nothing";
}

// Through a relay that drops the reply to the COMMIT: Run asks the server
// what became of the transaction and returns OK, without running the
// body again (which would have counted twice).
TEST_F(PgKvStoreTest, CommitWhoseAnswerIsLostIsLookedUpNotRunAgain) {
  int port = std::stoi(server_->url().substr(server_->url().rfind(':') + 1));
  CutProxy proxy(port);
  PgKvOptions through = options_;
  through.url = "postgresql://cairn@127.0.0.1:" + std::to_string(proxy.port()) +
                options_.url.substr(options_.url.rfind('/'));
  auto host = PgKvStore::Open(through);
  ASSERT_TRUE(host.ok()) << host.status();
  int runs = 0;
  auto increment = [&](KvTxn& t) -> absl::Status {
    ++runs;
    auto v = t.Get(KvSpace::kMeta, "n");
    if (!v.ok()) return v.status();
    t.Put(KvSpace::kMeta, "n", std::to_string(v->has_value() ? std::stoi(**v) + 1 : 1));
    return absl::OkStatus();
  };
  proxy.cut_after_commit = true;
  EXPECT_TRUE((*host)->Run(increment).ok());
  EXPECT_EQ(proxy.cuts.load(), 1);
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Committed(KvSpace::kMeta, "n"), "1");

  // When the server cannot be asked, the outcome is unknown: kUnavailable
  // that says so, and still no second run.
  proxy.cut_after_commit = true;
  proxy.refuse_after_cut = true;
  absl::Status st = (*host)->Run(increment);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find("may or may not have committed"), std::string::npos) << st;
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(Committed(KvSpace::kMeta, "n"), "2");  // it had committed
  proxy.refusing = false;
  EXPECT_TRUE((*host)->Run(increment).ok());
  EXPECT_EQ(Committed(KvSpace::kMeta, "n"), "3");

  // A body that read nothing sends its BEGIN with the COMMIT: when no
  // answer at all comes back, not even the transaction's id, the outcome
  // cannot be looked up. Reported as unknown, never run a second time.
  int blind_runs = 0;
  auto blind = [&](KvTxn& t) -> absl::Status {
    ++blind_runs;
    t.Put(KvSpace::kMeta, "blind", "x");
    return absl::OkStatus();
  };
  proxy.cut_after_commit = true;
  st = (*host)->Run(blind);
  EXPECT_EQ(proxy.cuts.load(), 3);
  EXPECT_EQ(blind_runs, 1);
  EXPECT_TRUE(st.ok() || (st.code() == absl::StatusCode::kUnavailable &&
                          st.message().find("may or may not have committed") != std::string::npos))
      << st;
  EXPECT_EQ(Committed(KvSpace::kMeta, "blind"), "x");
}

TEST_F(PgKvStoreTest, AStatementPastTheTimeoutIsCancelled) {
  PgKvOptions quick = options_;
  quick.statement_timeout_ms = 200;
  std::unique_ptr<PgKvStore> host = OpenHost(quick);
  ASSERT_NE(host, nullptr);
  // Another session holds the table, as a stuck or very slow one would.
  PGconn* pg = PQconnectdb(options_.url.c_str());
  PQclear(PQexec(pg, "BEGIN; LOCK TABLE cairn_kv IN ACCESS EXCLUSIVE MODE"));
  auto start = std::chrono::steady_clock::now();
  auto v = host->Reader().Get(KvSpace::kInodes, "x");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDeadlineExceeded) << v.status();
  absl::Status st = host->Run([](KvTxn& t) {
    t.Put(KvSpace::kInodes, "x", "1");
    return absl::OkStatus();
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  PQclear(PQexec(pg, "ROLLBACK"));
  PQfinish(pg);
  EXPECT_TRUE(host->Run([](KvTxn& t) {
                    t.Put(KvSpace::kInodes, "x", "1");
                    return absl::OkStatus();
                  }).ok());
  EXPECT_EQ(Committed(KvSpace::kInodes, "x"), "1");
}

TEST_F(PgKvStoreTest, DroppedTableIsReportedNotRecreated) {
  ASSERT_TRUE(store_->Run([](KvTxn& t) {
                      t.Put(KvSpace::kInodes, "x", "1");
                      return absl::OkStatus();
                    }).ok());
  // An operator's mistake, from another session.
  PGconn* pg = PQconnectdb(options_.url.c_str());
  PQclear(PQexec(pg, "DROP TABLE cairn_kv"));
  PQfinish(pg);
  auto v = store_->Reader().Get(KvSpace::kInodes, "x");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition) << v.status();
  absl::Status st = store_->Run([](KvTxn& t) {
    t.Put(KvSpace::kInodes, "y", "1");
    return absl::OkStatus();
  });
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("never recreates"), std::string::npos) << st;
  auto reopened = PgKvStore::Open(options_);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition) << reopened.status();
  EXPECT_NE(reopened.status().message().find("never recreates"), std::string::npos)
      << reopened.status();
}

// The server stops (as a crash) mid-workload: calls fail with kUnavailable
// while it is down, work again once it is back, and every commit that
// returned OK is there.
TEST(PgKvStoreRestartTest, ServerRestartFailsUnavailableThenResumesWithNothingLost) {
  std::unique_ptr<PgServer> server = StartPgServerForTest();
  if (server == nullptr) return;
  std::string why_not;
  PgKvOptions options;
  options.url = server->url();
  options.connect_timeout_s = 2;
  auto formatted = PgKvStore::Format(options);
  ASSERT_TRUE(formatted.ok()) << formatted.status();
  std::unique_ptr<PgKvStore> a = *std::move(formatted);
  auto opened = PgKvStore::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<PgKvStore> b = *std::move(opened);

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> acknowledged;
  std::atomic<int> unavailable{0}, other_errors{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      PgKvStore& host = w ? *b : *a;
      for (int i = 0; !stop; ++i) {
        std::string key = "w" + std::to_string(w) + "-" + std::to_string(i);
        absl::Status st = host.Run([&](KvTxn& t) {
          t.Put(KvSpace::kDentries, key, "v");
          t.AddToCounter("acked", 1);
          return absl::OkStatus();
        });
        if (st.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          acknowledged.insert(key);
        } else if (absl::IsUnavailable(st)) {
          ++unavailable;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        } else {
          ++other_errors;
          ADD_FAILURE() << st;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(server->Stop(/*crash=*/true, &why_not)) << why_not;
  auto down = a->Reader().Get(KvSpace::kDentries, "w0-0");
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable) << down.status();
  EXPECT_NE(down.status().message().find("127.0.0.1"), std::string::npos) << down.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(server->Restart(&why_not)) << why_not;
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  stop = true;
  for (auto& t : writers) t.join();
  EXPECT_GT(unavailable.load(), 0);
  EXPECT_EQ(other_errors.load(), 0);

  // Both hosts work again, and see every acknowledged commit.
  std::set<std::string> present;
  ASSERT_TRUE(b->Reader()
                  .Scan(KvSpace::kDentries, "", "",
                        [&](std::string_view k, std::string_view) {
                          present.emplace(k);
                          return true;
                        })
                  .ok());
  for (const std::string& k : acknowledged) EXPECT_TRUE(present.count(k)) << k << " was lost";
  // Commits whose answer was lost may be there too, never more.
  EXPECT_LE(present.size(), acknowledged.size() + 2);
  EXPECT_EQ(a->ReadCounter("acked").value(), static_cast<int64_t>(present.size()));
  EXPECT_TRUE(a->Run([](KvTxn& t) {
                 t.Put(KvSpace::kDentries, "after", "1");
                 return absl::OkStatus();
               }).ok());
}

}  // namespace
}  // namespace cairn
