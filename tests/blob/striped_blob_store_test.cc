#include "backend/blob/striped_blob_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/fs_error.h"
#include "tests/support/file_bytes.h"
#include "tests/support/fault_env.h"
#include "tests/support/random_bytes.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

const std::string kVolumeId = "0123456789abcdef0123456789abcdef";

class StripedBlobStoreTest : public ::testing::Test {
 protected:
  void Prepare(int disks, const std::string& scheme) {
    redundancy_ = *ParseRedundancy(scheme);
    paths_.clear();
    envs_.clear();
    for (int i = 0; i < disks; ++i) {
      paths_.push_back(absl::StrCat(root_.path(), "/disk", i));
      ASSERT_TRUE(StripedBlobStore::PrepareDisk(Env::Default(), paths_.back(), kVolumeId, i, disks).ok());
      envs_.push_back(std::make_unique<FaultEnv>(Env::Default()));
    }
  }
  absl::StatusOr<std::unique_ptr<StripedBlobStore>> OpenStore() {
    StripedStoreOptions options;
    options.volume_id = kVolumeId;
    options.redundancy = redundancy_;
    options.disks = paths_;
    for (auto& env : envs_) options.disk_envs.push_back(env.get());
    options.queue_repair = [this](BlobId id) {
      absl::MutexLock lock(&mu_);
      queued_.insert(id);
    };
    return StripedBlobStore::Open(options);
  }
  void Open() {
    store_.reset();  // one store at a time has the disks open
    auto store = OpenStore();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }
  // The shard file of `id` on disk `disk`, if there is one.
  std::string ShardPath(int disk, BlobId id) {
    return absl::StrFormat("%s/shards/%02x/%016x.shard", paths_[disk], id & 0xff, id);
  }
  int ShardFiles(BlobId id) {
    int n = 0;
    for (size_t d = 0; d < paths_.size(); ++d) n += fsys::exists(ShardPath(d, id));
    return n;
  }
  std::set<BlobId> Queued() {
    absl::MutexLock lock(&mu_);
    return queued_;
  }

  TempDir root_;
  Redundancy redundancy_;
  std::vector<std::string> paths_;
  std::vector<std::unique_ptr<FaultEnv>> envs_;
  std::unique_ptr<StripedBlobStore> store_;
  absl::Mutex mu_;
  std::set<BlobId> queued_;
};

TEST_F(StripedBlobStoreTest, StoresEachShardOnADifferentDiskAndReadsAnyRange) {
  Prepare(6, "ec:4+2");
  Open();
  std::string random = RandomBytes(4 << 20, 1);
  std::string text;
  while (text.size() < (3 << 20)) text += "the quick brown fox jumps over the lazy dog\n";
  ASSERT_TRUE(store_->Put(10, random).ok());
  absl::StatusOr<BlobInfo> info = store_->Put(11, text);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->length, text.size());
  EXPECT_EQ(ShardFiles(10), 6);
  EXPECT_EQ(ShardFiles(11), 6);
  EXPECT_EQ(store_->Counters().compressed_blobs, 1u);
  // Text compresses: its shards together are far smaller than the text.
  uint64_t text_bytes = 0;
  for (int d = 0; d < 6; ++d) text_bytes += fsys::file_size(ShardPath(d, 11));
  EXPECT_LT(text_bytes, text.size() / 4);
  // Random data costs 6/4 of its size, plus headers.
  uint64_t random_bytes = 0;
  for (int d = 0; d < 6; ++d) random_bytes += fsys::file_size(ShardPath(d, 10));
  EXPECT_LT(random_bytes, random.size() * 3 / 2 + 6 * 4096);
  for (auto [offset, length] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 4 << 20}, {0, 1}, {(1 << 20) - 3, 10}, {3 << 20, 65536}, {12345, 2 << 20},
           {(4 << 20) - 1, 1}, {100, 0}}) {
    absl::StatusOr<std::string> got = store_->Read(10, offset, length);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, random.substr(offset, length)) << offset << "+" << length;
    uint64_t text_offset = offset % text.size();
    uint64_t text_length = std::min<uint64_t>({length, 1000, text.size() - text_offset});
    got = store_->Read(11, text_offset, text_length);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, text.substr(text_offset, text_length));
  }
  EXPECT_EQ(GetFsErrorKind(store_->Read(10, 4 << 20, 1).status()), FsErrorKind::kInvalid);
  EXPECT_EQ(store_->Counters().reconstructions, 0u);
  ASSERT_TRUE(store_->Delete(10).ok());
  EXPECT_EQ(ShardFiles(10), 0);
  EXPECT_FALSE(store_->Read(10, 0, 1).ok());
  EXPECT_EQ(*store_->ListIds(0), std::vector<BlobId>{11});
}

