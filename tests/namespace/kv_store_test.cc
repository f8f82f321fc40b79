// What every KvStore engine promises (kv_store.h), run against each engine:
// key order and bounds, a transaction seeing its own writes, an error
// leaving nothing behind, counters, and sequences that never repeat. A new
// engine joins by adding itself to Engines(): RocksDB, and PostgreSQL on a
// private server of the test binary.
#include "backend/namespace/kv_store.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "backend/namespace/pg_kv_store.h"
#include "backend/namespace/rocks_kv_store.h"
#include "gtest/gtest.h"
#include "tests/support/pg_server.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

struct KvEngine {
  std::string name;
  // Opens the store kept in `dir`, creating it the first time.
  std::function<absl::StatusOr<std::unique_ptr<KvStore>>(const std::string& dir)> open;
  // Why the engine cannot run here ("" when it can): only for an engine
  // whose server is not installed (CI installs them all).
  std::function<std::string()> why_skip;
};

// PostgreSQL: a database per test directory on the binary's private server
// (tests/pg-server.sh), formatted at the first open and opened after.
absl::StatusOr<std::unique_ptr<KvStore>> OpenPgKvStore(const std::string& dir) {
  std::string why_not;
  bool missing;
  PgServer* server = SharedPgServer(&why_not, &missing);
  if (server == nullptr) return absl::UnavailableError(why_not);
  PgKvOptions options;
  const std::string url_file = dir + "/postgresql-url";
  if (std::ifstream in(url_file); std::getline(in, options.url)) {
    absl::StatusOr<std::unique_ptr<PgKvStore>> opened = PgKvStore::Open(options);
    if (!opened.ok()) return opened.status();
    return std::unique_ptr<KvStore>(std::move(*opened));
  }
  std::string error;
  options.url = server->CreateDatabase("kv" + dir.substr(dir.rfind('/') + 1), &error);
  if (options.url.empty()) return absl::InternalError(error);
  absl::StatusOr<std::unique_ptr<PgKvStore>> formatted = PgKvStore::Format(options);
  if (!formatted.ok()) return formatted.status();
  std::ofstream(url_file) << options.url << "\n";
  return std::unique_ptr<KvStore>(std::move(*formatted));
}

std::vector<KvEngine> Engines() {
  return {
      {"rocksdb",
       [](const std::string& dir) {
         RocksKvOptions options;
         options.create_if_missing = true;
         options.cache_bytes = 8 << 20;
         options.write_buffer_bytes = 4 << 20;
         return OpenRocksKvStore(dir + "/rocks", options);
       }},
      {"postgresql", OpenPgKvStore,
       [] {
         std::string why_not;
         bool missing;
         return SharedPgServer(&why_not, &missing) == nullptr && missing ? why_not
                                                                          : std::string();
       }},
  };
}

class KvStoreTest : public ::testing::TestWithParam<KvEngine> {
 protected:
  void SetUp() override {
    if (GetParam().why_skip) {
      if (std::string why = GetParam().why_skip(); !why.empty()) GTEST_SKIP() << why;
    }
    Reopen();
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<KvStore>> opened = GetParam().open(dir_.path());
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
  }
  void Put(KvSpace space, const std::string& key, const std::string& value) {
    ASSERT_TRUE(store_->Run([&](KvTxn& txn) {
                        txn.Put(space, key, value);
                        return absl::OkStatus();
                      })
                    .ok());
  }
  std::optional<std::string> Get(KvReader& reader, KvSpace space, const std::string& key) {
    absl::StatusOr<std::optional<std::string>> got = reader.Get(space, key);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::nullopt;
  }
  std::vector<std::string> Keys(KvReader& reader, KvSpace space, std::string_view start,
                                std::string_view end, size_t max = 1000) {
    std::vector<std::string> keys;
    absl::Status s = reader.Scan(space, start, end, [&](std::string_view key, std::string_view) {
      keys.emplace_back(key);
      return keys.size() < max;
    });
    EXPECT_TRUE(s.ok()) << s;
    return keys;
  }

  TempDir dir_;
  std::unique_ptr<KvStore> store_;
};

using Strings = std::vector<std::string>;

TEST_P(KvStoreTest, GetFindsWhatACommitPutAndSpacesAreApart) {
  Put(KvSpace::kInodes, "k", "inode");
  Put(KvSpace::kDentries, "k", "entry");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kInodes, "k"), "inode");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kDentries, "k"), "entry");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kXattrs, "k"), std::nullopt);
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kInodes, "absent"), std::nullopt);
  Put(KvSpace::kInodes, "empty", "");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kInodes, "empty"), "");
}

