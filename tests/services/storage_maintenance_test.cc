// Scrub, repair queue, orphan shards and disk replacement on a real
// (unmounted) multi-disk volume.
#include "backend/services/storage_maintenance.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "backend/volume/volume.h"
#include "gtest/gtest.h"
#include "tests/support/random_bytes.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

class StorageMaintenanceTest : public ::testing::Test {
 protected:
  std::string Vol() { return dir_.path() + "/vol"; }
  std::string Disk(int i) { return absl::StrCat(dir_.path(), "/disk", i); }

  void FormatAndOpen(int disks, std::optional<std::string> scheme = std::nullopt) {
    FormatOptions options;
    for (int i = 0; i < disks; ++i) options.disks.push_back(Disk(i));
    if (scheme) options.redundancy = *ParseRedundancy(*scheme);
    ASSERT_TRUE(FormatVolume(Vol(), options).ok());
    Reopen();
  }
  void Reopen() {
    volume_.reset();
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol());
    ASSERT_TRUE(config.ok()) << config.status();
    auto volume = Volume::Open(Vol(), *config);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
  }
  // Stores `data` as a new file's only blob; returns the blob id.
  BlobId WriteFile(const std::string& name, const std::string& data) {
    return WriteFileAsOneBlob(volume_->ns(), volume_->blobs(), name, data);
  }
  std::string ShardPath(int disk, BlobId id) {
    return absl::StrFormat("%s/shards/%02x/%016x.shard", Disk(disk), id & 0xff, id);
  }

  TempDir dir_;
  std::unique_ptr<Volume> volume_;
};

TEST_F(StorageMaintenanceTest, FormatPicksRedundancyByDiskCountAndRefusesTooFewDisks) {
  FormatAndOpen(3);
  EXPECT_EQ(volume_->config().redundancy.ToString(), "ec:2+1");
  EXPECT_EQ(LoadVolumeConfig(Vol())->redundancy.ToString(), "ec:2+1");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(fsys::exists(Disk(i) + "/cairn-disk"));
  FormatOptions too_few;
  too_few.disks = {dir_.path() + "/x0", dir_.path() + "/x1"};
  too_few.redundancy = *ParseRedundancy("ec:4+2");
  absl::StatusOr<VolumeConfig> refused = FormatVolume(dir_.path() + "/vol2", too_few);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("needs at least 6 disks"), std::string::npos);
  // A fresh filesystem's lost+found does not make a disk directory busy.
  fsys::create_directories(dir_.path() + "/fresh/lost+found");
  FormatOptions fresh;
  fresh.disks = {dir_.path() + "/fresh"};
  EXPECT_TRUE(FormatVolume(dir_.path() + "/vol4", fresh).ok());
  EXPECT_TRUE(fsys::exists(dir_.path() + "/fresh/lost+found"));
  FormatOptions twice;
  twice.disks = {dir_.path() + "/y", dir_.path() + "/y"};
  EXPECT_FALSE(FormatVolume(dir_.path() + "/vol3", twice).ok());
}