TEST_F(StripedBlobStoreTest, LostAndCorruptShardsAreRebuiltQueuedAndRepaired) {
  Prepare(6, "ec:4+2");
  Open();
  std::string data = RandomBytes(3 << 20, 2);
  ASSERT_TRUE(store_->Put(7, data).ok());
  // One disk loses the shard, another's shard rots in its data.
  int lost_disk = 7 % 6, rotten_disk = (7 + 2) % 6;
  fsys::remove(ShardPath(lost_disk, 7));
  FlipByte(ShardPath(rotten_disk, 7), 5000, 0x5a);
  Open();  // a fresh store: no cached geometry
  absl::StatusOr<std::string> got = store_->Read(7, 0, data.size());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
  got = store_->Read(7, 1000, 5000);  // data shard 0, the lost one
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data.substr(1000, 5000));
  EXPECT_GE(store_->Counters().reconstructions, 1u);
  EXPECT_EQ(Queued(), std::set<BlobId>{7});
  BlobCheck check = store_->CheckBlob(7, /*repair=*/true, std::nullopt);
  EXPECT_EQ(check.shards_bad, 2);
  EXPECT_EQ(check.shards_repaired, 2);
  EXPECT_FALSE(check.lost);
  check = store_->CheckBlob(7, false, std::nullopt);
  EXPECT_EQ(check.shards_bad, 0) << check.problems.front();
  EXPECT_EQ(ShardFiles(7), 6);
  // Repaired shards are good on their own: lose two others and still read.
  fsys::remove(ShardPath((7 + 1) % 6, 7));
  fsys::remove(ShardPath((7 + 3) % 6, 7));
  Open();
  EXPECT_EQ(*store_->Read(7, 0, data.size()), data);
}

TEST_F(StripedBlobStoreTest, AShardCutShortOrGrownIsBadAndRepairedNeverRead) {
  Prepare(3, "copies:3");
  Open();
  std::string data = RandomBytes(4 << 20, 3);  // a full blob: the largest shard
  ASSERT_TRUE(store_->Put(9, data).ok());
  fsys::resize_file(ShardPath(0, 9), fsys::file_size(ShardPath(0, 9)) - 1);
  fsys::resize_file(ShardPath(1, 9), fsys::file_size(ShardPath(1, 9)) + 4096);
  Open();
  BlobCheck check = store_->CheckBlob(9, /*repair=*/false, std::nullopt);
  EXPECT_EQ(check.shards_bad, 2);
  EXPECT_FALSE(check.lost);
  check = store_->CheckBlob(9, /*repair=*/true, std::nullopt);
  EXPECT_EQ(check.shards_repaired, 2);
  // With the only good copy gone, the repaired ones alone read right.
  fsys::remove(ShardPath(2, 9));
  Open();
  absl::StatusOr<std::string> got = store_->Read(9, 0, data.size());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, data);
}

TEST_F(StripedBlobStoreTest, MoreLostShardsThanParityIsAnErrorNeverWrongData) {
  Prepare(3, "ec:2+1");
  Open();
  std::string data = RandomBytes(100000, 3);
  ASSERT_TRUE(store_->Put(1, data).ok());
  FlipByte(ShardPath(1, 1), 200, 0x5a);
  FlipByte(ShardPath(2, 1), 200, 0x5a);
  Open();
  absl::StatusOr<std::string> got = store_->Read(1, 0, data.size());
  EXPECT_FALSE(got.ok());
  EXPECT_EQ(GetFsErrorKind(got.status()), FsErrorKind::kIo);
  EXPECT_TRUE(store_->CheckBlob(1, true, std::nullopt).lost);
}