TEST_P(KvStoreTest, MultiGetAnswersInTheOrderAsked) {
  Put(KvSpace::kBlobs, "b", "2");
  Put(KvSpace::kBlobs, "a", "1");
  const Strings keys = {"b", "missing", "a", "b"};
  absl::StatusOr<std::vector<std::optional<std::string>>> got =
      store_->Reader().MultiGet(KvSpace::kBlobs, keys);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, (std::vector<std::optional<std::string>>{"2", std::nullopt, "1", "2"}));
}

TEST_P(KvStoreTest, GetEachReadsKeysOfSeveralSpacesInTheOrderAsked) {
  Put(KvSpace::kInodes, "k", "inode");
  Put(KvSpace::kDentries, "k", "entry");
  const std::vector<KvReader::SpaceKey> keys = {{KvSpace::kDentries, "k"},
                                                {KvSpace::kXattrs, "k"},
                                                {KvSpace::kInodes, "k"},
                                                {KvSpace::kDentries, "k"}};
  auto got = store_->Reader().GetEach(keys);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, (std::vector<std::optional<std::string>>{"entry", std::nullopt, "inode",
                                                           "entry"}));
}

// Keys a transaction prefetched read as they were, and its own writes,
// before or after the prefetch, shadow what it fetched.
TEST_P(KvStoreTest, PrefetchedKeysReadAsFetchedUnderTheTransactionsOwnWrites) {
  Put(KvSpace::kInodes, "a", "1");
  Put(KvSpace::kDentries, "b", "2");
  int runs = 0;
  absl::Status s = store_->Run([&](KvTxn& txn) {
    ++runs;
    txn.Put(KvSpace::kInodes, "a", "mine");
    txn.Prefetch({{KvSpace::kInodes, "a"}, {KvSpace::kDentries, "b"}, {KvSpace::kMeta, "none"}});
    EXPECT_EQ(Get(txn, KvSpace::kInodes, "a"), "mine");
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "b"), "2");
    EXPECT_EQ(Get(txn, KvSpace::kMeta, "none"), std::nullopt);
    txn.Delete(KvSpace::kDentries, "b");
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "b"), std::nullopt);
    auto each = txn.GetEach({{KvSpace::kDentries, "b"}, {KvSpace::kInodes, "a"}});
    EXPECT_TRUE(each.ok());
    if (each.ok()) {
      EXPECT_EQ(*each, (std::vector<std::optional<std::string>>{std::nullopt, "mine"}));
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_GE(runs, 1);
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kInodes, "a"), "mine");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kDentries, "b"), std::nullopt);
}

TEST_P(KvStoreTest, ScanWalksBytewiseOrderWithinBounds) {
  // Bytewise, unsigned: "\xff" after "z", "\0" inside keys kept.
  const Strings all = {std::string("a\0b", 3), "a", "ab", "b", "z", "\x80", "\xff\xff"};
  ASSERT_TRUE(store_->Run([&](KvTxn& txn) {
                      for (const std::string& key : all) txn.Put(KvSpace::kExtents, key, key);
                      txn.Put(KvSpace::kGc, "other space", "");
                      return absl::OkStatus();
                    })
                  .ok());
  const Strings sorted = {"a", std::string("a\0b", 3), "ab", "b", "z", "\x80", "\xff\xff"};
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kExtents, "", ""), sorted);
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kExtents, "ab", "z"), (Strings{"ab", "b"}));
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kExtents, "aa", "b"), (Strings{"ab"}));
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kExtents, "z", ""), (Strings{"z", "\x80", "\xff\xff"}));
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kExtents, "", "", 2),
            (Strings{"a", std::string("a\0b", 3)}));
  EXPECT_TRUE(Keys(store_->Reader(), KvSpace::kExtents, "c", "d").empty());
  absl::Status s = store_->Reader().Scan(KvSpace::kExtents, "b", "c",
                                         [](std::string_view key, std::string_view value) {
                                           EXPECT_EQ(key, value);
                                           return true;
                                         });
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(KvStoreTest, LastFindsTheGreatestKeyInRange) {
  for (const char* key : {"a1", "a3", "a5", "b1"}) Put(KvSpace::kExtents, key, key);
  auto last = [&](std::string_view start, std::string_view end) -> std::optional<std::string> {
    absl::StatusOr<std::optional<KvReader::KeyValue>> got =
        store_->Reader().Last(KvSpace::kExtents, start, end);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || !got->has_value()) return std::nullopt;
    EXPECT_EQ((*got)->first, (*got)->second);
    return (*got)->first;
  };
  EXPECT_EQ(last("a", "a4"), "a3");
  EXPECT_EQ(last("a", "a3"), "a1");  // the end is not included
  EXPECT_EQ(last("a", std::string("a3\0", 3)), "a3");
  EXPECT_EQ(last("a2", "a3"), std::nullopt);
  EXPECT_EQ(last("a", "b"), "a5");
  EXPECT_EQ(last("a", ""), "b1");
  EXPECT_EQ(last("c", ""), std::nullopt);
}

