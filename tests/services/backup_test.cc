// Namespace backups, the replica's garbage collection and restore
// (backend/namespace_backup.h), on real three-disk volumes replicating to
// s3rver on 127.0.0.1 behind the tests' fault proxy.
#include "backend/s3/s3_client.h"
#include "backend/services/backup.h"
#include "backend/services/backup_service.h"
#include "backend/services/backup_verify.h"
#include "backend/services/replica_gc.h"
#include "backend/volume/restore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/services/replication.h"
#include "backend/volume/volume.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/replica_bucket.h"
#include "tests/support/random_bytes.h"
#include "tests/support/s3rver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

class BackupTest : public ReplicaBucketTest {
 protected:
  void TearDown() override {
    if (proxy_) proxy_->refuse = false;
    Close();
  }
  void Close() {
    replicator_.reset();
    backups_.reset();
    replica_.reset();
    volume_.reset();
  }
  // Opens the volume with a [replica] on the test's server; deleted data is
  // collectable at once.
  void Open() {
    Close();
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol());
    ASSERT_TRUE(config.ok()) << config.status();
    config->replica = ReplicaSection();
    config->gc_grace_seconds = 0;
    auto volume = Volume::Open(Vol(), *config);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    replica_ = std::make_unique<RemoteBlobStore>(*client_, "cairn/", VolumeId());
    backups_ = std::make_unique<BackupStore>(*client_, "cairn/", VolumeId());
    Replicator::Options options;
    options.background = false;
    replicator_ = std::make_unique<Replicator>(volume_->ns(), volume_->blobs(), *replica_, options);
  }
  std::string VolumeId() { return volume_->config().volume_id; }
  BlobId WriteFile(const std::string& name, const std::string& data) {
    return WriteFileAsOneBlob(volume_->ns(), volume_->blobs(), name, data);
  }
  void Replicate() {
    absl::StatusOr<uint64_t> pass = replicator_->RunPass();
    ASSERT_TRUE(pass.ok()) << pass.status();
  }
  absl::StatusOr<BackupManifest> Backup(int64_t wait_seconds = 2) {
    BackupOptions options;
    options.work_dir = BackupWorkDir(Vol());
    options.replication_wait_seconds = wait_seconds;
    return TakeBackup(volume_->ns(), *backups_, *replica_, options);
  }
  // Deletes a file and collects its blob locally, as the daemon's GC does.
  void DeleteFile(const std::string& name) {
    NamespaceStore& ns = volume_->ns();
    absl::StatusOr<InodeAttr> unlinked = ns.Unlink(kRootInode, name);
    ASSERT_TRUE(unlinked.ok()) << unlinked.status();
    ASSERT_TRUE(ns.ReleaseInode(unlinked->ino).ok());
    absl::StatusOr<std::vector<BlobId>> garbage = ns.CollectableBlobs(100);
    ASSERT_TRUE(garbage.ok());
    for (BlobId id : *garbage) ASSERT_TRUE(volume_->blobs().Delete(id).ok());
    ASSERT_TRUE(ns.ForgetBlobs(*garbage).ok());
  }
  std::vector<BlobId> ReplicaIds() {
    absl::StatusOr<std::vector<BlobId>> ids = replica_->ListIds(0);
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? *ids : std::vector<BlobId>{};
  }
  std::vector<BackupListing> Listed() {
    absl::StatusOr<std::vector<BackupListing>> listed = backups_->List();
    EXPECT_TRUE(listed.ok()) << listed.status();
    return listed.ok() ? *listed : std::vector<BackupListing>{};
  }
  size_t CompleteBackups() {
    size_t n = 0;
    for (const BackupListing& b : Listed()) n += b.complete;
    return n;
  }
  absl::StatusOr<RestoreReport> Restore(const BackupManifest& manifest, const std::string& name,
                                        RestoreOptions options = {}) {
    if (options.disks.empty()) {
      for (int i = 0; i < 3; ++i) options.disks.push_back(absl::StrCat(dir_.path(), "/", name, i));
    }
    return RestoreVolume(*backups_, *replica_, manifest, dir_.path() + "/" + name, options);
  }
  // The content of file `name` in the root of `volume`, or "<error>".
  static std::string ReadFile(Volume& volume, const std::string& name) {
    absl::StatusOr<InodeAttr> attr = volume.ns().Lookup(kRootInode, name);
    if (!attr.ok()) return "<missing>";
    absl::StatusOr<std::vector<Extent>> extents = volume.ns().GetExtents(attr->ino, 0, attr->size);
    if (!extents.ok()) return "<error>";
    std::string data(attr->size, '\0');
    for (const Extent& e : *extents) {
      if (e.blob_id == kNoBlob) {
        data.replace(e.file_offset, e.length, e.inline_data);
        continue;
      }
      absl::StatusOr<std::string> piece = volume.blobs().Read(e.blob_id, e.blob_offset, e.length);
      if (!piece.ok()) return "<error>";
      data.replace(e.file_offset, e.length, *piece);
    }
    return data;
  }
  std::unique_ptr<Volume> OpenRestored(const std::string& name) {
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(dir_.path() + "/" + name);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    auto volume = Volume::Open(dir_.path() + "/" + name, *config);
    EXPECT_TRUE(volume.ok()) << volume.status();
    return volume.ok() ? std::move(*volume) : nullptr;
  }

  std::unique_ptr<Volume> volume_;
  std::unique_ptr<RemoteBlobStore> replica_;
  std::unique_ptr<BackupStore> backups_;
  std::unique_ptr<Replicator> replicator_;
};

