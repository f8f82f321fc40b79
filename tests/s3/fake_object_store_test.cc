// The tests' in-memory bucket keeps S3Client's contract (what a missing key,
// a range past the end, a listing, a wrong checksum give), and its faults
// fire when armed and stop when cleared, also while other threads use it.
#include "tests/support/fake_object_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "tests/support/fake_clock.h"
#include "tests/support/random_bytes.h"

namespace cairn {
namespace {

using Fault = FakeObjectStore::Fault;
using Op = FakeObjectStore::Op;

std::optional<FsErrorKind> KindOf(const absl::Status& status) { return GetFsErrorKind(status); }

bool Mentions(const absl::Status& status, const std::string& text) {
  return status.message().find(text) != std::string::npos;
}

FakeObjectStore::Options SmallPages(int entries) {
  FakeObjectStore::Options options;
  options.page_entries = entries;
  return options;
}

TEST(FakeObjectStoreTest, MissingKeysAreNotFoundAndDeletingThemIsFine) {
  FakeObjectStore store;
  std::string data = RandomBytes(100000, 1);
  ASSERT_TRUE(store.PutObject("a/b", data, Crc32c(data)).ok());
  EXPECT_EQ(*store.GetObject("a/b"), data);
  absl::StatusOr<s3::ObjectInfo> info = store.HeadObject("a/b");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->size, data.size());
  EXPECT_FALSE(info->etag.empty());
  ASSERT_TRUE(store.PutObject("a/b", "other").ok());
  EXPECT_NE(store.HeadObject("a/b")->etag, info->etag) << "a new body, a new etag";

  absl::Status head = store.HeadObject("nope").status();
  EXPECT_EQ(KindOf(head), FsErrorKind::kNotFound) << head;
  EXPECT_EQ(head.message(), "S3 HEAD http://fake/bucket/nope: HTTP 404") << "HEAD has no body";
  absl::Status get = store.GetObject("nope").status();
  EXPECT_EQ(KindOf(get), FsErrorKind::kNotFound) << get;
  EXPECT_TRUE(Mentions(get, "NoSuchKey")) << get;

  EXPECT_TRUE(store.DeleteObject("nope").ok()) << "deleting what is gone is fine";
  ASSERT_TRUE(store.DeleteObject("a/b").ok());
  EXPECT_EQ(KindOf(store.GetObject("a/b").status()), FsErrorKind::kNotFound);
  EXPECT_TRUE(store.Keys().empty());
}

TEST(FakeObjectStoreTest, RangesPastTheEndAreShortOnlyWhenAllowed) {
  FakeObjectStore store;
  std::string data = RandomBytes(1000, 2);
  ASSERT_TRUE(store.PutObject("k", data).ok());
  EXPECT_EQ(*store.GetObject("k", std::make_pair(10, 90)), data.substr(10, 90));
  EXPECT_EQ(*store.GetObject("k", std::make_pair(990, 10)), data.substr(990));

  absl::StatusOr<std::string> past = store.GetObject("k", std::make_pair(900, 200));
  EXPECT_EQ(KindOf(past.status()), FsErrorKind::kIo) << past.status();
  EXPECT_TRUE(Mentions(past.status(), "returned 100 bytes for a range of 200")) << past.status();
  EXPECT_EQ(*store.GetObject("k", std::make_pair(900, 200), /*allow_short=*/true),
            data.substr(900));

  // A range that starts at or after the end is S3's 416, short or not.
  for (bool allow_short : {false, true}) {
    absl::Status after = store.GetObject("k", std::make_pair(1000, 1), allow_short).status();
    EXPECT_EQ(KindOf(after), FsErrorKind::kIo) << after;
    EXPECT_TRUE(Mentions(after, "InvalidRange")) << after;
  }
  ASSERT_TRUE(store.PutObject("empty", "").ok());
  EXPECT_EQ(*store.GetObject("empty"), "");
  EXPECT_FALSE(store.GetObject("empty", std::make_pair(0, 10), true).ok());

  // An empty range costs no request, as with S3Client, even for no key.
  const uint64_t requests = store.GetStats().requests;
  EXPECT_EQ(*store.GetObject("nope", std::make_pair(5, 0)), "");
  EXPECT_EQ(store.GetStats().requests, requests);
}

TEST(FakeObjectStoreTest, ListingsAreInKeyOrderAndEveryPageIsARequest) {
  FakeObjectStore store(SmallPages(3));
  for (const char* key : {"p/d", "p/a", "q/x", "p/c", "p/b", "o/z", "p/e", "p/"}) {
    ASSERT_TRUE(store.PutObject(key, key).ok());
  }
  absl::StatusOr<std::vector<s3::ObjectEntry>> listed = store.ListObjects("p/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> keys;
  for (const s3::ObjectEntry& entry : *listed) {
    keys.push_back(entry.key);
    EXPECT_EQ(entry.size, entry.key.size());
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"p/", "p/a", "p/b", "p/c", "p/d", "p/e"}));
  EXPECT_EQ(store.Requests(Op::kList), 2u) << "six keys in pages of three";
  EXPECT_EQ(store.ListObjects("")->size(), 8u);
  EXPECT_TRUE(store.ListObjects("r/")->empty());
  EXPECT_EQ(store.Requests(Op::kList), 2u + 3 + 1) << "an empty listing is one request";