TEST_P(KvStoreTest, ScanFromLastBeforeGivesTheLastBeforeThenTheRange) {
  for (const char* key : {"a1", "a3", "a5", "b1"}) Put(KvSpace::kExtents, key, key);
  auto scan = [&](std::string_view floor, std::string_view start, std::string_view end,
                  size_t stop_after = SIZE_MAX) {
    Strings keys;
    absl::Status s = store_->Reader().ScanFromLastBefore(
        KvSpace::kExtents, floor, start, end, [&](std::string_view key, std::string_view value) {
          EXPECT_EQ(key, value);
          keys.emplace_back(key);
          return keys.size() < stop_after;
        });
    EXPECT_TRUE(s.ok()) << s;
    return keys;
  };
  EXPECT_EQ(scan("a", "a4", "b"), (Strings{"a3", "a5"}));
  EXPECT_EQ(scan("a", std::string("a3\0", 3), "a5"), (Strings{"a3"}));
  EXPECT_EQ(scan("a", "a0", "a4"), (Strings{"a1", "a3"})) << "nothing before";
  EXPECT_EQ(scan("a2", "a3", ""), (Strings{"a3", "a5", "b1"})) << "the floor bounds the last";
  EXPECT_EQ(scan("a", "a4", "", 1), (Strings{"a3"})) << "stops when told";
  EXPECT_EQ(scan("a", "a4", "", 2), (Strings{"a3", "a5"}));
  // A range longer than an engine's page.
  Strings many;
  for (int i = 0; i < 300; ++i) many.push_back(absl::StrFormat("c%03d", i));
  ASSERT_TRUE(store_->Run([&](KvTxn& txn) {
                      for (const std::string& key : many) txn.Put(KvSpace::kExtents, key, key);
                      return absl::OkStatus();
                    }).ok());
  Strings expected = {"b1"};
  expected.insert(expected.end(), many.begin(), many.end());
  EXPECT_EQ(scan("a", "c", "d"), expected);
}

TEST_P(KvStoreTest, ATransactionReadsItsOwnWrites) {
  for (const char* key : {"a", "c", "e"}) Put(KvSpace::kDentries, key, "old");
  absl::Status s = store_->Run([&](KvTxn& txn) {
    txn.Put(KvSpace::kDentries, "b", "new");
    txn.Put(KvSpace::kDentries, "c", "changed");
    txn.Delete(KvSpace::kDentries, "e");
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "b"), "new");
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "c"), "changed");
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "e"), std::nullopt);
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "a"), "old");
    absl::StatusOr<std::vector<std::optional<std::string>>> many =
        txn.MultiGet(KvSpace::kDentries, Strings{"a", "b", "e"});
    EXPECT_TRUE(many.ok());
    if (many.ok()) {
      EXPECT_EQ(*many, (std::vector<std::optional<std::string>>{"old", "new", std::nullopt}));
    }
    EXPECT_EQ(Keys(txn, KvSpace::kDentries, "", ""), (Strings{"a", "b", "c"}));
    EXPECT_EQ(Keys(txn, KvSpace::kDentries, "b", "c"), (Strings{"b"}));
    absl::StatusOr<std::optional<KvReader::KeyValue>> last = txn.Last(KvSpace::kDentries, "", "");
    EXPECT_TRUE(last.ok() && last->has_value() && (*last)->first == "c" &&
                (*last)->second == "changed");
    // Outside the transaction nothing has happened yet.
    EXPECT_EQ(Get(store_->Reader(), KvSpace::kDentries, "b"), std::nullopt);
    EXPECT_EQ(Get(store_->Reader(), KvSpace::kDentries, "e"), "old");
    // Writes after those reads are seen too.
    txn.Put(KvSpace::kDentries, "d", "later");
    txn.Delete(KvSpace::kDentries, "a");
    EXPECT_EQ(Get(txn, KvSpace::kDentries, "d"), "later");
    EXPECT_EQ(Keys(txn, KvSpace::kDentries, "", ""), (Strings{"b", "c", "d"}));
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kDentries, "", ""), (Strings{"b", "c", "d"}));
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kDentries, "c"), "changed");
}

