// A shared volume (backend/volume/shared_volume.h) opened twice, as two
// hosts would: its namespace in a real PostgreSQL (tests/support/
// pg_server.h), its bucket in memory (fake_object_store.h), each "host"
// with its own directory made by FormatVolume and AttachVolume.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "backend/base/fs_error.h"
#include "backend/services/shared_blob_store.h"
#include "backend/volume/shared_volume.h"
#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/pg_server.h"
#include "tests/support/random_bytes.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

constexpr char kEndpoint[] = "http://fake";

class SharedVolumeOpenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = FreshPgDatabase("shared_open_");
    if (url_.empty()) return;
    // The fake bucket needs credentials to be given, like a real one.
    setenv("AWS_ACCESS_KEY_ID", "key", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  }
  void TearDown() override {
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
  }

  FormatOptions SharedFormat() {
    FormatOptions options;
    options.shared_namespace = SharedNamespaceConfig{url_};
    SharedBlobsConfig blobs;
    blobs.endpoint = kEndpoint;
    blobs.bucket = "shared";
    blobs.prefix = "vol/";
    options.shared_blobs = blobs;
    return options;
  }
  Io TestIo() { return Io{Env::Default(), &clock_, &factory_}; }
  FakeObjectStore& Bucket() { return factory_.Bucket(kEndpoint, "shared"); }
  std::string Dir(const char* name) { return dir_.path() + "/" + name; }

  std::string url_;
  FakeClock clock_;
  FakeObjectStoreFactory factory_{&clock_};
  TempDir dir_;
};

TEST_F(SharedVolumeOpenTest, TwoHostsOpenOneVolumeAndReadEachOthersBlobs) {
  absl::StatusOr<VolumeConfig> a_config = FormatVolume(Dir("a"), SharedFormat(), TestIo());
  ASSERT_TRUE(a_config.ok()) << a_config.status();
  EXPECT_TRUE(a_config->shared());
  EXPECT_TRUE(a_config->DataDisks(Dir("a")).empty());
  AttachOptions attach;
  attach.namespace_url = url_;
  absl::StatusOr<VolumeConfig> b_config = AttachVolume(Dir("b"), attach, TestIo());
  ASSERT_TRUE(b_config.ok()) << b_config.status();
  EXPECT_EQ(b_config->volume_id, a_config->volume_id);
  EXPECT_EQ(b_config->cache_dir, Dir("b") + "/cache");
  ASSERT_TRUE(b_config->shared_blobs.has_value());
  EXPECT_EQ(b_config->shared_blobs->bucket, "shared");
  EXPECT_EQ(b_config->shared_blobs->prefix, "vol/");
  // The file written is the one read back.
  absl::StatusOr<VolumeConfig> b_loaded = LoadVolumeConfig(Dir("b"));
  ASSERT_TRUE(b_loaded.ok()) << b_loaded.status();
  EXPECT_EQ(b_loaded->shared_namespace->url, url_);

  absl::StatusOr<std::unique_ptr<Volume>> a = Volume::Open(Dir("a"), *a_config, TestIo());
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::unique_ptr<Volume>> b = Volume::Open(Dir("b"), *b_loaded, TestIo());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*a)->striped(), nullptr);
  ASSERT_NE((*a)->shared_remote(), nullptr);

  // A blob A stores is in the bucket, and B reads it once A's commit names it.
  const std::string data = RandomBytes(3 << 20, 7);
  absl::StatusOr<BlobId> first = (*a)->ns().AllocateBlobIds(1);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<BlobId> ids_vector = {*first};
  const std::vector<BlobId>* ids = &ids_vector;
  absl::StatusOr<BlobInfo> put = (*a)->blobs().Put((*ids)[0], data);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(Bucket().GetStats().bytes_sent >= data.size(), true);
  absl::StatusOr<InodeAttr> file =
      (*a)->ns().MakeNode(kRootInode, "f", NewNode{S_IFREG | 0644}, Caller{0, 0});
  ASSERT_TRUE(file.ok()) << file.status();
  NewBlob blob{(*ids)[0], put->length, put->crc32c};
  Extent extent{0, data.size(), (*ids)[0], 0, ""};
  ASSERT_TRUE((*a)->ns().CommitWrite(file->ino, {&blob, 1}, {&extent, 1}).ok());
  absl::StatusOr<std::string> read = (*b)->blobs().Read((*ids)[0], 1000, 2 << 20);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data.substr(1000, 2 << 20));
  // Once B has the blocks, reading again asks the bucket nothing.
  const uint64_t gets = Bucket().GetStats().requests;
  ASSERT_TRUE((*b)->blobs().Read((*ids)[0], 1000, 2 << 20).ok());
  EXPECT_EQ(Bucket().GetStats().requests, gets);
  // A's own write went to its cache as it was stored: no GET either.
  ASSERT_TRUE((*a)->blobs().Read((*ids)[0], 0, data.size()).ok());
  EXPECT_EQ(Bucket().GetStats().requests, gets);
}