  // A fault on the second page fails the listing: never half of one.
  store.FailAfter(1, Fault::kInternalError);
  absl::StatusOr<std::vector<s3::ObjectEntry>> half = store.ListObjects("p/");
  EXPECT_EQ(KindOf(half.status()), FsErrorKind::kIo) << half.status();
  store.SetOutage(false);
  EXPECT_EQ(store.ListObjects("p/")->size(), 6u);
}

TEST(FakeObjectStoreTest, ListPrefixesGivesTheDirectoriesRightUnderThePrefix) {
  FakeObjectStore store(SmallPages(2));
  for (const char* key : {"v/a/1", "v/a/2", "v/a/3/deep", "v/b/x/y", "v/c", "v/d/", "w/e/1", "v-/f"}) {
    ASSERT_TRUE(store.PutObject(key, "").ok());
  }
  absl::StatusOr<std::vector<std::string>> under_v = store.ListPrefixes("v/");
  ASSERT_TRUE(under_v.ok()) << under_v.status();
  EXPECT_EQ(*under_v, (std::vector<std::string>{"v/a/", "v/b/", "v/d/"})) << "not the key v/c";
  EXPECT_EQ(*store.ListPrefixes(""), (std::vector<std::string>{"v-/", "v/", "w/"}));
  EXPECT_EQ(*store.ListPrefixes("v/a/"), std::vector<std::string>{"v/a/3/"});
  EXPECT_TRUE(store.ListPrefixes("v/c")->empty());
}

TEST(FakeObjectStoreTest, APutWithAWrongChecksumIsRefusedAndStoresNothing) {
  FakeObjectStore store;
  ASSERT_TRUE(store.PutObject("k", "before", Crc32c("before")).ok());
  absl::Status refused = store.PutObject("k", "after", Crc32c("after") ^ 1);
  EXPECT_EQ(KindOf(refused), FsErrorKind::kIo) << refused;
  EXPECT_TRUE(Mentions(refused, "BadDigest")) << refused;
  EXPECT_EQ(*store.GetObject("k"), "before") << "the old object stays whole";
  EXPECT_FALSE(store.PutObject("new", "x", Crc32c("y")).ok());
  EXPECT_EQ(KindOf(store.HeadObject("new").status()), FsErrorKind::kNotFound);
  EXPECT_EQ(store.GetStats().failures, 3u) << "two refused puts and a HEAD of nothing";
}