TEST_F(StorageMaintenanceTest, ScrubFindsAndRepairsThenFindsNothing) {
  FormatAndOpen(6);
  std::vector<BlobId> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(WriteFile(absl::StrCat("f", i), RandomBytes(300000, i)));
  fsys::remove(ShardPath(ids[0] % 6, ids[0]));
  {
    std::fstream f(ShardPath((ids[3] + 4) % 6, ids[3]),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('\x42');
  }
  ScrubOptions no_repair;
  no_repair.repair = false;
  ScrubReport found = *ScrubBlobs(volume_->ns(), *volume_->striped(), no_repair);
  EXPECT_EQ(found.blobs_checked, 8u);
  EXPECT_EQ(found.shards_bad, 2u);
  EXPECT_EQ(found.shards_repaired, 0u);
  EXPECT_FALSE(found.Healthy());
  ScrubReport repaired = *ScrubBlobs(volume_->ns(), *volume_->striped(), ScrubOptions());
  EXPECT_EQ(repaired.shards_bad, 2u);
  EXPECT_EQ(repaired.shards_repaired, 2u);
  EXPECT_TRUE(repaired.Healthy());
  EXPECT_TRUE(repaired.finished);
  ScrubReport clean = *ScrubBlobs(volume_->ns(), *volume_->striped(), ScrubOptions());
  EXPECT_EQ(clean.shards_bad, 0u);
  EXPECT_TRUE(clean.Healthy());
}

TEST_F(StorageMaintenanceTest, ScrubStopsAndResumesWhereItStopped) {
  FormatAndOpen(3);
  for (int i = 0; i < 10; ++i) WriteFile(absl::StrCat("f", i), RandomBytes(100000, i));
  int calls = 0;
  BlobId resume = 0;
  ScrubOptions first;
  first.should_stop = [&] { return ++calls > 4; };
  first.checkpoint = [&](BlobId next) { resume = next; };
  ScrubReport part = *ScrubBlobs(volume_->ns(), *volume_->striped(), first);
  EXPECT_FALSE(part.finished);
  EXPECT_EQ(part.blobs_checked, 4u);
  ScrubOptions rest;
  rest.start = resume;
  ScrubReport remainder = *ScrubBlobs(volume_->ns(), *volume_->striped(), rest);
  EXPECT_TRUE(remainder.finished);
  EXPECT_EQ(part.blobs_checked + remainder.blobs_checked, 10u);
}

TEST_F(StorageMaintenanceTest, RepairQueueSurvivesReopenAndDrainsOnceRepaired) {
  FormatAndOpen(3);
  BlobId id = WriteFile("f", RandomBytes(200000, 1));
  fsys::remove(ShardPath(id % 3, id));  // data shard 0
  Reopen();
  ASSERT_TRUE(volume_->blobs().Read(id, 0, 100).ok());  // rebuilt on read: queued
  EXPECT_EQ(*volume_->ns().PendingRepairs(0, 10), std::vector<BlobId>{id});
  Reopen();
  EXPECT_EQ(*volume_->ns().PendingRepairs(0, 10), std::vector<BlobId>{id});
  EXPECT_EQ(*DrainRepairs(volume_->ns(), *volume_->striped(), 10), 1u);
  EXPECT_TRUE(volume_->ns().PendingRepairs(0, 10)->empty());
  EXPECT_TRUE(fsys::exists(ShardPath(id % 3, id)));
}

TEST_F(StorageMaintenanceTest, RepairsWaitingForADownDiskStayQueuedWithoutBeingRead) {
  FormatAndOpen(3);
  BlobId id = WriteFile("f", RandomBytes(200000, 4));
  ASSERT_TRUE(volume_->ns().QueueRepair(id).ok());
  volume_.reset();
  fsys::remove_all(Disk((id + 2) % 3));
  Reopen();  // degraded: one disk missing
  EXPECT_FALSE(volume_->striped()->CanRepair(id));
  EXPECT_EQ(*DrainRepairs(volume_->ns(), *volume_->striped(), 10), 0u);
  EXPECT_EQ(*volume_->ns().PendingRepairs(0, 10), std::vector<BlobId>{id});
  EXPECT_EQ(volume_->striped()->Counters().missing_shards, 0u) << "nothing was read";
}

TEST_F(StorageMaintenanceTest, OrphanShardsAreFoundAndOnlyThoseDeleted) {
  FormatAndOpen(3);
  BlobId kept = WriteFile("f", RandomBytes(100000, 1));
  BlobId orphan = *volume_->ns().AllocateBlobIds(1);
  ASSERT_TRUE(volume_->blobs().Put(orphan, RandomBytes(100000, 2)).ok());
  std::vector<std::string> lines;
  EXPECT_EQ(*FindOrphanShards(volume_->ns(), *volume_->striped(), false, &lines), 1u);
  EXPECT_NE(lines[0].find(absl::StrCat(orphan)), std::string::npos);
  EXPECT_EQ(*FindOrphanShards(volume_->ns(), *volume_->striped(), true, nullptr), 1u);
  EXPECT_EQ(*volume_->blobs().ListIds(0), std::vector<BlobId>{kept});
}

TEST_F(StorageMaintenanceTest, ReplaceDiskRebuildsAndUpdatesTheConfig) {
  FormatAndOpen(3);
  std::vector<std::pair<BlobId, std::string>> files;
  for (int i = 0; i < 5; ++i) {
    std::string data = RandomBytes(250000, i);
    files.emplace_back(WriteFile(absl::StrCat("f", i), data), data);
  }
  volume_.reset();
  fsys::remove_all(Disk(1));
  Reopen();  // degraded
  EXPECT_EQ(volume_->striped()->Disks()[1].state, DiskState::kMissing);
  // Another disk of the volume, a busy directory or an unknown disk are refused.
  EXPECT_FALSE(volume_->ReplaceDisk(Disk(1), Disk(2), false).ok());
  EXPECT_FALSE(volume_->ReplaceDisk(Disk(0), Disk(0), false).ok());  // working, in place
  fsys::create_directories(dir_.path() + "/busy");
  std::ofstream(dir_.path() + "/busy/file") << "x";
  EXPECT_FALSE(volume_->ReplaceDisk(Disk(1), dir_.path() + "/busy", false).ok());
  EXPECT_FALSE(volume_->ReplaceDisk("/no/such/disk", dir_.path() + "/new", false).ok());
  absl::StatusOr<int> index = volume_->ReplaceDisk(Disk(1), dir_.path() + "/new", false);
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, 1);
  EXPECT_EQ(**volume_->ns().GetVolumeMeta(kRebuildPendingKey), "1");
  ScrubReport rebuilt = *ScrubBlobs(volume_->ns(), *volume_->striped(), ScrubOptions());
  EXPECT_EQ(rebuilt.shards_repaired, 5u);
  EXPECT_TRUE(rebuilt.Healthy());
  EXPECT_EQ(LoadVolumeConfig(Vol())->disks[1], dir_.path() + "/new");
  // Full redundancy: another disk may go now.
  volume_.reset();
  fsys::remove_all(Disk(2));
  Reopen();
  for (const auto& [id, data] : files) {
    EXPECT_EQ(*volume_->blobs().Read(id, 0, data.size()), data);
  }
}