TEST_F(SharedVolumeOpenTest, ADamagedObjectIsAnErrorAndIsNotCached) {
  absl::StatusOr<VolumeConfig> config = FormatVolume(Dir("a"), SharedFormat(), TestIo());
  ASSERT_TRUE(config.ok()) << config.status();
  AttachOptions attach;
  attach.namespace_url = url_;
  absl::StatusOr<VolumeConfig> b_config = AttachVolume(Dir("b"), attach, TestIo());
  ASSERT_TRUE(b_config.ok()) << b_config.status();
  absl::StatusOr<std::unique_ptr<Volume>> a = Volume::Open(Dir("a"), *config, TestIo());
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::unique_ptr<Volume>> b = Volume::Open(Dir("b"), *b_config, TestIo());
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string data = RandomBytes(1 << 20, 9);
  BlobId id = *(*a)->ns().AllocateBlobIds(1);
  absl::StatusOr<BlobInfo> put = (*a)->blobs().Put(id, data);
  ASSERT_TRUE(put.ok()) << put.status();
  absl::StatusOr<InodeAttr> file =
      (*a)->ns().MakeNode(kRootInode, "f", NewNode{S_IFREG | 0644}, Caller{0, 0});
  ASSERT_TRUE(file.ok());
  NewBlob blob{id, put->length, put->crc32c};
  Extent extent{0, data.size(), id, 0, ""};
  ASSERT_TRUE((*a)->ns().CommitWrite(file->ino, {&blob, 1}, {&extent, 1}).ok());
  Bucket().DamageNextGets(1, FakeObjectStore::BodyDamage::kFlipByte);
  absl::StatusOr<std::string> damaged = (*b)->blobs().Read(id, 0, data.size());
  EXPECT_EQ(GetFsErrorKind(damaged.status()), FsErrorKind::kIo) << damaged.status();
  // The next read gets a good body and the right bytes: nothing damaged
  // was kept.
  absl::StatusOr<std::string> good = (*b)->blobs().Read(id, 0, data.size());
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(*good, data);
}