TEST_F(StripedBlobStoreTest, CopiesSurviveTheLossOfEveryCopyButOne) {
  Prepare(3, "copies:3");
  Open();
  std::string data = RandomBytes(70000, 4);
  ASSERT_TRUE(store_->Put(5, data).ok());
  fsys::remove(ShardPath(5 % 3, 5));
  FlipByte(ShardPath((5 + 1) % 3, 5), 30000, 0x5a);
  Open();
  EXPECT_EQ(*store_->Read(5, 60000, 100), data.substr(60000, 100));
  EXPECT_EQ(store_->CheckBlob(5, true, std::nullopt).shards_repaired, 2);
  EXPECT_EQ(store_->CheckBlob(5, false, std::nullopt).shards_bad, 0);
}

TEST_F(StripedBlobStoreTest, OpensDegradedUpToParityAndRefusesBeyondNamingTheDisks) {
  Prepare(6, "ec:4+2");
  Open();
  std::string data = RandomBytes(1 << 20, 5);
  ASSERT_TRUE(store_->Put(3, data).ok());
  store_.reset();
  fsys::remove_all(paths_[1]);
  fsys::remove(paths_[4] + "/cairn-disk");
  Open();
  std::vector<DiskInfo> disks = store_->Disks();
  EXPECT_EQ(disks[1].state, DiskState::kMissing);
  EXPECT_EQ(disks[4].state, DiskState::kMissing);
  EXPECT_NE(disks[4].problem.find("marker"), std::string::npos) << disks[4].problem;
  EXPECT_EQ(*store_->Read(3, 0, data.size()), data);
  // Writes still work with 4 of 6... no: ec:4+2 needs 5 disks for a write.
  absl::StatusOr<BlobInfo> refused = store_->Put(4, data);
  EXPECT_EQ(GetFsErrorKind(refused.status()), FsErrorKind::kIo);
  EXPECT_NE(refused.status().message().find(paths_[1]), std::string::npos);
  EXPECT_EQ(ShardFiles(4), 0);
  store_.reset();
  // A third missing disk is beyond what 4+2 survives.
  fsys::remove_all(paths_[2]);
  absl::StatusOr<std::unique_ptr<StripedBlobStore>> refused_open = OpenStore();
  ASSERT_FALSE(refused_open.ok());
  std::string message(refused_open.status().message());
  for (int d : {1, 2, 4}) EXPECT_NE(message.find(paths_[d]), std::string::npos) << message;
  EXPECT_NE(message.find("tolerates 2"), std::string::npos) << message;
}

TEST_F(StripedBlobStoreTest, SwappedDisksAreRecognisedAndForeignDisksAreNotUsed) {
  Prepare(3, "ec:2+1");
  Open();
  std::string data = RandomBytes(300000, 6);
  ASSERT_TRUE(store_->Put(9, data).ok());
  store_.reset();
  // Swap disks 0 and 2 between their paths.
  fsys::rename(paths_[0], root_.path() + "/tmp");
  fsys::rename(paths_[2], paths_[0]);
  fsys::rename(root_.path() + "/tmp", paths_[2]);
  Open();
  for (const DiskInfo& disk : store_->Disks()) EXPECT_EQ(disk.state, DiskState::kOk);
  EXPECT_EQ(*store_->Read(9, 0, data.size()), data);
  EXPECT_EQ(store_->Counters().reconstructions, 0u);
  store_.reset();
  // A disk of another volume in place of disk 1.
  fsys::remove_all(paths_[1]);
  ASSERT_TRUE(StripedBlobStore::PrepareDisk(Env::Default(), paths_[1], std::string(32, 'f'), 1, 3).ok());
  Open();
  DiskInfo foreign = store_->Disks()[1];
  EXPECT_EQ(foreign.state, DiskState::kMissing);
  EXPECT_NE(foreign.problem.find("another cairn volume"), std::string::npos) << foreign.problem;
  EXPECT_EQ(*store_->Read(9, 0, data.size()), data);
}