TEST(FakeObjectStoreTest, UnfinishedUploadsAreListedByPrefixAndAborted) {
  FakeObjectStore store(SmallPages(2));
  std::string first = store.StartMultipartUpload("vol/blobs/00/1");
  std::string second = store.StartMultipartUpload("vol/blobs/00/1");
  std::string third = store.StartMultipartUpload("vol/blobs/01/2");
  store.StartMultipartUpload("other/3");
  absl::StatusOr<std::vector<s3::MultipartUpload>> open = store.ListMultipartUploads("vol/");
  ASSERT_TRUE(open.ok()) << open.status();
  ASSERT_EQ(open->size(), 3u);
  EXPECT_EQ((*open)[0].upload_id, first) << "one key's uploads in the order they began";
  EXPECT_EQ((*open)[1].upload_id, second);
  EXPECT_EQ((*open)[2].key, "vol/blobs/01/2");
  EXPECT_EQ(store.Requests(Op::kList), 2u);

  ASSERT_TRUE(store.AbortMultipartUpload("vol/blobs/00/1", first).ok());
  EXPECT_TRUE(store.AbortMultipartUpload("vol/blobs/00/1", first).ok()) << "already gone is fine";
  EXPECT_TRUE(store.AbortMultipartUpload("vol/blobs/01/2", second).ok()) << "not its key";
  EXPECT_EQ(store.ListMultipartUploads("vol/")->size(), 2u);
  store.FailNext(1, Fault::kSlowDown, Op::kDelete);
  EXPECT_FALSE(store.AbortMultipartUpload("vol/blobs/01/2", third).ok());
  ASSERT_TRUE(store.AbortMultipartUpload("vol/blobs/01/2", third).ok());
  EXPECT_EQ(store.OpenUploads().size(), 2u);
}

TEST(FakeObjectStoreTest, DeleteObjectsGoesInBatchesOfAPage) {
  FakeObjectStore store(SmallPages(2));
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) {
    keys.push_back(absl::StrCat("k", i));
    ASSERT_TRUE(store.PutObject(keys.back(), "v").ok());
  }
  keys.push_back("never-there");
  ASSERT_TRUE(store.DeleteObjects(keys).ok());
  EXPECT_TRUE(store.Keys().empty());
  EXPECT_EQ(store.Requests(Op::kDelete), 3u);
  ASSERT_TRUE(store.DeleteObjects({}).ok());
  EXPECT_EQ(store.Requests(Op::kDelete), 3u) << "nothing to delete, no request";
}

TEST(FakeObjectStoreTest, EachFaultFailsAsS3ClientWouldAndThenClears) {
  FakeObjectStore store;
  ASSERT_TRUE(store.PutObject("k", "v").ok());
  struct Expected {
    Fault fault;
    FsErrorKind kind;
    const char* text;
  };
  for (const Expected& e : std::vector<Expected>{
           {Fault::kNetworkError, FsErrorKind::kIo, "cannot reach the server"},
           {Fault::kSlowDown, FsErrorKind::kIo, "SlowDown (HTTP 503)"},
           {Fault::kInternalError, FsErrorKind::kIo, "InternalError (HTTP 500)"},
           {Fault::kAccessDenied, FsErrorKind::kAccessDenied, "AccessDenied (HTTP 403)"},
           {Fault::kNoSuchBucket, FsErrorKind::kNotFound, "create the bucket"}}) {
    SCOPED_TRACE(e.text);
    store.FailNext(2, e.fault);
    for (int i = 0; i < 2; ++i) {
      absl::Status failed = store.GetObject("k").status();
      EXPECT_EQ(KindOf(failed), e.kind) << failed;
      EXPECT_TRUE(Mentions(failed, e.text)) << failed;
      EXPECT_TRUE(Mentions(failed, "S3 GET http://fake/bucket/k")) << failed;
    }
    EXPECT_EQ(*store.GetObject("k"), "v") << "two, then no more";
  }
  // A missing bucket is no missing key: deleting from it fails.
  store.FailNext(1, Fault::kNoSuchBucket);
  EXPECT_EQ(KindOf(store.DeleteObject("k")), FsErrorKind::kNotFound);
  EXPECT_TRUE(store.Object("k").has_value());
}

