// The sweep of a shared volume's bucket (backend/services/
// shared_blob_sweep.h): blobs as objects in a real S3 server (s3rver,
// whose clock is the one that ages them) or in the in-memory bucket with a
// fake clock (for the hour-long default floor), the namespace over RocksDB
// behind TestKvStore, which says whether this host leads.
#include "backend/services/shared_blob_sweep.h"

#include <sys/stat.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "backend/base/fs_error.h"
#include "backend/namespace/kv_namespace.h"
#include "backend/namespace/rocks_kv_store.h"
#include "backend/s3/s3_client.h"
#include "gtest/gtest.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/random_bytes.h"
#include "tests/support/s3rver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_kv_store.h"

namespace cairn {
namespace {

const std::string kVolume = "0123456789abcdef0123456789abcdef";

// The bucket as the sweep sees it, with a hook run after each page is
// listed (another host's commit, a change of leader), and a server that
// can be made to tell no time.
class HookedStore final : public s3::ObjectStore {
 public:
  explicit HookedStore(s3::ObjectStore& inner) : inner_(inner) {}

  std::function<void()> after_page;
  bool hide_server_time = false;
  int pages = 0;

  absl::StatusOr<s3::ObjectPage> ListObjectsPage(const std::string& prefix,
                                                 const std::string& start_after,
                                                 int max_keys) override {
    absl::StatusOr<s3::ObjectPage> page = inner_.ListObjectsPage(prefix, start_after, max_keys);
    pages++;
    if (page.ok() && hide_server_time) page->server_time = 0;
    if (after_page) after_page();
    return page;
  }
  absl::Status PutObject(const std::string& key, std::string_view data,
                         std::optional<uint32_t> crc32c) override {
    return inner_.PutObject(key, data, crc32c);
  }
  absl::StatusOr<std::string> GetObject(const std::string& key,
                                        std::optional<std::pair<uint64_t, uint64_t>> range,
                                        bool allow_short) override {
    return inner_.GetObject(key, range, allow_short);
  }
  absl::StatusOr<s3::ObjectInfo> HeadObject(const std::string& key) override {
    return inner_.HeadObject(key);
  }
  absl::Status DeleteObject(const std::string& key) override { return inner_.DeleteObject(key); }
  absl::Status DeleteObjects(const std::vector<std::string>& keys) override {
    return inner_.DeleteObjects(keys);
  }
  absl::StatusOr<std::vector<s3::ObjectEntry>> ListObjects(const std::string& prefix) override {
    return inner_.ListObjects(prefix);
  }
  absl::StatusOr<std::vector<std::string>> ListPrefixes(const std::string& prefix) override {
    return inner_.ListPrefixes(prefix);
  }
  absl::StatusOr<std::vector<s3::MultipartUpload>> ListMultipartUploads(
      const std::string& prefix) override {
    return inner_.ListMultipartUploads(prefix);
  }
  absl::Status AbortMultipartUpload(const std::string& key,
                                    const std::string& upload_id) override {
    return inner_.AbortMultipartUpload(key, upload_id);
  }
  s3::ObjectStoreStats GetStats() override { return inner_.GetStats(); }

 private:
  s3::ObjectStore& inner_;
};

class SharedBlobSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RocksKvOptions engine;
    engine.create_if_missing = true;
    auto kv = OpenRocksKvStore(dir_.path() + "/ns", engine);
    ASSERT_TRUE(kv.ok()) << kv.status();
    auto test_kv = std::make_unique<TestKvStore>(std::shared_ptr<KvStore>(std::move(*kv)),
                                                 TestKvStore::Options{});
    kv_ = test_kv.get();
    NamespaceOptions ns_options;
    ns_options.create_if_missing = true;
    auto ns = OpenKvNamespace(std::move(test_kv), ns_options);
    ASSERT_TRUE(ns.ok()) << ns.status();
    ns_ = std::move(*ns);
  }