TEST_F(StripedBlobStoreTest, ADiskThatFailsWritesIsMarkedFailedAndTheBlobQueued) {
  Prepare(6, "ec:4+2");
  Open();
  envs_[2]->fail_write_number = envs_[2]->writes + 1;
  std::string data = RandomBytes(2 << 20, 7);
  ASSERT_TRUE(store_->Put(12, data).ok());  // 5 of 6 shards: enough
  EXPECT_EQ(store_->Disks()[2].state, DiskState::kFailed);
  EXPECT_EQ(Queued(), std::set<BlobId>{12});
  EXPECT_EQ(store_->Counters().degraded_writes, 1u);
  EXPECT_EQ(ShardFiles(12), 5);
  EXPECT_EQ(*store_->Read(12, 0, data.size()), data);
  // A second failing disk leaves 4: below what a write needs. Nothing of
  // the refused blob stays on any disk.
  envs_[3]->fail_sync_number = envs_[3]->syncs + 1;
  absl::StatusOr<BlobInfo> refused = store_->Put(13, data);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(GetFsErrorKind(refused.status()), FsErrorKind::kIo);
  EXPECT_EQ(ShardFiles(13), 0);
  EXPECT_EQ(store_->Disks()[3].state, DiskState::kFailed);
  // Earlier data still reads, rebuilt from the four good disks.
  EXPECT_EQ(*store_->Read(12, 0, data.size()), data);
}

TEST_F(StripedBlobStoreTest, AFullDiskFailsTheWriteWithNoSpaceAndLeavesNothingBehind) {
  Prepare(3, "ec:2+1");
  Open();
  std::string before = RandomBytes(500000, 8);
  ASSERT_TRUE(store_->Put(1, before).ok());
  envs_[1]->space_left = 1000;
  absl::StatusOr<BlobInfo> full = store_->Put(2, RandomBytes(500000, 9));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(GetFsErrorKind(full.status()), FsErrorKind::kNoSpace);
  EXPECT_EQ(ShardFiles(2), 0);
  EXPECT_EQ(store_->Disks()[1].state, DiskState::kOk);  // full is not failed
  EXPECT_EQ(*store_->Read(1, 0, before.size()), before);
  envs_[1]->space_left = -1;  // space freed
  EXPECT_TRUE(store_->Put(2, RandomBytes(500000, 9)).ok());
}

TEST_F(StripedBlobStoreTest, ReadErrorsOnADiskAreSurvivedAndMarkItFailed) {
  Prepare(3, "ec:2+1");
  Open();
  std::string data = RandomBytes(600000, 10);
  ASSERT_TRUE(store_->Put(6, data).ok());
  Open();
  envs_[6 % 3]->fail_all_io = true;  // the disk holding data shard 0 dies
  EXPECT_EQ(*store_->Read(6, 0, data.size()), data);
  EXPECT_EQ(*store_->Read(6, 10, 20), data.substr(10, 20));
  EXPECT_EQ(store_->Disks()[6 % 3].state, DiskState::kFailed);
  EXPECT_GE(store_->Counters().io_errors, 1u);
}

TEST_F(StripedBlobStoreTest, ReplacedDiskIsRebuiltFromTheOthers) {
  Prepare(6, "ec:4+2");
  Open();
  std::vector<std::string> blobs;
  for (BlobId id = 1; id <= 12; ++id) {
    blobs.push_back(RandomBytes(100000 * id, id));
    ASSERT_TRUE(store_->Put(id, blobs.back()).ok());
  }
  store_.reset();
  fsys::remove_all(paths_[3]);  // the drive died
  Open();
  std::string fresh = root_.path() + "/new-disk";
  ASSERT_TRUE(StripedBlobStore::PrepareDisk(Env::Default(), fresh, kVolumeId, 3, 6).ok());
  ASSERT_TRUE(store_->ReplaceDisk(3, fresh).ok());
  EXPECT_EQ(store_->Disks()[3].state, DiskState::kOk);
  for (BlobId id = 1; id <= 12; ++id) {
    BlobCheck check = store_->CheckBlob(id, true, std::nullopt);
    EXPECT_EQ(check.shards_repaired, 1) << id;
  }
  EXPECT_EQ(store_->ListDiskIds(3)->size(), 12u);
  // Full redundancy again: two other disks may now go.
  store_.reset();
  paths_[3] = fresh;
  fsys::remove_all(paths_[0]);
  fsys::remove_all(paths_[5]);
  Open();
  for (BlobId id = 1; id <= 12; ++id) {
    EXPECT_EQ(*store_->Read(id, 0, blobs[id - 1].size()), blobs[id - 1]) << id;
  }
}