TEST_F(BackupTest, ARestoredVolumeHoldsExactlyWhatTheBackupSaw) {
  ASSERT_NO_FATAL_FAILURE(Open());
  NamespaceStore& ns = volume_->ns();
  std::string a = RandomBytes(300000, 1), b = RandomBytes(1 << 20, 2);
  WriteFile("a", a);
  WriteFile("b", b);
  NewNode dir;
  dir.mode = S_IFDIR | 0750;
  InodeId d = ns.MakeNode(kRootInode, "d", dir, {})->ino;
  NewNode link;
  link.mode = S_IFLNK | 0777;
  link.symlink_target = "../a";
  InodeId l = ns.MakeNode(d, "l", link, {})->ino;
  ASSERT_TRUE(ns.SetXattr(d, "user.note", std::string("x\0y", 3), XattrMode::kCreateOrReplace).ok());
  ASSERT_NO_FATAL_FAILURE(Replicate());
  absl::StatusOr<BackupManifest> manifest = Backup();
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->blob_count, 2u);
  EXPECT_EQ(manifest->blob_bytes, a.size() + b.size());
  EXPECT_EQ(manifest->inodes, 5u);
  EXPECT_FALSE(std::filesystem::exists(BackupWorkDir(Vol()) + "/" + manifest->backup_id))
      << "the local checkpoint is removed after the upload";
  // Written after the backup: not in what is restored from it.
  BlobId later = WriteFile("c", RandomBytes(5000, 3));
  ASSERT_NO_FATAL_FAILURE(Replicate());

  absl::StatusOr<RestoreReport> report = Restore(*manifest, "new");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->blobs, 2u);
  EXPECT_EQ(report->bytes, a.size() + b.size());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/new/" + kRestoreMarkerName));
  std::unique_ptr<Volume> restored = OpenRestored("new");
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(restored->config().volume_id, VolumeId()) << "the volume keeps its id";
  EXPECT_FALSE(restored->config().replica.has_value()) << "no take-over asked";
  EXPECT_EQ(ReadFile(*restored, "a"), a);
  EXPECT_EQ(ReadFile(*restored, "b"), b);
  EXPECT_EQ(ReadFile(*restored, "c"), "<missing>");
  absl::StatusOr<InodeAttr> rd = restored->ns().Lookup(kRootInode, "d");
  ASSERT_TRUE(rd.ok());
  EXPECT_EQ(rd->ino, d);
  EXPECT_EQ(rd->mode, S_IFDIR | 0750u);
  EXPECT_EQ(*restored->ns().GetXattr(d, "user.note"), std::string("x\0y", 3));
  EXPECT_EQ(*restored->ns().ReadLink(l), "../a");
  // Everything is local now, nothing is queued, and new blob ids are past
  // every id the replica holds (the lost volume's later writes).
  absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> records =
      restored->ns().ListBlobs(0, 100);
  ASSERT_TRUE(records.ok());
  for (const auto& [id, record] : *records) {
    EXPECT_EQ(record.location, BlobLocation::kLocal) << id;
  }
  EXPECT_TRUE(restored->ns().PendingReplications(0, 10)->empty());
  EXPECT_GT(*restored->ns().AllocateBlobIds(1), later);
}