  // The bucket in s3rver; false (the test skipped) when it is not installed.
  bool StartS3rver() {
    std::string why;
    server_ = S3rver::Start("shared", &why);
    if (!server_) {
      why_not_ = why;
      return false;
    }
    s3::S3Options options;
    options.endpoint = server_->endpoint();
    options.bucket = "shared";
    options.credentials = {S3rver::kAccessKey, S3rver::kSecretKey, ""};
    // A stopped server fails a request at once rather than after a minute.
    options.max_attempts = 1;
    options.max_retry_seconds = 1;
    client_ = std::move(*s3::S3Client::Create(options));
    Use(*client_);
    return true;
  }
  void Use(s3::ObjectStore& bucket) {
    hooked_ = std::make_unique<HookedStore>(bucket);
    remote_ = std::make_unique<RemoteBlobStore>(*hooked_, "vol/", kVolume);
  }

  // A blob PUT whose commit never came: what a crash leaves.
  BlobId Leftover(int seed) {
    absl::StatusOr<BlobId> id = ns_->AllocateBlobIds(1);
    EXPECT_TRUE(id.ok()) << id.status();
    absl::StatusOr<BlobInfo> info = remote_->Put(*id, RandomBytes(1000, seed));
    EXPECT_TRUE(info.ok()) << info.status();
    if (info.ok()) put_[*id] = *info;
    return *id;
  }
  // Commits the record of blob `id` (PUT already) as file `name`'s data.
  void Commit(BlobId id, const std::string& name) {
    absl::StatusOr<InodeAttr> file =
        ns_->MakeNode(kRootInode, name, NewNode{S_IFREG | 0644}, Caller{0, 0});
    ASSERT_TRUE(file.ok()) << file.status();
    NewBlob blob{id, put_[id].length, put_[id].crc32c};
    Extent extent{0, 1000, id, 0, ""};
    ASSERT_TRUE(ns_->CommitWrite(file->ino, {&blob, 1}, {&extent, 1}).ok());
  }
  BlobId Claimed(int seed, const std::string& name) {
    BlobId id = Leftover(seed);
    Commit(id, name);
    return id;
  }
  bool InBucket(BlobId id) { return hooked_->HeadObject(remote_->KeyOf(id)).ok(); }

  std::unique_ptr<SharedBlobSweeper> Sweeper(int64_t min_age_seconds, bool background = false) {
    SharedBlobSweeper::Options options;
    options.background = background;
    options.min_age_seconds = min_age_seconds;
    options.interval_seconds = 3600;
    return std::make_unique<SharedBlobSweeper>(*ns_, *remote_, options);
  }

  TempDir dir_;
  TestKvStore* kv_ = nullptr;
  std::unique_ptr<NamespaceStore> ns_;
  std::unique_ptr<S3rver> server_;
  std::string why_not_;
  std::unique_ptr<s3::S3Client> client_;
  std::unique_ptr<HookedStore> hooked_;
  std::unique_ptr<RemoteBlobStore> remote_;
  std::map<BlobId, BlobInfo> put_;
};

#define START_S3RVER_OR_SKIP() \
  if (!StartS3rver()) GTEST_SKIP() << why_not_

TEST_F(SharedBlobSweepTest, AnUnclaimedObjectOlderThanTheFloorGoesAYoungerOneStays) {
  START_S3RVER_OR_SKIP();
  const BlobId old_leftover = Leftover(1);
  const BlobId old_claimed = Claimed(2, "kept");
  // s3rver's clock ages them; the floor is 2 s here instead of an hour.
  std::this_thread::sleep_for(std::chrono::milliseconds(3200));
  const BlobId young_leftover = Leftover(3);
  auto sweeper = Sweeper(2);
  absl::StatusOr<SharedBlobSweeper::Report> report = sweeper->SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->complete);
  EXPECT_EQ(report->listed, 3u);
  EXPECT_EQ(report->deleted, 1u);
  EXPECT_EQ(report->claimed, 1u);
  EXPECT_EQ(report->too_young, 1u);
  EXPECT_FALSE(InBucket(old_leftover));
  EXPECT_TRUE(InBucket(old_claimed));
  EXPECT_TRUE(InBucket(young_leftover));
  // The claimed blob still reads whole.
  EXPECT_TRUE(remote_->Read(old_claimed, 0, 1000).ok());
  EXPECT_EQ(sweeper->GetStats().objects_deleted, 1u);
  EXPECT_EQ(sweeper->GetStats().sweeps, 1u);
}