TEST(FakeObjectStoreTest, FaultsAimedAtOneOperationSpareTheOthers) {
  FakeObjectStore store;
  ASSERT_TRUE(store.PutObject("k", "v").ok());
  store.FailNext(1000, Fault::kInternalError, Op::kGet);
  store.FailNext(1, Fault::kAccessDenied, Op::kPut);
  EXPECT_EQ(KindOf(store.PutObject("k", "w")), FsErrorKind::kAccessDenied);
  EXPECT_TRUE(store.PutObject("k", "w").ok());
  EXPECT_TRUE(store.HeadObject("k").ok());
  EXPECT_TRUE(store.ListObjects("").ok());
  EXPECT_FALSE(store.GetObject("k").ok());
  EXPECT_EQ(*store.Object("k"), "w");
  store.ClearFaults();
  EXPECT_EQ(*store.GetObject("k"), "w");
}

TEST(FakeObjectStoreTest, AnOutageFailsEverythingUntilItEnds) {
  FakeObjectStore store;
  ASSERT_TRUE(store.PutObject("k", "v").ok());
  store.StartMultipartUpload("k");
  store.SetOutage(true);
  EXPECT_EQ(KindOf(store.PutObject("k", "w")), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.GetObject("k").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.HeadObject("k").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.DeleteObject("k")), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.DeleteObjects({"k"})), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.ListObjects("").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.ListPrefixes("").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.ListMultipartUploads("").status()), FsErrorKind::kIo);
  EXPECT_EQ(KindOf(store.AbortMultipartUpload("k", "x")), FsErrorKind::kIo);
  EXPECT_EQ(*store.Object("k"), "v") << "nothing reached the bucket";
  EXPECT_EQ(store.GetStats().failures, 9u);
  store.SetOutage(false);
  EXPECT_EQ(*store.GetObject("k"), "v");
}

TEST(FakeObjectStoreTest, FailAfterLetsThatManyThroughThenStaysDown) {
  FakeObjectStore store;
  store.FailAfter(2);
  EXPECT_TRUE(store.PutObject("a", "1").ok());
  EXPECT_TRUE(store.PutObject("b", "2").ok());
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(store.GetObject("a").ok()) << i;
  store.SetOutage(false);
  EXPECT_TRUE(store.GetObject("a").ok());
  // And 0 means at once; SetOutage(false) also calls off one not yet begun.
  store.FailAfter(0, Fault::kAccessDenied);
  EXPECT_EQ(KindOf(store.GetObject("a").status()), FsErrorKind::kAccessDenied);
  store.SetOutage(false);
  store.FailAfter(5);
  store.SetOutage(false);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(store.HeadObject("a").ok()) << i;
}