TEST_F(BackupTest, ABackupWaitsForTheBlobsItNeedsAndIsUnusableUntilTheyAreCopied) {
  ASSERT_NO_FATAL_FAILURE(Open());
  WriteFile("a", RandomBytes(100000, 4));
  // The replica never gets the blob: the backup gives up, unlisted.
  absl::StatusOr<BackupManifest> failed = Backup(1);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("has not reached the replica"), std::string::npos)
      << failed.status();
  ASSERT_EQ(Listed().size(), 1u) << "its files were uploaded";
  EXPECT_FALSE(Listed()[0].complete);
  EXPECT_FALSE(backups_->Choose("").ok()) << "an interrupted backup is never chosen";
  EXPECT_FALSE(backups_->Choose(Listed()[0].id).ok());
  // With the replicator running meanwhile, the backup waits and completes.
  std::thread replicating([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_TRUE(replicator_->RunPass().ok());
  });
  absl::StatusOr<BackupManifest> waited = Backup(30);
  replicating.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(backups_->Choose("")->backup_id, waited->backup_id);
  absl::StatusOr<ReplicaGcReport> gc = CollectReplicaGarbage(volume_->ns(), *backups_, *replica_, 5);
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->backups_deleted, 1u) << "the interrupted one";
  EXPECT_EQ(Listed().size(), 1u);
}

TEST_F(BackupTest, AnOutageAtAnyStepOfABackupNeverLeavesATornOneListedAsUsable) {
  ASSERT_NO_FATAL_FAILURE(Open());
  std::string a = RandomBytes(200000, 5);
  WriteFile("a", a);
  ASSERT_NO_FATAL_FAILURE(Replicate());
  int before = proxy_->requests;
  ASSERT_TRUE(Backup().ok());
  const int requests = proxy_->requests - before;
  ASSERT_GT(requests, 4);
  ASSERT_EQ(CompleteBackups(), 1u);
  // The remote goes away after 1, 2, ... requests of the next backup.
  for (int after = 1; after < requests; ++after) {
    WriteFile(absl::StrCat("f", after), RandomBytes(1000 + after, after));
    ASSERT_NO_FATAL_FAILURE(Replicate());
    proxy_->outage_after = after;
    absl::StatusOr<BackupManifest> torn = Backup();
    proxy_->outage_after = 0;
    proxy_->refuse = false;
    EXPECT_FALSE(torn.ok()) << "outage after " << after << " requests";
    EXPECT_EQ(CompleteBackups(), 1u) << "outage after " << after << " requests";
  }
  // 503 bursts and dropped connections are retried: the backup completes.
  proxy_->slow_down = 2;
  ASSERT_TRUE(Backup().ok());
  proxy_->reset_mid_body = 1;
  absl::StatusOr<BackupManifest> through = Backup();
  ASSERT_TRUE(through.ok()) << through.status();
  EXPECT_EQ(CompleteBackups(), 3u);
  // And what it restores is whole.
  absl::StatusOr<RestoreReport> report = Restore(*through, "new");
  ASSERT_TRUE(report.ok()) << report.status();
  std::unique_ptr<Volume> restored = OpenRestored("new");
  ASSERT_NE(restored, nullptr);
  EXPECT_EQ(ReadFile(*restored, "a"), a);
  EXPECT_EQ(ReadFile(*restored, "f1"), RandomBytes(1001, 1));
}