TEST_F(SharedBlobSweepTest, AClaimedObjectIsNeverDeletedWhateverItsAge) {
  START_S3RVER_OR_SKIP();
  std::vector<BlobId> claimed;
  for (int i = 0; i < 5; ++i) claimed.push_back(Claimed(10 + i, "f" + std::to_string(i)));
  const BlobId leftover = Leftover(20);
  // No floor at all: only the record tells the two kinds apart.
  absl::StatusOr<SharedBlobSweeper::Report> report = Sweeper(0)->SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->deleted, 1u);
  EXPECT_EQ(report->claimed, 5u);
  EXPECT_FALSE(InBucket(leftover));
  for (BlobId id : claimed) EXPECT_TRUE(InBucket(id)) << id;
}

TEST_F(SharedBlobSweepTest, ANonLeaderDoesNothingAndSweepsOnceItLeads) {
  START_S3RVER_OR_SKIP();
  const BlobId leftover = Leftover(1);
  kv_->SetLeader(false);
  auto manual = Sweeper(0);
  absl::StatusOr<SharedBlobSweeper::Report> refused = manual->SweepNow();
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  const int pages = hooked_->pages;
  {
    // The background loop of a follower lists nothing and deletes nothing.
    auto background = Sweeper(0, /*background=*/true);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    EXPECT_EQ(hooked_->pages, pages);
    EXPECT_TRUE(InBucket(leftover));
    // Once it leads it sweeps at once, not an interval later.
    kv_->SetLeader(true);
    for (int i = 0; i < 100 && InBucket(leftover); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_FALSE(InBucket(leftover));
  }
}

TEST_F(SharedBlobSweepTest, ACommitLandingAfterTheListingKeepsTheObject) {
  START_S3RVER_OR_SKIP();
  const BlobId slow = Leftover(1);
  const BlobId leftover = Leftover(2);
  // Another host's commit of `slow` lands between the listing and the
  // deletes: the record is looked up after the listing, so it counts.
  hooked_->after_page = [&] {
    hooked_->after_page = nullptr;
    Commit(slow, "late");
  };
  absl::StatusOr<SharedBlobSweeper::Report> report = Sweeper(0)->SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(InBucket(slow));
  EXPECT_FALSE(InBucket(leftover));
  EXPECT_EQ(report->claimed, 1u);
}

TEST_F(SharedBlobSweepTest, ALeaderThatStepsDownMidSweepStopsDeleting) {
  START_S3RVER_OR_SKIP();
  std::vector<BlobId> leftovers;
  for (int i = 0; i < 4; ++i) leftovers.push_back(Leftover(i));
  SharedBlobSweeper::Options options;
  options.background = false;
  options.min_age_seconds = 0;
  options.page_keys = 1;
  hooked_->after_page = [&] { kv_->SetLeader(false); };
  SharedBlobSweeper sweeper(*ns_, *remote_, options);
  absl::StatusOr<SharedBlobSweeper::Report> report = sweeper.SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->complete);
  EXPECT_EQ(report->deleted, 0u);
  EXPECT_EQ(hooked_->pages, 1);
  for (BlobId id : leftovers) EXPECT_TRUE(InBucket(id)) << id;
  // The new leader (here the same host again) finishes the job, a page at
  // a time.
  hooked_->after_page = nullptr;
  kv_->SetLeader(true);
  report = sweeper.SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->complete);
  EXPECT_EQ(report->deleted, 4u);
  EXPECT_GE(hooked_->pages, 5);
  for (BlobId id : leftovers) EXPECT_FALSE(InBucket(id)) << id;
}