// Two daemons' services over one volume: the leader's sweep deletes a
// crash's leftover from the bucket, keeps a committed blob, and the
// follower's sweeper never runs.
TEST_F(SharedVolumeOpenTest, OnlyTheLeadersServicesSweepTheBucket) {
  absl::StatusOr<VolumeConfig> a_config = FormatVolume(Dir("a"), SharedFormat(), TestIo());
  ASSERT_TRUE(a_config.ok()) << a_config.status();
  AttachOptions attach;
  attach.namespace_url = url_;
  absl::StatusOr<VolumeConfig> b_config = AttachVolume(Dir("b"), attach, TestIo());
  ASSERT_TRUE(b_config.ok()) << b_config.status();
  VolumeOpenOptions daemon;
  daemon.session = true;
  absl::StatusOr<std::unique_ptr<Volume>> a = Volume::Open(Dir("a"), *a_config, TestIo(), daemon);
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::unique_ptr<Volume>> b = Volume::Open(Dir("b"), *b_config, TestIo(), daemon);
  ASSERT_TRUE(b.ok()) << b.status();
  auto put = [&](Volume& host) {
    BlobId id = *host.ns().AllocateBlobIds(1);
    absl::StatusOr<BlobInfo> info = host.blobs().Put(id, RandomBytes(5000, id));
    EXPECT_TRUE(info.ok()) << info.status();
    return std::make_pair(id, *info);
  };
  const BlobId leftover = put(**b).first;
  auto [kept, info] = put(**a);
  absl::StatusOr<InodeAttr> file =
      (*a)->ns().MakeNode(kRootInode, "f", NewNode{S_IFREG | 0644}, Caller{0, 0});
  ASSERT_TRUE(file.ok()) << file.status();
  NewBlob blob{kept, info.length, info.crc32c};
  Extent extent{0, 5000, kept, 0, ""};
  ASSERT_TRUE((*a)->ns().CommitWrite(file->ino, {&blob, 1}, {&extent, 1}).ok());
  VolumeServices::Options options;
  options.shared_sweep.min_age_seconds = 0;  // no other host is storing
  options.shared_sweep.retry_seconds = 1;    // a loaded test machine's hiccup
  VolumeServices a_services(**a, options);
  VolumeServices b_services(**b, options);
  ASSERT_NE(a_services.shared_sweeper(), nullptr);
  const std::string leftover_key = (*a)->shared_remote()->KeyOf(leftover);
  for (int i = 0; i < 600 && Bucket().Object(leftover_key).has_value(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const SharedBlobSweeper::Stats a_stats = a_services.shared_sweeper()->GetStats();
  const SharedBlobSweeper::Stats b_stats = b_services.shared_sweeper()->GetStats();
  const std::string why = absl::StrCat(
      "a: leader ", (*a)->ns().IsLeader(), ", ", a_stats.sweeps, " sweeps, error '",
      a_stats.last_error, "'; b: leader ", (*b)->ns().IsLeader(), ", ", b_stats.sweeps,
      " sweeps, error '", b_stats.last_error, "'");
  EXPECT_FALSE(Bucket().Object(leftover_key).has_value()) << why;
  EXPECT_TRUE(Bucket().Object((*a)->shared_remote()->KeyOf(kept)).has_value()) << why;
  // One leader for the whole test: only its sweeper ran.
  EXPECT_EQ((a_stats.sweeps > 0) + (b_stats.sweeps > 0), 1) << why;
  if ((*a)->ns().IsLeader() != (*b)->ns().IsLeader()) {
    EXPECT_EQ((*a)->ns().IsLeader() ? b_stats.sweeps : a_stats.sweeps, 0u) << why;
  }
}

TEST_F(SharedVolumeOpenTest, FormatRefusesAnUnreachableBucketAndAUsedDatabase) {
  Bucket().SetOutage(true);
  absl::StatusOr<VolumeConfig> refused = FormatVolume(Dir("a"), SharedFormat(), TestIo());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("does not answer"), std::string::npos)
      << refused.status();
  // Nothing was written to the database: the same format works once the
  // bucket is back.
  Bucket().SetOutage(false);
  ASSERT_TRUE(FormatVolume(Dir("a"), SharedFormat(), TestIo()).ok());
  FormatOptions again = SharedFormat();
  again.force = true;
  absl::StatusOr<VolumeConfig> used = FormatVolume(Dir("c"), again, TestIo());
  ASSERT_FALSE(used.ok());
  EXPECT_NE(used.status().message().find("cairn attach"), std::string::npos) << used.status();
  // Disks make no sense for it.
  FormatOptions with_disk = SharedFormat();
  with_disk.disks = {Dir("disk")};
  EXPECT_TRUE(absl::IsInvalidArgument(FormatVolume(Dir("d"), with_disk, TestIo()).status()));
}

TEST_F(SharedVolumeOpenTest, ConfigNeedsBothSectionsAndHidesThePassword) {
  ASSERT_TRUE(FormatVolume(Dir("a"), SharedFormat(), TestIo()).ok());
  const std::string path = Dir("a") + "/cairn.toml";
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string without_blobs = text.substr(0, text.find("[blobs]"));
  std::ofstream(path) << without_blobs;
  absl::StatusOr<VolumeConfig> half = LoadVolumeConfig(Dir("a"));
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("[blobs] is missing"), std::string::npos)
      << half.status();
  EXPECT_EQ(UrlWithoutPassword("postgresql://u:secret@db:5432/x?sslmode=require"),
            "postgresql://u@db:5432/x?sslmode=require");
  EXPECT_EQ(UrlWithoutPassword("postgresql://u@db/x"), "postgresql://u@db/x");
  EXPECT_EQ(UrlWithoutPassword("postgresql://db/x?user=a@b"), "postgresql://db/x?user=a@b");
}

TEST_F(SharedVolumeOpenTest, TheBucketsReadTimeoutIsReadAndWrittenBack) {
  ASSERT_TRUE(FormatVolume(Dir("a"), SharedFormat(), TestIo()).ok());
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Dir("a"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->shared_blobs->read_timeout_seconds, 30);
  config->shared_blobs->read_timeout_seconds = 7;
  ASSERT_TRUE(SaveVolumeConfig(Dir("a"), *config).ok());
  absl::StatusOr<VolumeConfig> again = LoadVolumeConfig(Dir("a"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->shared_blobs->read_timeout_seconds, 7);
  // Out of range: refused, naming the key.
  const std::string path = Dir("a") + "/cairn.toml";
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = text.find("read_timeout_seconds = 7");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, strlen("read_timeout_seconds = 7"), "read_timeout_seconds = 0");
  std::ofstream(path) << text;
  absl::StatusOr<VolumeConfig> bad = LoadVolumeConfig(Dir("a"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("read_timeout_seconds"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace cairn