TEST(FakeObjectStoreTest, LatencyIsWaitedOnTheStoresClock) {
  FakeClock clock;
  FakeObjectStore::Options options;
  options.clock = &clock;
  FakeObjectStore store(options);
  store.SetLatency(absl::Seconds(2));
  const int64_t start = clock.MonotonicNanos();
  ASSERT_TRUE(store.PutObject("k", "v").ok());
  store.SetOutage(true);
  EXPECT_FALSE(store.GetObject("k").ok());
  EXPECT_EQ(clock.MonotonicNanos() - start, 4'000'000'000) << "failed requests wait too";
  store.ClearFaults();
  ASSERT_TRUE(store.GetObject("k").ok());
  EXPECT_EQ(clock.MonotonicNanos() - start, 4'000'000'000);
}

TEST(FakeObjectStoreTest, DamagedBodiesAreWrongYetReportSuccess) {
  FakeObjectStore store;
  std::string data = RandomBytes(1000, 3);
  ASSERT_TRUE(store.PutObject("k", data).ok());
  store.DamageNextGets(1, FakeObjectStore::BodyDamage::kFlipByte);
  absl::StatusOr<std::string> flipped = store.GetObject("k");
  ASSERT_TRUE(flipped.ok()) << flipped.status();
  ASSERT_EQ(flipped->size(), data.size());
  int differing = 0;
  for (size_t i = 0; i < data.size(); ++i) differing += (*flipped)[i] != data[i];
  EXPECT_EQ(differing, 1);
  EXPECT_EQ(*store.GetObject("k"), data) << "one, then no more";

  // Short even where S3Client would refuse a short range: callers must check.
  store.DamageNextGets(2, FakeObjectStore::BodyDamage::kShortBody);
  absl::StatusOr<std::string> short_range = store.GetObject("k", std::make_pair(100, 400));
  ASSERT_TRUE(short_range.ok()) << short_range.status();
  EXPECT_EQ(*short_range, data.substr(100, 200));
  EXPECT_EQ(*store.GetObject("k"), data.substr(0, 500));
  EXPECT_EQ(*store.GetObject("k"), data);
  // A failed GET does not use up the damage.
  store.DamageNextGets(1, FakeObjectStore::BodyDamage::kShortBody);
  EXPECT_FALSE(store.GetObject("nope").ok());
  EXPECT_EQ(store.GetObject("k")->size(), 500u);
  EXPECT_EQ(*store.Object("k"), data) << "the stored object is intact";
}

TEST(FakeObjectStoreTest, HooksFailOneKeyAndRewriteBodies) {
  FakeObjectStore store;
  ASSERT_TRUE(store.PutObject("good", "g").ok());
  ASSERT_TRUE(store.PutObject("bad", "b").ok());
  store.SetRequestHook([](Op op, const std::string& key) -> std::optional<Fault> {
    if (key == "bad" && op != Op::kHead) return Fault::kAccessDenied;
    return std::nullopt;
  });
  store.SetBodyHook([](Op op, const std::string& key, std::string* body) {
    if (op == Op::kGet) *body += "!";
  });
  EXPECT_EQ(*store.GetObject("good"), "g!");
  EXPECT_EQ(KindOf(store.GetObject("bad").status()), FsErrorKind::kAccessDenied);
  EXPECT_EQ(KindOf(store.DeleteObject("bad")), FsErrorKind::kAccessDenied);
  EXPECT_TRUE(store.HeadObject("bad").ok());
  EXPECT_TRUE(store.Object("bad").has_value()) << "a refused delete deletes nothing";
  store.ClearFaults();
  EXPECT_EQ(*store.GetObject("bad"), "b");
  // A body changed on the way up: refused with its checksum, stored
  // changed without.
  store.SetBodyHook([](Op op, const std::string& key, std::string* body) {
    if (op == Op::kPut) (*body)[0] ^= 1;
  });
  EXPECT_FALSE(store.PutObject("good", "new", Crc32c("new")).ok());
  EXPECT_EQ(*store.Object("good"), "g");
  ASSERT_TRUE(store.PutObject("good", "new").ok());
  EXPECT_EQ(*store.Object("good"), "oew");
}

TEST(FakeObjectStoreTest, StatsCountRequestsFailuresAndBytes) {
  FakeObjectStore store;
  ASSERT_TRUE(store.PutObject("k", std::string(1000, 'x')).ok());
  ASSERT_TRUE(store.GetObject("k", std::make_pair(0, 300)).ok());
  EXPECT_FALSE(store.GetObject("missing").ok());
  store.FailNext(1, Fault::kSlowDown);
  EXPECT_FALSE(store.PutObject("k", "y").ok());
  s3::ObjectStoreStats stats = store.GetStats();
  EXPECT_EQ(stats.requests, 4u);
  EXPECT_EQ(stats.failures, 2u);
  EXPECT_EQ(stats.retries, 0u);
  EXPECT_EQ(stats.bytes_sent, 1000u) << "the throttled put never arrived";
  EXPECT_EQ(stats.bytes_received, 300u);
  EXPECT_EQ(store.Requests(Op::kPut), 2u);
  EXPECT_EQ(store.Requests(Op::kGet), 2u);
  EXPECT_EQ(store.Requests(Op::kHead), 0u);
}

TEST(FakeObjectStoreTest, TheFactoryHandsOutOneBucketPerEndpointAndName) {
  FakeObjectStoreFactory factory;
  s3::S3Options options;
  options.endpoint = "http://fake";
  options.bucket = "tier";
  options.credentials = {"AKID", "secret", ""};
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> first = factory.Open(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.endpoint = "http://fake/";
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> second = factory.Open(options);
  ASSERT_TRUE(second.ok()) << second.status();
  options.bucket = "replica";
  absl::StatusOr<std::unique_ptr<s3::ObjectStore>> other = factory.Open(options);
  ASSERT_TRUE(other.ok()) << other.status();

  ASSERT_TRUE((*first)->PutObject("k", "v").ok());
  EXPECT_EQ(*(*second)->GetObject("k"), "v") << "the same bucket";
  EXPECT_EQ(KindOf((*other)->GetObject("k").status()), FsErrorKind::kNotFound);
  FakeObjectStore& tier = factory.Bucket("http://fake", "tier");
  EXPECT_EQ(tier.Keys(), std::vector<std::string>{"k"});
  tier.SetOutage(true);
  EXPECT_FALSE((*second)->GetObject("k").ok()) << "faults reach every handle";
  EXPECT_TRUE((*other)->ListObjects("").ok()) << "and no other bucket";
  tier.SetOutage(false);
  EXPECT_EQ(factory.Opened().size(), 3u);
  first->reset();
  EXPECT_EQ(*(*second)->GetObject("k"), "v") << "a closed handle leaves the bucket";

  // What S3Client::Create refuses, refused the same way.
  for (const char* endpoint : {"fake", "ftp://fake", "http://", "http://fake/path"}) {
    s3::S3Options bad = options;
    bad.endpoint = endpoint;
    EXPECT_EQ(KindOf(factory.Open(bad).status()), FsErrorKind::kInvalid) << endpoint;
  }
  s3::S3Options no_bucket = options;
  no_bucket.bucket = "";
  EXPECT_EQ(KindOf(factory.Open(no_bucket).status()), FsErrorKind::kInvalid);
  s3::S3Options no_secret = options;
  no_secret.credentials.secret_access_key = "";
  EXPECT_EQ(KindOf(factory.Open(no_secret).status()), FsErrorKind::kInvalid);
  EXPECT_EQ(factory.Opened().size(), 3u);
}

// Requests from several threads while the test thread arms and clears
// faults: every answer is one the fault model allows, and the counters
// add up (run under ThreadSanitizer).
TEST(FakeObjectStoreTest, FaultsArmedFromTheTestThreadWhileOthersUseTheBucket) {
  FakeClock clock;
  FakeObjectStore::Options options;
  options.clock = &clock;
  options.page_entries = 4;
  FakeObjectStore store(options);
  constexpr int kThreads = 4, kRounds = 400;
  std::atomic<bool> go{false};
  std::atomic<int> running{kThreads};
  std::atomic<uint64_t> errors{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < kRounds; ++i) {
        const std::string key = absl::StrCat("k/", (t * 7 + i) % 16);
        const std::string value = absl::StrCat("value ", t, " ", i);
        errors += !store.PutObject(key, value, Crc32c(value)).ok();
        absl::StatusOr<std::string> got = store.GetObject(key);
        if (!got.ok()) {
          errors++;
        } else if (got->rfind("value ", 0) != 0) {
          wrong++;  // no damage is armed: every body is some thread's value
        }
        // A failed listing failed on one page; the pages before it count
        // as requests, not failures.
        errors += !store.ListObjects("k/").ok();
      }
      running--;
    });
  }
  go = true;
  // Arms and clears faults for as long as the requests run.
  for (int i = 0; running > 0; ++i) {
    switch (i % 6) {
      case 0: store.SetOutage(true); break;
      case 1: store.SetOutage(false); break;
      case 2: store.FailNext(3, Fault::kSlowDown, Op::kGet); break;
      case 3: store.FailAfter(5, Fault::kInternalError); break;
      case 4: store.SetLatency(absl::Milliseconds(i % 100)); break;
      case 5: store.ClearFaults(); break;
    }
    std::this_thread::yield();
  }
  store.ClearFaults();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0u);
  s3::ObjectStoreStats stats = store.GetStats();
  EXPECT_EQ(stats.failures, errors.load());
  EXPECT_GE(stats.requests, static_cast<uint64_t>(3 * kThreads * kRounds));
  ASSERT_TRUE(store.PutObject("k/0", "after").ok());
  EXPECT_EQ(*store.GetObject("k/0"), "after");
}

}  // namespace
}  // namespace cairn