TEST_F(SharedBlobSweepTest, IdsNeverHandedOutAndOtherKeysAreKept) {
  START_S3RVER_OR_SKIP();
  const BlobId leftover = Leftover(1);
  absl::StatusOr<BlobId> next = ns_->AllocateBlobIds(0);
  ASSERT_TRUE(next.ok());
  // Put by no host of this namespace (a copy of it sharing the bucket, an
  // operator): not ours to judge.
  const BlobId foreign = *next + 100;
  ASSERT_TRUE(remote_->Put(foreign, RandomBytes(100, 5)).ok());
  const std::string other_key = remote_->prefix() + "notes.txt";
  ASSERT_TRUE(hooked_->PutObject(other_key, "mine", std::nullopt).ok());
  absl::StatusOr<SharedBlobSweeper::Report> report = Sweeper(0)->SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->unallocated, 1u);
  EXPECT_EQ(report->deleted, 1u);
  EXPECT_FALSE(InBucket(leftover));
  EXPECT_TRUE(InBucket(foreign));
  EXPECT_TRUE(hooked_->HeadObject(other_key).ok());
}

TEST_F(SharedBlobSweepTest, AServerThatTellsNoTimeGetsNothingDeleted) {
  START_S3RVER_OR_SKIP();
  const BlobId leftover = Leftover(1);
  hooked_->hide_server_time = true;
  absl::StatusOr<SharedBlobSweeper::Report> report = Sweeper(0)->SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->undated, 1u);
  EXPECT_EQ(report->deleted, 0u);
  EXPECT_TRUE(InBucket(leftover));
}

TEST_F(SharedBlobSweepTest, AnUnreachableBucketFailsTheSweepAndTheNextOneFinishes) {
  START_S3RVER_OR_SKIP();
  const BlobId leftover = Leftover(1);
  const BlobId claimed = Claimed(2, "kept");
  auto sweeper = Sweeper(0);
  server_->Stop();
  absl::StatusOr<SharedBlobSweeper::Report> failed = sweeper->SweepNow();
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(sweeper->GetStats().last_error.empty());
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  absl::StatusOr<SharedBlobSweeper::Report> report = sweeper->SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(InBucket(leftover));
  EXPECT_TRUE(InBucket(claimed));
  EXPECT_TRUE(sweeper->GetStats().last_error.empty());
}

// The default floor, an hour, by the bucket's clock (a fake one here);
// the host's clock, a day ahead, changes nothing.
TEST_F(SharedBlobSweepTest, TheDefaultFloorIsAnHourByTheBucketsClock) {
  FakeClock server_clock;
  FakeObjectStore::Options bucket_options;
  bucket_options.clock = &server_clock;
  bucket_options.page_entries = 2;
  FakeObjectStore bucket(bucket_options);
  Use(bucket);
  std::vector<BlobId> leftovers;
  for (int i = 0; i < 5; ++i) leftovers.push_back(Leftover(i));
  const BlobId claimed = Claimed(9, "kept");
  FakeClock host_clock(Timespec{1700000000 + 86400, 0});
  SharedBlobSweeper::Options options;
  options.background = false;
  options.page_keys = 2;
  options.clock = &host_clock;
  SharedBlobSweeper sweeper(*ns_, *remote_, options);
  server_clock.Advance(absl::Minutes(59));
  absl::StatusOr<SharedBlobSweeper::Report> report = sweeper.SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->too_young, 6u);
  EXPECT_EQ(report->deleted, 0u);
  server_clock.Advance(absl::Minutes(2));
  report = sweeper.SweepNow();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->deleted, 5u);
  EXPECT_EQ(report->claimed, 1u);
  for (BlobId id : leftovers) EXPECT_FALSE(InBucket(id)) << id;
  EXPECT_TRUE(InBucket(claimed));
  // Six objects, two a page: walked in pages, never all at once.
  EXPECT_GE(hooked_->pages, 3 + 3);
}

}  // namespace
}  // namespace cairn