TEST_F(BackupTest, GarbageCollectionNeverDeletesWhatAKeptBackupNeeds) {
  ASSERT_NO_FATAL_FAILURE(Open());
  std::string a = RandomBytes(120000, 6), b = RandomBytes(130000, 7);
  BlobId id_a = WriteFile("a", a);
  BlobId id_b = WriteFile("b", b);
  ASSERT_NO_FATAL_FAILURE(Replicate());
  absl::StatusOr<BackupManifest> older = Backup();
  ASSERT_TRUE(older.ok()) << older.status();
  ASSERT_NO_FATAL_FAILURE(DeleteFile("a"));
  EXPECT_EQ(volume_->ns().GetBlob(id_a).status().code(), absl::StatusCode::kNotFound)
      << "collected locally";
  BlobId id_c = WriteFile("c", RandomBytes(1000, 8));
  ASSERT_NO_FATAL_FAILURE(Replicate());
  absl::StatusOr<BackupManifest> newer = Backup();
  ASSERT_TRUE(newer.ok()) << newer.status();

  absl::StatusOr<ReplicaGcReport> gc = CollectReplicaGarbage(volume_->ns(), *backups_, *replica_, 2);
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->objects_deleted, 0u);
  EXPECT_EQ(ReplicaIds(), (std::vector<BlobId>{id_a, id_b, id_c})) << "the older backup needs a";
  absl::StatusOr<RestoreReport> report = Restore(*older, "old");
  ASSERT_TRUE(report.ok()) << report.status();
  {
    std::unique_ptr<Volume> restored = OpenRestored("old");
    ASSERT_NE(restored, nullptr);
    EXPECT_EQ(ReadFile(*restored, "a"), a);
    EXPECT_EQ(ReadFile(*restored, "c"), "<missing>");
  }
  // Once no kept backup needs it, it goes (and only it).
  gc = CollectReplicaGarbage(volume_->ns(), *backups_, *replica_, 1);
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->backups_deleted, 1u);
  EXPECT_EQ(gc->objects_deleted, 1u);
  EXPECT_EQ(ReplicaIds(), (std::vector<BlobId>{id_b, id_c}));
  EXPECT_EQ(Listed().size(), 1u);
  EXPECT_EQ(Listed()[0].id, newer->backup_id);
}

TEST_F(BackupTest, ADeletedBlobIsKeptLocallyUntilTheReplicaHasIt) {
  ASSERT_NO_FATAL_FAILURE(Open());
  NamespaceStore& ns = volume_->ns();
  std::string data = RandomBytes(50000, 9);
  BlobId id = WriteFile("a", data);
  absl::StatusOr<InodeAttr> unlinked = ns.Unlink(kRootInode, "a");
  ASSERT_TRUE(unlinked.ok());
  ASSERT_TRUE(ns.ReleaseInode(unlinked->ino).ok());
  EXPECT_TRUE(ns.CollectableBlobs(10)->empty()) << "a backup taken before the delete needs it";
  ASSERT_NO_FATAL_FAILURE(Replicate());
  EXPECT_TRUE(replica_->Verify(id, data.size(), Crc32c(data)).ok());
  EXPECT_EQ(*ns.CollectableBlobs(10), std::vector<BlobId>{id});
}

TEST_F(BackupTest, VerifyFindsMissingAndDamagedBlobsAndWritesNothing) {
  ASSERT_NO_FATAL_FAILURE(Open());
  BlobId id_a = WriteFile("a", RandomBytes(70000, 10));
  BlobId id_b = WriteFile("b", RandomBytes(80000, 11));
  WriteFile("c", RandomBytes(90000, 12));
  ASSERT_NO_FATAL_FAILURE(Replicate());
  absl::StatusOr<BackupManifest> manifest = Backup();
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  uint64_t calls = 0;
  absl::StatusOr<VerifyReport> clean =
      VerifyBackup(*backups_, *replica_, *manifest, 2, [&](uint64_t, uint64_t, uint64_t, uint64_t) { calls++; });
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_TRUE(clean->ok());
  EXPECT_EQ(clean->blobs, 3u);
  EXPECT_EQ(calls, 3u);
  int puts_before = proxy_->requests;
  ASSERT_TRUE(client_->DeleteObject(replica_->KeyOf(id_a)).ok());
  std::string other = RandomBytes(80000, 99);
  ASSERT_TRUE(client_->PutObject(replica_->KeyOf(id_b), other).ok());
  puts_before = proxy_->requests;
  absl::StatusOr<VerifyReport> bad = VerifyBackup(*backups_, *replica_, *manifest, 2, nullptr);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_FALSE(bad->ok());
  EXPECT_EQ(bad->missing, 1u);
  EXPECT_EQ(bad->damaged, 1u);
  ASSERT_EQ(bad->problems.size(), 2u);
  EXPECT_EQ(Listed().size(), 1u) << "verify writes nothing";
  EXPECT_GT(proxy_->requests.load(), puts_before);
}