TEST_F(StorageMaintenanceTest, PendingRebuildIsResumedByTheDaemonLoop) {
  FormatAndOpen(3);
  BlobId id = WriteFile("f", RandomBytes(200000, 3));
  // As if the daemon stopped right after `disk replace` swapped the disk.
  fsys::remove(ShardPath((id + 1) % 3, id));
  ASSERT_TRUE(volume_->ns().SetVolumeMeta(kRebuildPendingKey, "1").ok());
  {
    StorageMaintenance::Options options;
    options.tick_millis = 50;
    StorageMaintenance maintenance(volume_->ns(), *volume_->striped(), options);
    for (int i = 0; i < 100 && **volume_->ns().GetVolumeMeta(kRebuildPendingKey) != ""; ++i) {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  EXPECT_EQ(**volume_->ns().GetVolumeMeta(kRebuildPendingKey), "");
  EXPECT_TRUE(fsys::exists(ShardPath((id + 1) % 3, id)));
}

TEST_F(StorageMaintenanceTest, PlainVolumesCannotReplaceADisk) {
  FormatAndOpen(1);
  EXPECT_EQ(volume_->config().redundancy.ToString(), "plain");
  absl::StatusOr<int> refused = volume_->ReplaceDisk("0", dir_.path() + "/new", false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("nothing to rebuild"), std::string::npos);
}

}  // namespace
}  // namespace cairn