TEST_P(KvStoreTest, ABodyThatFailsLeavesNothing) {
  Put(KvSpace::kMeta, "kept", "1");
  absl::Status s = store_->Run([&](KvTxn& txn) {
    txn.Put(KvSpace::kMeta, "kept", "2");
    txn.Put(KvSpace::kInodes, "new", "x");
    txn.Delete(KvSpace::kMeta, "kept");
    txn.AddToCounter("c:test", 5);
    return absl::NotFoundError("changed my mind");
  });
  EXPECT_EQ(s, absl::NotFoundError("changed my mind"));
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kMeta, "kept"), "1");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kInodes, "new"), std::nullopt);
  absl::StatusOr<int64_t> counter = store_->ReadCounter("c:test");
  ASSERT_TRUE(counter.ok());
  EXPECT_EQ(*counter, 0);
  Reopen();
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kMeta, "kept"), "1");
  EXPECT_EQ(Get(store_->Reader(), KvSpace::kInodes, "new"), std::nullopt);
}

TEST_P(KvStoreTest, CountersAddUpStayAtLeastZeroAndSurviveReopen) {
  auto add = [&](int64_t a, int64_t b) {
    ASSERT_TRUE(store_->Run([&](KvTxn& txn) {
                        txn.AddToCounter("c:one", a);
                        txn.AddToCounter("c:two", b);
                        return absl::OkStatus();
                      })
                    .ok());
  };
  add(3, 10);
  add(4, -3);
  EXPECT_EQ(*store_->ReadCounter("c:one"), 7);
  EXPECT_EQ(*store_->ReadCounter("c:two"), 7);
  add(-10, 0);
  EXPECT_EQ(*store_->ReadCounter("c:one"), 0);
  ASSERT_TRUE(store_->Sync().ok());
  Reopen();
  EXPECT_EQ(*store_->ReadCounter("c:one"), 0);
  EXPECT_EQ(*store_->ReadCounter("c:two"), 7);
  EXPECT_EQ(*store_->ReadCounter("c:never"), 0);
}

TEST_P(KvStoreTest, AllocateNeverRepeatsAcrossReopen) {
  absl::StatusOr<uint64_t> peek = store_->Allocate("c:seq", 5, 0);
  ASSERT_TRUE(peek.ok());
  EXPECT_EQ(*peek, 5u);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [first, end)
  for (int round = 0; round < 3; ++round) {
    for (uint64_t count : {1, 1024, 7}) {
      absl::StatusOr<uint64_t> first = store_->Allocate("c:seq", 5, count);
      ASSERT_TRUE(first.ok()) << first.status();
      EXPECT_GE(*first, 5u);
      ranges.emplace_back(*first, *first + count);
    }
    absl::StatusOr<uint64_t> next = store_->Allocate("c:seq", 5, 0);
    ASSERT_TRUE(next.ok());
    EXPECT_GE(*next, ranges.back().second);
    Reopen();  // without Sync: the log keeps what was handed out
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    EXPECT_LE(ranges[i - 1].second, ranges[i].first) << "range " << i << " overlaps";
  }
  absl::StatusOr<uint64_t> other = store_->Allocate("c:other", 1, 1);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, 1u);  // sequences are apart
}

TEST_P(KvStoreTest, CommitsSurviveReopen) {
  Put(KvSpace::kOrphans, "o", "");
  ASSERT_TRUE(store_->Run([&](KvTxn& txn) {
                      txn.Delete(KvSpace::kOrphans, "o");
                      txn.Put(KvSpace::kOrphans, "p", "v");
                      return absl::OkStatus();
                    })
                  .ok());
  ASSERT_TRUE(store_->Sync().ok());
  Reopen();
  EXPECT_EQ(Keys(store_->Reader(), KvSpace::kOrphans, "", ""), (Strings{"p"}));
}

INSTANTIATE_TEST_SUITE_P(Engines, KvStoreTest, ::testing::ValuesIn(Engines()),
                         [](const ::testing::TestParamInfo<KvEngine>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace cairn