TEST_F(BackupTest, AnInterruptedRestoreCannotBeMountedAndFinishesWhenRunAgain) {
  ASSERT_NO_FATAL_FAILURE(Open());
  std::vector<std::string> data;
  for (int i = 0; i < 6; ++i) {
    data.push_back(RandomBytes(60000 + i, 20 + i));
    WriteFile(absl::StrCat("f", i), data.back());
  }
  ASSERT_NO_FATAL_FAILURE(Replicate());
  absl::StatusOr<BackupManifest> manifest = Backup();
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  RestoreOptions options;
  options.parallel = 1;
  options.progress = [&](uint64_t done, uint64_t, uint64_t, uint64_t) {
    if (done == 3) proxy_->refuse = true;  // the remote goes away mid-restore
  };
  absl::StatusOr<RestoreReport> cut = Restore(*manifest, "new", options);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("run the same cairn restore again"), std::string::npos)
      << cut.status();
  proxy_->refuse = false;
  std::string dir = dir_.path() + "/new";
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Volume>> half = Volume::Open(dir, *config);
  ASSERT_FALSE(half.ok()) << "a half-restored volume is never mounted";
  EXPECT_NE(half.status().message().find("cairn restore"), std::string::npos) << half.status();
  // Another backup's restore may not take over the directory.
  BackupManifest other = *manifest;
  other.backup_id = "20200101T000000.000000Z-0000";
  absl::StatusOr<RestoreReport> wrong = Restore(other, "new");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("another backup"), std::string::npos) << wrong.status();

  absl::StatusOr<RestoreReport> again = Restore(*manifest, "new");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GE(again->already_there, 3u) << "blobs stored by the first run are kept";
  EXPECT_EQ(again->already_there + again->blobs, 6u);
  std::unique_ptr<Volume> restored = OpenRestored("new");
  ASSERT_NE(restored, nullptr);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ReadFile(*restored, absl::StrCat("f", i)), data[i]) << i;
}

TEST_F(BackupTest, RestoreRefusesADirectoryInUseAndWritesNothingWithWrongCredentials) {
  ASSERT_NO_FATAL_FAILURE(Open());
  WriteFile("a", RandomBytes(1000, 30));
  ASSERT_NO_FATAL_FAILURE(Replicate());
  absl::StatusOr<BackupManifest> manifest = Backup();
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  std::filesystem::create_directories(dir_.path() + "/used");
  std::ofstream(dir_.path() + "/used/keep") << "mine";
  absl::StatusOr<RestoreReport> refused = Restore(*manifest, "used");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not empty"), std::string::npos) << refused.status();
  EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/used/keep"));
  absl::StatusOr<RestoreReport> over_volume = Restore(*manifest, "vol");
  ASSERT_FALSE(over_volume.ok());
  EXPECT_NE(over_volume.status().message().find("already holds a cairn volume"), std::string::npos)
      << over_volume.status();

  s3::S3Options options;
  options.endpoint = server_->endpoint();
  options.bucket = "replica";
  options.credentials = {"NOT-THE-KEY", "wrong", ""};
  options.max_attempts = 1;
  std::unique_ptr<s3::S3Client> wrong = std::move(*s3::S3Client::Create(options));
  absl::StatusOr<ReplicaVolume> found = FindReplicaVolume(*wrong, "cairn/");
  ASSERT_FALSE(found.ok()) << "s3rver refuses an unknown access key";
  EXPECT_NE(found.status().message().find("InvalidAccessKeyId"), std::string::npos)
      << found.status();
}