TEST_F(StripedBlobStoreTest, RepairNeverResurrectsADeletedBlob) {
  Prepare(3, "ec:2+1");
  Open();
  ASSERT_TRUE(store_->Put(8, RandomBytes(100000, 8)).ok());
  ASSERT_TRUE(store_->Delete(8).ok());  // garbage collection got there first
  BlobCheck check = store_->CheckBlob(8, /*repair=*/true, std::nullopt);
  EXPECT_TRUE(check.absent);
  EXPECT_EQ(check.shards_repaired, 0);
  EXPECT_EQ(ShardFiles(8), 0);
}

TEST_F(StripedBlobStoreTest, DeletedMarkerOfADiskInUseIsWrittenAgain) {
  Prepare(3, "ec:2+1");
  Open();
  fsys::remove_all(paths_[0] + "/cairn-disk");
  fsys::remove_all(paths_[0] + "/shards");
  store_->CheckDisks();
  EXPECT_TRUE(fsys::exists(paths_[0] + "/cairn-disk"));
  ASSERT_TRUE(store_->Put(3, RandomBytes(5000, 3)).ok());
  EXPECT_EQ(ShardFiles(3), 3);
  // A path that now leads elsewhere (disk unmounted underneath) is failed.
  fsys::rename(paths_[2], root_.path() + "/moved");
  fsys::create_directory(paths_[2]);
  store_->CheckDisks();
  EXPECT_EQ(store_->Disks()[2].state, DiskState::kFailed);
  EXPECT_TRUE(fsys::is_empty(paths_[2]));  // nothing written into the stand-in
}

// One flipped byte in a 105-byte marker took a whole disk of good shards
// out of service until cairn disk replace. The shards' headers prove which
// disk it is; the marker is written again.
TEST_F(StripedBlobStoreTest, ADamagedMarkerIsRebuiltFromTheShardsItProvesIdentityFor) {
  Prepare(3, "ec:2+1");
  Open();
  std::vector<std::string> blobs;
  for (BlobId id = 1; id <= 12; ++id) {
    blobs.push_back(RandomBytes(20000, id));
    ASSERT_TRUE(store_->Put(id, blobs.back()).ok());
  }
  store_.reset();
  const std::string marker = paths_[1] + "/cairn-disk";
  const std::string pristine = ReadWholeFile(marker);
  FlipByte(marker, 30, 0x5a);
  Open();
  for (const DiskInfo& disk : store_->Disks()) {
    EXPECT_EQ(disk.state, DiskState::kOk) << disk.path << ": " << disk.problem;
  }
  EXPECT_EQ(ReadWholeFile(marker), pristine);
  for (BlobId id = 1; id <= 12; ++id) EXPECT_EQ(*store_->Read(id, 0, 20000), blobs[id - 1]);
  store_.reset();
  // Without shards to prove it, a damaged marker still keeps the disk out.
  for (const std::string& path : paths_) fsys::remove_all(path);
  Prepare(3, "ec:2+1");
  FlipByte(paths_[2] + "/cairn-disk", 30, 0x5a);
  Open();
  EXPECT_EQ(store_->Disks()[2].state, DiskState::kMissing);
  EXPECT_NE(store_->Disks()[2].problem.find("marker"), std::string::npos);
}

}  // namespace
}  // namespace cairn