TEST_F(BackupTest, TheReplicaIsFoundByItsPrefixOrByTheVolumesOwn) {
  ASSERT_NO_FATAL_FAILURE(Open());
  WriteFile("a", RandomBytes(1000, 31));
  ASSERT_NO_FATAL_FAILURE(Replicate());
  ASSERT_TRUE(Backup().ok());
  absl::StatusOr<ReplicaVolume> by_prefix = FindReplicaVolume(*client_, "cairn/");
  ASSERT_TRUE(by_prefix.ok()) << by_prefix.status();
  EXPECT_EQ(by_prefix->prefix, "cairn/");
  EXPECT_EQ(by_prefix->volume_id, VolumeId());
  absl::StatusOr<ReplicaVolume> by_id = FindReplicaVolume(*client_, "cairn/" + VolumeId());
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(by_id->prefix, "cairn/");
  EXPECT_EQ(by_id->volume_id, VolumeId());
  EXPECT_EQ(FindReplicaVolume(*client_, "elsewhere/").status().code(),
            absl::StatusCode::kNotFound);
  // A second volume under the same prefix: the name is needed.
  ASSERT_TRUE(client_->PutObject("cairn/0123456789abcdef0123456789abcdef/blobs/01/x", "x").ok());
  absl::StatusOr<ReplicaVolume> two = FindReplicaVolume(*client_, "cairn/");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("2 volumes"), std::string::npos) << two.status();
}

TEST_F(BackupTest, ATierSharingTheReplicasObjectsLeavesTheirDeletionToTheReplicaGc) {
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol());
  ASSERT_TRUE(config.ok());
  config->replica = ReplicaSection();
  TierConfig tier;
  static_cast<S3Target&>(tier) = ReplicaSection();
  config->tier = tier;
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(Vol(), *config);
  ASSERT_TRUE(volume.ok()) << volume.status();
  ASSERT_NE((*volume)->remote(), nullptr);
  EXPECT_TRUE((*volume)->remote()->deletes_left_to_replica_gc());
  std::string data = RandomBytes(1000, 32);
  ASSERT_TRUE((*volume)->remote()->Put(77, data).ok());
  ASSERT_TRUE((*volume)->remote()->Delete(77).ok());
  EXPECT_TRUE(client_->HeadObject((*volume)->remote()->KeyOf(77)).ok())
      << "a kept backup may need it";
}

TEST_F(BackupTest, TheServiceRecordsItsBackupsForStatusMetricsAndTheNextMount) {
  ASSERT_NO_FATAL_FAILURE(Open());
  WriteFile("a", RandomBytes(4000, 40));
  ASSERT_NO_FATAL_FAILURE(Replicate());
  BackupService::Options options;
  options.background = false;
  options.keep = 2;
  options.backup.work_dir = BackupWorkDir(Vol());
  std::string id;
  {
    BackupService service(volume_->ns(), *backups_, *replica_, options);
    EXPECT_EQ(service.GetStatus().last_id, "");
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<BackupService::Result> result = service.RunNow();
      ASSERT_TRUE(result.ok()) << result.status();
      id = result->manifest.backup_id;
    }
    EXPECT_EQ(service.GetStatus().last_id, id);
    EXPECT_EQ(service.GetStatus().kept, 2u);
    EXPECT_EQ(service.GetStatus().errors, 0u);
    // A failed backup shows as an error, and the last good one stays.
    proxy_->server_error = 1000;
    EXPECT_FALSE(service.RunNow().ok());
    proxy_->server_error = 0;
    EXPECT_EQ(service.GetStatus().errors, 1u);
    EXPECT_EQ(service.GetStatus().last_id, id);
  }
  EXPECT_EQ(CompleteBackups(), 2u) << "keep_backups";
  // After a restart the service knows when the last backup was taken.
  BackupService again(volume_->ns(), *backups_, *replica_, options);
  EXPECT_EQ(again.GetStatus().last_id, id);
}

TEST_F(BackupTest, AVolumeRestoredWithTakeOverStopsTheOldCopyFromWritingTheReplica) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ReplicaOwner* old_owner = volume_->replica_owner();
  ASSERT_NE(old_owner, nullptr);
  Replicator::Options options;
  options.background = false;
  options.owner = old_owner;
  replicator_ = std::make_unique<Replicator>(volume_->ns(), volume_->blobs(), *replica_, options);
  backups_->set_owner(old_owner);
  std::string a = RandomBytes(10000, 50);
  WriteFile("a", a);
  ASSERT_NO_FATAL_FAILURE(Replicate());  // the first pass claims the replica
  absl::StatusOr<BackupManifest> manifest = Backup();
  ASSERT_TRUE(manifest.ok()) << manifest.status();

  RestoreOptions take_over;
  take_over.take_over = ReplicaSection();
  absl::StatusOr<RestoreReport> restored = Restore(*manifest, "new", take_over);
  ASSERT_TRUE(restored.ok()) << restored.status();
  // The old copy comes back: it may not copy, back up or delete any more.
  WriteFile("b", RandomBytes(10000, 51));
  std::vector<BlobId> objects = ReplicaIds();
  ReplicaOwner fresh(*client_, "cairn/" + VolumeId() + "/", old_owner->token());
  options.owner = &fresh;
  replicator_ = std::make_unique<Replicator>(volume_->ns(), volume_->blobs(), *replica_, options);
  absl::StatusOr<uint64_t> pass = replicator_->RunPass();
  ASSERT_FALSE(pass.ok());
  EXPECT_NE(pass.status().message().find("another copy of this volume"), std::string::npos)
      << pass.status();
  EXPECT_FALSE(Backup().ok());
  EXPECT_FALSE(CollectReplicaGarbage(volume_->ns(), *backups_, *replica_, 1).ok());
  EXPECT_EQ(ReplicaIds(), objects) << "nothing written or deleted by the old copy";

  // The new copy replicates, with a config that says so.
  std::unique_ptr<Volume> new_volume = OpenRestored("new");
  ASSERT_NE(new_volume, nullptr);
  ASSERT_TRUE(new_volume->config().replica.has_value());
  ASSERT_NE(new_volume->replica_owner(), nullptr);
  EXPECT_NE(new_volume->replica_owner()->token(), old_owner->token());
  EXPECT_TRUE(new_volume->replica_owner()->Check(true).ok());
  EXPECT_TRUE(new_volume->ns().PendingReplications(0, 10)->empty())
      << "its blobs came from the replica: none is queued again";
  // Claiming back (the operator's call) turns it around.
  ASSERT_TRUE(fresh.Claim().ok());
  EXPECT_FALSE(new_volume->replica_owner()->Check(true).ok());
}

TEST(BackupManifestTest, RoundTripsAndRefusesDamage) {
  BackupManifest m;
  m.backup_id = "20261127T060000.000000Z-abcd";
  m.volume_id = "0123456789abcdef0123456789abcdef";
  m.created_sec = 1790000000;
  m.inodes = 12;
  m.data_bytes = 3456;
  m.blob_count = 2;
  m.blob_bytes = 3000;
  m.blob_list_size = 32;
  m.blob_list_crc32c = 77;
  m.files = {{"000012.sst", 1000, 5}, {"CURRENT", 16, 6}};
  absl::StatusOr<BackupManifest> back = BackupManifest::Parse(m.Encode());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->Encode(), m.Encode());
  EXPECT_EQ(back->StoredBytes(), 1048u);
  std::string text = m.Encode();
  EXPECT_FALSE(BackupManifest::Parse(text.substr(0, text.size() - 4)).ok()) << "truncated";
  EXPECT_FALSE(BackupManifest::Parse("cairn-backup 2\nend\n").ok()) << "newer format";
  std::string evil = text;
  evil.replace(evil.find("000012.sst"), 10, "../../etc/");
  EXPECT_FALSE(BackupManifest::Parse(evil).ok()) << "a file name may not leave the directory";
}

}  // namespace
}  // namespace cairn
