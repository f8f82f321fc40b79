// The remote tier and the replica of a real three-disk volume, their
// buckets in memory (tests/support/fake_object_store.h) and the volume
// opened with them through Io, as the daemon opens it with S3: remote
// faults at every step of a move, outages, damaged answers, and the
// replicator's queue through them all. No server, no real time.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "backend/base/crc32c.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/blob/remote_blob_store.h"
#include "backend/services/remote_scrub.h"
#include "backend/services/replication.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/volume/space_reserve.h"
#include "backend/volume/volume.h"
#include "backend/volume/volume_services.h"
#include "tests/support/fake_clock.h"
#include "tests/support/fake_object_store.h"
#include "tests/support/mem_env.h"
#include "tests/support/random_bytes.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

using Fault = FakeObjectStore::Fault;
using Op = FakeObjectStore::Op;

constexpr char kEndpoint[] = "http://fake";

const std::vector<Fault> kEveryFault = {Fault::kNetworkError, Fault::kSlowDown,
                                        Fault::kInternalError, Fault::kAccessDenied,
                                        Fault::kNoSuchBucket};

std::string FaultName(Fault fault) {
  switch (fault) {
    case Fault::kNetworkError: return "network error";
    case Fault::kSlowDown: return "503 SlowDown";
    case Fault::kInternalError: return "500 InternalError";
    case Fault::kAccessDenied: return "403 AccessDenied";
    case Fault::kNoSuchBucket: return "NoSuchBucket";
  }
  return "?";
}

// A private directory on tmpfs (/dev/shm) when there is one, else under
// /tmp, removed with the test. A three-disk volume is 768 fan-out
// directories, and making and removing them on the test machine's disk
// took seconds a test; nothing tested here depends on the disk.
class ScratchDir {
 public:
  ScratchDir() {
    for (const char* base : {"/dev/shm", "/tmp"}) {
      std::string path = std::string(base) + "/cairn-test-XXXXXX";
      if (mkdtemp(path.data()) != nullptr) {
        path_ = path;
        return;
      }
    }
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class TierFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FormatOptions format;
    for (int i = 0; i < 3; ++i) format.disks.push_back(Disk(i));
    absl::StatusOr<VolumeConfig> formatted = FormatVolume(Vol(), format, TestIo());
    ASSERT_TRUE(formatted.ok()) << formatted.status();
  }

  Io TestIo() { return Io{env_, &clock_, &factory_}; }
  std::string Vol() { return dir_.path() + "/vol"; }
  std::string Disk(int i) { return absl::StrCat(dir_.path(), "/disk", i); }
  FakeObjectStore& Tier() { return factory_.Bucket(kEndpoint, "tier"); }
  FakeObjectStore& Replica() { return factory_.Bucket(kEndpoint, "replica"); }

  // Gives the volume a [tier] on the fake bucket "tier" (and a [replica] on
  // "replica") in cairn.toml, with the secret in the file as users write
  // it (SaveVolumeConfig makes such a file owner-only, which the
  // credentials check wants), then opens it.
  void ConfigureAndOpen(bool with_replica, int64_t cache_bytes) {
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol(), "", env_);
    ASSERT_TRUE(config.ok()) << config.status();
    TierConfig tier;
    tier.endpoint = kEndpoint;
    tier.bucket = "tier";
    tier.access_key_id = "AKID";
    tier.secret_access_key = "tier-secret";
    tier.cache_bytes = cache_bytes;
    config->tier = tier;
    if (with_replica) {
      ReplicaConfig replica;
      replica.endpoint = kEndpoint;
      replica.bucket = "replica";
      replica.access_key_id = "AKID";
      replica.secret_access_key = "replica-secret";
      config->replica = replica;
    }
    ASSERT_TRUE(SaveVolumeConfig(Vol(), *config, env_).ok());
    ASSERT_NO_FATAL_FAILURE(Reopen());
  }

  // Closes the volume if open and opens it again from cairn.toml: the
  // factory gives it the same buckets.
  void Reopen() {
    services_.reset();
    volume_.reset();
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol(), "", env_);
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(Vol(), *config, TestIo());
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    ASSERT_NE(volume_->tier_mover(), nullptr);
    VolumeServices::Options options;
    options.background = false;
    services_ = std::make_unique<VolumeServices>(*volume_, options);
  }

  BlobId WriteFile(const std::string& name, const std::string& data) {
    return WriteFileAsOneBlob(volume_->ns(), volume_->blobs(), name, data);
  }
  BlobLocation Location(BlobId id) { return volume_->ns().GetBlob(id)->location; }
  int LocalShards(BlobId id) {
    int n = 0;
    for (int d = 0; d < 3; ++d) {
      n += std::filesystem::exists(
          absl::StrFormat("%s/shards/%02x/%016x.shard", Disk(d), id & 0xff, id));
    }
    return n;
  }
  absl::StatusOr<std::string> ReadBlob(BlobId id, uint64_t length) {
    return volume_->blobs().Read(id, 0, length);
  }
  // Whether blob `id` reads back as `data`, saying briefly how not.
  ::testing::AssertionResult ReadsBack(BlobId id, const std::string& data) {
    absl::StatusOr<std::string> read = ReadBlob(id, data.size());
    if (!read.ok()) return ::testing::AssertionFailure() << "blob " << id << ": " << read.status();
    if (*read != data) {
      return ::testing::AssertionFailure() << "blob " << id << " read back " << read->size()
                                           << " bytes that are not the ones written";
    }
    return ::testing::AssertionSuccess();
  }
  // Ask with the buckets' faults cleared: each is a request.
  bool InTier(BlobId id, const std::string& data) {
    return volume_->remote()->Verify(id, data.size(), Crc32c(data)).ok();
  }
  bool InReplica(BlobId id, const std::string& data) {
    return volume_->replica()->Verify(id, data.size(), Crc32c(data)).ok();
  }
  std::vector<BlobId> Queued() {
    std::vector<BlobId> ids;
    absl::StatusOr<std::vector<QueuedReplication>> queued =
        volume_->ns().PendingReplications(0, 1000);
    EXPECT_TRUE(queued.ok()) << queued.status();
    if (queued.ok()) {
      for (const QueuedReplication& q : *queued) ids.push_back(q.id);
    }
    return ids;
  }
  // Local, with every shard: or in the tier only, verified there.
  void ExpectWholeOnOneSide(BlobId id, const std::string& data) {
    const BlobLocation location = Location(id);
    if (location == BlobLocation::kRemote) {
      EXPECT_EQ(LocalShards(id), 0);
      EXPECT_TRUE(InTier(id, data)) << "freed locally without a verified remote copy";
    } else {
      EXPECT_EQ(location, BlobLocation::kLocal);
      EXPECT_EQ(LocalShards(id), 3) << "local data freed before the move was committed";
    }
  }

  ScratchDir dir_;
  Env* env_ = Env::Default();  // set before SetUp by a test on a MemEnv
  FakeClock clock_;
  FakeObjectStoreFactory factory_{&clock_};
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<VolumeServices> services_;
};

TEST_F(TierFakeTest, AMoveOutFailingAtEveryRequestFreesNothingUntilItsCopyIsVerified) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(/*with_replica=*/false, /*cache_bytes=*/0));
  TierMover& mover = *volume_->tier_mover();
  std::vector<std::pair<BlobId, std::string>> files;
  uint32_t seed = 0;
  for (Fault fault : kEveryFault) {
    bool went_through = false;
    for (int k = 0; !went_through; ++k) {
      ASSERT_LT(k, 10) << "a move out is a few requests";
      SCOPED_TRACE(absl::StrCat(FaultName(fault), " after ", k, " requests"));
      std::string data = RandomBytes(300000, ++seed);
      BlobId id = WriteFile(absl::StrCat("f", seed), data);
      files.emplace_back(id, data);
      Tier().FailAfter(k, fault);
      went_through = mover.MoveOut(id).ok();
      Tier().SetOutage(false);
      if (!went_through) {
        EXPECT_EQ(Location(id), BlobLocation::kLocal);
        EXPECT_EQ(LocalShards(id), 3);
        EXPECT_TRUE(ReadsBack(id, data));
        // The remote is back: the same move goes through.
        ASSERT_TRUE(mover.MoveOut(id).ok());
      }
      EXPECT_EQ(Location(id), BlobLocation::kRemote);
      ExpectWholeOnOneSide(id, data);
    }
  }
  for (const auto& [id, data] : files) EXPECT_TRUE(ReadsBack(id, data));
  // Reopened, the volume finds them in the same bucket.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  for (const auto& [id, data] : files) EXPECT_TRUE(ReadsBack(id, data));
}

TEST_F(TierFakeTest, AMoveOutWhoseUploadOrReadBackIsWrongFreesNothing) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, 0));
  TierMover& mover = *volume_->tier_mover();
  std::string data = RandomBytes(300000, 1);
  BlobId id = WriteFile("f", data);
  auto expect_not_moved = [&](const char* why) {
    absl::Status moved = mover.MoveOut(id);
    EXPECT_EQ(GetFsErrorKind(moved), FsErrorKind::kIo) << why << ": " << moved;
    EXPECT_EQ(Location(id), BlobLocation::kLocal) << why;
    EXPECT_EQ(LocalShards(id), 3) << why;
  };
  Tier().DamageNextGets(1, FakeObjectStore::BodyDamage::kFlipByte);
  expect_not_moved("read back with a flipped byte");
  Tier().DamageNextGets(1, FakeObjectStore::BodyDamage::kShortBody);
  expect_not_moved("read back short");
  // Changed on the way up: the bucket checks the CRC32C sent with it.
  Tier().SetBodyHook([](Op op, const std::string&, std::string* body) {
    if (op == Op::kPut) (*body)[body->size() - 1] ^= 1;
  });
  expect_not_moved("uploaded damaged");
  Tier().ClearFaults();
  // A wrong object at the key (another writer) is replaced, then verified.
  Tier().SetObject(volume_->remote()->KeyOf(id), "not the blob");
  ASSERT_TRUE(mover.MoveOut(id).ok());
  ExpectWholeOnOneSide(id, data);
  EXPECT_TRUE(ReadsBack(id, data));
}

TEST_F(TierFakeTest, ATieringPassFailingAtEveryRequestMovesOnlyVerifiedBlobs) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, 0));
  std::vector<std::pair<BlobId, std::string>> files;
  for (int i = 0; i < 6; ++i) {
    std::string data = RandomBytes(100000 + i, 10 + i);
    files.emplace_back(WriteFile(absl::StrCat("cold", i), data), data);
  }
  clock_.Advance(absl::Seconds(volume_->config().tier->cold_after_seconds + 60));
  TieringService& tiering = *services_->tiering();
  // Moves run in parallel, so which move a fault lands in varies; at every
  // k each blob is whole on one side or the other.
  for (int k = 0;; ++k) {
    ASSERT_LT(k, 40);
    SCOPED_TRACE(absl::StrCat("outage after ", k, " requests"));
    Tier().FailAfter(k);
    absl::StatusOr<TieringService::PassReport> pass = tiering.RunPass();
    Tier().SetOutage(false);
    int remote = 0;
    for (const auto& [id, data] : files) {
      ExpectWholeOnOneSide(id, data);
      remote += Location(id) == BlobLocation::kRemote;
    }
    if (remote == static_cast<int>(files.size())) {
      EXPECT_TRUE(pass.ok()) << pass.status();
      break;
    }
    EXPECT_FALSE(pass.ok()) << "a pass that left cold blobs behind says why";
  }
  for (const auto& [id, data] : files) EXPECT_TRUE(ReadsBack(id, data));
}

TEST_F(TierFakeTest, ARemoteOutageMakesTieredReadsEioAndTheyWorkWhenItEnds) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, /*cache_bytes=*/0));
  std::string cold = RandomBytes(300000, 1), hot = RandomBytes(200000, 2);
  BlobId cold_id = WriteFile("cold", cold);
  BlobId hot_id = WriteFile("hot", hot);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(cold_id).ok());
  for (Fault fault : kEveryFault) {
    SCOPED_TRACE(FaultName(fault));
    Tier().SetOutage(true, fault);
    for (auto [offset, length] : std::vector<std::pair<uint64_t, uint64_t>>{
             {0, cold.size()}, {0, 1}, {200000, 50000}}) {
      absl::StatusOr<std::string> read = volume_->blobs().Read(cold_id, offset, length);
      EXPECT_EQ(GetFsErrorKind(read.status()), FsErrorKind::kIo) << read.status();
    }
    EXPECT_TRUE(ReadsBack(hot_id, hot)) << "local data stays usable";
    EXPECT_FALSE(volume_->tier_mover()->MoveOut(hot_id).ok());
    EXPECT_EQ(LocalShards(hot_id), 3) << "nothing freed while the remote is down";
    Tier().SetOutage(false);
    EXPECT_TRUE(ReadsBack(cold_id, cold));
    absl::StatusOr<std::string> part = volume_->blobs().Read(cold_id, 200000, 50000);
    EXPECT_TRUE(part.ok() && *part == cold.substr(200000, 50000)) << part.status();
  }
  // Wrong answers that claim success are EIO too.
  for (auto damage : {FakeObjectStore::BodyDamage::kFlipByte,
                      FakeObjectStore::BodyDamage::kShortBody}) {
    Tier().DamageNextGets(1 << 20, damage);
    absl::StatusOr<std::string> read = ReadBlob(cold_id, cold.size());
    EXPECT_EQ(GetFsErrorKind(read.status()), FsErrorKind::kIo) << read.status();
    Tier().ClearFaults();
  }
  EXPECT_TRUE(ReadsBack(cold_id, cold));
  EXPECT_TRUE(volume_->tier_mover()->MoveOut(hot_id).ok());
  EXPECT_TRUE(ReadsBack(hot_id, hot));
}

TEST_F(TierFakeTest, BlocksReadBeforeAnOutageAreServedFromTheLocalCacheDuringIt) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, /*cache_bytes=*/64 << 20));
  std::string read_before = RandomBytes(300000, 3), never_read = RandomBytes(300000, 4);
  BlobId read_id = WriteFile("read", read_before);
  BlobId unread_id = WriteFile("unread", never_read);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(read_id).ok());
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(unread_id).ok());
  EXPECT_TRUE(ReadsBack(read_id, read_before));
  Tier().SetOutage(true);
  const uint64_t requests = Tier().GetStats().requests;
  EXPECT_TRUE(ReadsBack(read_id, read_before));
  EXPECT_EQ(Tier().GetStats().requests, requests) << "served locally";
  EXPECT_EQ(GetFsErrorKind(ReadBlob(unread_id, never_read.size()).status()), FsErrorKind::kIo);
  Tier().SetOutage(false);
  EXPECT_TRUE(ReadsBack(unread_id, never_read));
}

// Volume::Open opens the block cache in CACHE_DIR/tier-blocks before the
// journal creates CACHE_DIR: the first mount after a format (or with a new
// cache_dir) ran without it and read every remote block from the bucket.
TEST_F(TierFakeTest, TheBlockCacheWorksOnTheFirstOpenAfterAFormat) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, /*cache_bytes=*/64 << 20));
  std::string data = RandomBytes(300000, 5);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(id).ok());
  EXPECT_TRUE(ReadsBack(id, data));
  const uint64_t requests = Tier().GetStats().requests;
  EXPECT_TRUE(ReadsBack(id, data));
  EXPECT_EQ(Tier().GetStats().requests, requests) << "read again from the bucket";
}

// On a filesystem of 256 MiB (a MemEnv), whose room the volume's reserve
// keeps: 4 MiB, the floor below which written data is refused.
class TierFakeRoomTest : public TierFakeTest {
 protected:
  void SetUp() override {
    mem_env_.SetCapacity(256 << 20);
    ASSERT_TRUE(CreateDirs(&mem_env_, dir_.path()).ok());
    env_ = &mem_env_;
    TierFakeTest::SetUp();
  }
  // The volume and its services use mem_env_, which as this class's member
  // is destroyed before the base class's.
  void TearDown() override {
    services_.reset();
    volume_.reset();
    filler_.reset();
  }
  uint64_t Free() { return mem_env_.StatFs(Vol())->available_bytes; }
  // Makes the volume's reserve; another program's file (filler_) then
  // takes all but the floor and `extra` bytes.
  void FillToTheFloorLeaving(uint64_t extra) {
    reserve_ = volume_->space_reserve();
    ASSERT_NE(reserve_, nullptr);
    reserve_->Ensure();
    ASSERT_TRUE(reserve_->held());
    absl::StatusOr<std::unique_ptr<File>> filler =
        mem_env_.Open(dir_.path() + "/filler", OpenMode::kReadWrite);
    ASSERT_TRUE(filler.ok());
    filler_ = std::move(*filler);
    ASSERT_TRUE(filler_->Truncate(*filler_->Size() + Free() - reserve_->bytes() - extra).ok());
    clock_.Advance(absl::Seconds(1));  // past the reserve's last look
  }
  MemEnv mem_env_;
  SpaceReserve* reserve_ = nullptr;
  std::unique_ptr<File> filler_;
};

// Blocks of the remote tier cached on the namespace's filesystem are given
// up before a write is refused for want of room there: the volume's data,
// not a copy of what the bucket holds, gets the last room.
TEST_F(TierFakeRoomTest, TheBlockCacheGivesUpItsRoomBeforeWrittenDataIsRefused) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, /*cache_bytes=*/64 << 20));
  std::string data = RandomBytes(3 << 20, 9);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(id).ok());
  EXPECT_TRUE(ReadsBack(id, data));
  // The blocks are written to the cache behind the read.
  for (int i = 0; i < 1000 && volume_->tiered()->GetStats().cache_bytes < data.size(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const uint64_t cached = volume_->tiered()->GetStats().cache_bytes;
  ASSERT_GE(cached, data.size());

  // Another program leaves the floor and 1 MiB; 2 MiB are to be journaled.
  ASSERT_NO_FATAL_FAILURE(FillToTheFloorLeaving(1 << 20));
  absl::Status room = reserve_->CheckRoomForData(2 << 20, 0);
  EXPECT_TRUE(room.ok()) << room;
  EXPECT_LT(volume_->tiered()->GetStats().cache_bytes, cached);
  EXPECT_GT(volume_->tiered()->GetStats().cache_bytes, 0u) << "gave up more than was wanted";

  // With the whole cache given up and still too little room, the write is
  // refused as before, and tiered data still reads (from the bucket).
  ASSERT_TRUE(filler_->Truncate(*filler_->Size() + Free() - reserve_->bytes()).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(GetFsErrorKind(reserve_->CheckRoomForData(16 << 20, 0)), FsErrorKind::kNoSpace);
  EXPECT_EQ(volume_->tiered()->GetStats().cache_bytes, 0u);
  EXPECT_TRUE(ReadsBack(id, data));
}

// A recall whose local copy would take the namespace's last room is
// refused, the blob left in the tier (and readable there); with room it
// goes through.
TEST_F(TierFakeRoomTest, ARecallIsRefusedWhenItWouldTakeTheNamespacesRoom) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, /*cache_bytes=*/0));
  std::string data = RandomBytes(3 << 20, 11);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(id).ok());
  ASSERT_NO_FATAL_FAILURE(FillToTheFloorLeaving(1 << 20));

  absl::Status recalled = volume_->tier_mover()->MoveIn(id);
  EXPECT_EQ(GetFsErrorKind(recalled), FsErrorKind::kNoSpace) << recalled;
  EXPECT_EQ(Location(id), BlobLocation::kRemote);
  EXPECT_TRUE(ReadsBack(id, data));

  filler_.reset();
  ASSERT_TRUE(mem_env_.Remove(dir_.path() + "/filler").ok());
  recalled = volume_->tier_mover()->MoveIn(id);
  EXPECT_TRUE(recalled.ok()) << recalled;
  EXPECT_EQ(Location(id), BlobLocation::kBoth);
  EXPECT_TRUE(ReadsBack(id, data));
}

TEST_F(TierFakeTest, TheReplicatorKeepsItsQueueThroughFailuresAndCatchesUp) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(/*with_replica=*/true, 0));
  std::vector<std::pair<BlobId, std::string>> files;
  std::vector<BlobId> ids;
  for (int i = 0; i < 3; ++i) {
    std::string data = RandomBytes(150000 + i, 20 + i);
    ids.push_back(WriteFile(absl::StrCat("f", i), data));
    files.emplace_back(ids.back(), data);
  }
  EXPECT_EQ(Queued(), ids) << "queued by the commits";
  Replicator* replicator = services_->replicator();
  ASSERT_NE(replicator, nullptr);

  Replica().SetOutage(true);
  EXPECT_FALSE(replicator->RunPass().ok());
  EXPECT_EQ(Queued(), ids) << "nothing cleared without a verified copy";
  EXPECT_FALSE(replicator->GetStatus().healthy);
  Replica().SetOutage(false);
  // Known to own the replica for a minute of the clock: the faults below
  // land in the copies, not in the owner check.
  ASSERT_TRUE(volume_->replica_owner()->Check().ok());
  // Uploads go through; reading them back does not.
  Replica().FailNext(1000, Fault::kInternalError, Op::kGet);
  EXPECT_FALSE(replicator->RunPass().ok());
  EXPECT_EQ(Queued(), ids);
  Replica().ClearFaults();
  Replica().DamageNextGets(1000, FakeObjectStore::BodyDamage::kFlipByte);
  EXPECT_FALSE(replicator->RunPass().ok());
  EXPECT_EQ(Queued(), ids);
  Replica().ClearFaults();

  // The queue survives a restart; the passes after it catch up once the
  // remaining faults are used up.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  replicator = services_->replicator();
  EXPECT_EQ(Queued(), ids);
  Replica().FailNext(2, Fault::kSlowDown);
  int passes = 1;
  while (!replicator->RunPass().ok()) ASSERT_LE(++passes, 5);
  EXPECT_GT(passes, 1);
  EXPECT_TRUE(Queued().empty());
  for (const auto& [id, data] : files) EXPECT_TRUE(InReplica(id, data)) << id;
  EXPECT_TRUE(replicator->GetStatus().healthy);
}

TEST_F(TierFakeTest, AReplicationPassFailingAtEveryRequestClearsOnlyVerifiedCopies) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(true, 0));
  std::vector<std::pair<BlobId, std::string>> files;
  for (int i = 0; i < 5; ++i) {
    std::string data = RandomBytes(80000 + i, 30 + i);
    files.emplace_back(WriteFile(absl::StrCat("f", i), data), data);
  }
  Replicator& replicator = *services_->replicator();
  for (int k = 0;; ++k) {
    ASSERT_LT(k, 40);
    SCOPED_TRACE(absl::StrCat("outage after ", k, " requests"));
    Replica().FailAfter(k);
    absl::StatusOr<uint64_t> pass = replicator.RunPass();
    Replica().SetOutage(false);
    std::vector<BlobId> queued = Queued();
    const std::set<BlobId> waiting(queued.begin(), queued.end());
    for (const auto& [id, data] : files) {
      if (!waiting.count(id)) {
        EXPECT_TRUE(InReplica(id, data)) << "cleared unverified: " << id;
      }
    }
    if (waiting.empty()) {
      EXPECT_TRUE(pass.ok()) << pass.status();
      break;
    }
    EXPECT_FALSE(pass.ok());
  }
}

TEST_F(TierFakeTest, ATieredBlobStaysQueuedForTheReplicaWhileTheTierIsDown) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(true, 0));
  std::string data = RandomBytes(200000, 40);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(id).ok());
  Tier().SetOutage(true);
  EXPECT_FALSE(services_->replicator()->RunPass().ok());
  EXPECT_EQ(Queued(), std::vector<BlobId>{id});
  EXPECT_TRUE(Replica().Keys(volume_->replica()->prefix()).empty()) << "nothing to upload";
  Tier().SetOutage(false);
  ASSERT_TRUE(services_->replicator()->RunPass().ok());
  EXPECT_TRUE(Queued().empty());
  EXPECT_TRUE(InReplica(id, data));
}

// S3 answers NoSuchBucket as "not found", like a blob deleted under its
// move: a pass against a missing bucket must not count as done.
TEST_F(TierFakeTest, MovesOutAgainstAMissingBucketReportTheError) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, 0));
  std::string data = RandomBytes(100000, 50);
  BlobId id = WriteFile("cold", data);
  clock_.Advance(absl::Seconds(volume_->config().tier->cold_after_seconds + 60));
  Tier().SetOutage(true, Fault::kNoSuchBucket);
  absl::StatusOr<TieringService::PassReport> pass = services_->tiering()->RunPass();
  EXPECT_FALSE(pass.ok()) << "a pass that moved " << pass->moved << " of " << pass->candidates
                          << " reports success";
  const InodeId ino = volume_->ns().GetBlob(id)->owner;
  absl::Status out = services_->tiering()->MoveFilesOut({ino});
  EXPECT_FALSE(out.ok()) << "cairn tier out reports success";
  EXPECT_EQ(Location(id), BlobLocation::kLocal);
  Tier().SetOutage(false);
  ASSERT_TRUE(services_->tiering()->MoveFilesOut({ino}).ok());
  EXPECT_EQ(Location(id), BlobLocation::kRemote);
}

// cairn status said the remote was healthy through a whole outage while
// reads of tiered files failed: only a failing policy pass counted. Every
// request counts now, and the first that gets through shows the recovery.
TEST_F(TierFakeTest, EveryFailedRemoteRequestShowsInTheHealthUntilOneSucceeds) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, 0));
  std::string data = RandomBytes(100000, 52);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(id).ok());
  EXPECT_TRUE(services_->tiering()->GetStatus().remote_healthy);
  Tier().SetOutage(true, Fault::kNetworkError);
  EXPECT_FALSE(volume_->blobs().Read(id, 0, data.size()).ok());
  TieringService::Status down = services_->tiering()->GetStatus();
  EXPECT_FALSE(down.remote_healthy) << "a failed read of a tiered file went unnoticed";
  EXPECT_NE(down.last_error.find("cannot reach"), std::string::npos) << down.last_error;
  EXPECT_GT(down.last_error_time, 0);
  Tier().SetOutage(false);
  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<std::string> read = volume_->blobs().Read(id, 0, data.size());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  EXPECT_TRUE(services_->tiering()->GetStatus().remote_healthy) << "the recovery is not shown";
}

// The same for an object gone from the bucket: cairn tier in must not
// report success (and pin the file) while its data stays unreadable.
TEST_F(TierFakeTest, AMoveInWhoseRemoteObjectIsGoneReportsTheError) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(false, 0));
  std::string data = RandomBytes(100000, 51);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(id).ok());
  ASSERT_TRUE(Tier().DeleteObject(volume_->remote()->KeyOf(id)).ok());
  EXPECT_FALSE(volume_->tier_mover()->MoveIn(id).ok()) << "the mover says so";
  const InodeId ino = volume_->ns().GetBlob(id)->owner;
  absl::Status in = services_->tiering()->MoveFilesIn({ino});
  EXPECT_FALSE(in.ok()) << "cairn tier in reports success";
  EXPECT_EQ(Location(id), BlobLocation::kRemote);
}

// The remote scrub (backend/services/remote_scrub.h) on a volume whose
// replica and tier hold good and bad copies.
class RemoteScrubTest : public TierFakeTest {
 protected:
  struct File {
    BlobId id;
    std::string data;
  };
  // Files a..f, all replicated; c..f moved to the tier.
  void WriteReplicateAndTier() {
    ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(/*with_replica=*/true, /*cache_bytes=*/0));
    for (int i = 0; i < 6; ++i) {
      std::string data = RandomBytes(200000 + 1000 * i, 70 + i);
      files_.push_back({WriteFile(absl::StrCat("f", i), data), data});
    }
    ASSERT_TRUE(volume_->replica_owner()->Check().ok());
    ASSERT_TRUE(services_->replicator()->RunPass().ok());
    ASSERT_TRUE(Queued().empty());
    for (int i = 2; i < 6; ++i) ASSERT_TRUE(volume_->tier_mover()->MoveOut(files_[i].id).ok());
  }
  static void Flip(FakeObjectStore& bucket, const std::string& key, size_t at) {
    std::optional<std::string> object = bucket.Object(key);
    ASSERT_TRUE(object.has_value()) << key;
    (*object)[at % object->size()] ^= 0x20;
    bucket.SetObject(key, *object);
  }
  std::string ReplicaKey(int i) { return volume_->replica()->KeyOf(files_[i].id); }
  std::string TierKey(int i) { return volume_->remote()->KeyOf(files_[i].id); }
  absl::StatusOr<RemoteScrubReport> Pass(bool repair = true, BlobId start = 0) {
    ScrubOptions options;
    options.repair = repair;
    options.start = start;
    options.checkpoint = [this](BlobId next) { checkpoint_ = next; };
    return services_->remote_scrubber()->RunPass(options);
  }

  RemoteCopies Copies() {
    RemoteCopies copies;
    copies.replica = volume_->replica();
    copies.tier = volume_->remote();
    copies.local = &volume_->local_blobs();
    return copies;
  }
  // A background pass every hour of the test's clock, looking every 5 ms.
  RemoteScrubber::Options BackgroundOptions(uint64_t bytes_per_second) {
    RemoteScrubber::Options options;
    options.interval_seconds = 3600;
    options.bytes_per_second = bytes_per_second;
    options.tick_millis = 5;
    options.clock = &clock_;
    return options;
  }
  // Its status once a whole pass finished, or after 10 s of real time.
  static RemoteScrubStatus WaitForAWholePass(RemoteScrubber& scrubber) {
    for (int i = 0; i < 2000 && !scrubber.GetStatus().last_complete.finished; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return scrubber.GetStatus();
  }

  std::vector<File> files_;
  BlobId checkpoint_ = 0;
};

TEST_F(RemoteScrubTest, DamagedAndMissingObjectsAreFoundAndRewrittenFromAGoodCopy) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(0), 90000));  // local: from the disks
  Replica().DeleteObject(ReplicaKey(1)).IgnoreError();             // local: from the disks
  ASSERT_NO_FATAL_FAILURE(Flip(Tier(), TierKey(2), 5));             // header: from the replica
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(3), 150000));  // from the tier
  Tier().DeleteObject(TierKey(4)).IgnoreError();                    // from the replica

  absl::StatusOr<RemoteScrubReport> dry = Pass(/*repair=*/false);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->replica_bad, 3u);
  EXPECT_EQ(dry->tier_bad, 2u);
  EXPECT_EQ(dry->replica_repaired + dry->tier_repaired, 0u);
  EXPECT_FALSE(dry->Healthy());
  EXPECT_FALSE(InReplica(files_[0].id, files_[0].data)) << "--no-repair rewrote an object";

  absl::StatusOr<RemoteScrubReport> report = Pass();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->finished);
  EXPECT_EQ(report->replica_bad, 3u);
  EXPECT_EQ(report->replica_repaired, 3u);
  EXPECT_EQ(report->tier_bad, 2u);
  EXPECT_EQ(report->tier_repaired, 2u);
  EXPECT_EQ(report->lost, 0u);
  EXPECT_EQ(report->objects_checked, 10u) << "6 replica objects and 4 tier objects";
  EXPECT_EQ(report->problems.size(), 5u);
  for (const File& f : files_) {
    EXPECT_TRUE(InReplica(f.id, f.data)) << f.id;
    EXPECT_TRUE(ReadsBack(f.id, f.data)) << f.id;
  }
  for (int i = 2; i < 6; ++i) EXPECT_TRUE(InTier(files_[i].id, files_[i].data)) << i;

  absl::StatusOr<RemoteScrubReport> again = Pass();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->Healthy());
  EXPECT_EQ(again->replica_bad + again->tier_bad, 0u);
}

TEST_F(RemoteScrubTest, AnObjectWithNoGoodCopyLeftIsCountedLostNotRewritten) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  // Both remote copies of a tiered blob damaged: nothing can repair them.
  ASSERT_NO_FATAL_FAILURE(Flip(Tier(), TierKey(5), 100000));
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(5), 100000));
  const std::string damaged_tier = *Tier().Object(TierKey(5));
  absl::StatusOr<RemoteScrubReport> report = Pass();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->replica_bad, 1u);
  EXPECT_EQ(report->tier_bad, 1u);
  EXPECT_EQ(report->lost, 2u);
  EXPECT_EQ(report->replica_repaired + report->tier_repaired, 0u);
  EXPECT_FALSE(report->Healthy());
  ASSERT_FALSE(report->problems.empty());
  EXPECT_NE(report->problems[0].find("no good copy"), std::string::npos) << report->problems[0];
  EXPECT_EQ(*Tier().Object(TierKey(5)), damaged_tier) << "a bad copy was written over";
  EXPECT_FALSE(ReadBlob(files_[5].id, files_[5].data.size()).ok()) << "damaged data was served";
}

TEST_F(RemoteScrubTest, ARemoteThatDoesNotAnswerStopsThePassWhichResumesThere) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(4), 1000));
  // The third object read fails: file 1's replica object.
  int gets = 0;
  Replica().SetRequestHook([&gets](Op op, const std::string&) -> std::optional<Fault> {
    if (op == Op::kGet && ++gets >= 2) return Fault::kNetworkError;
    return std::nullopt;
  });
  absl::StatusOr<RemoteScrubReport> stopped = Pass();
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_FALSE(stopped->finished);
  EXPECT_EQ(stopped->unreachable, 1u);
  EXPECT_EQ(stopped->replica_bad, 0u) << "an unanswered request was taken for damage";
  EXPECT_FALSE(stopped->Healthy());
  EXPECT_EQ(checkpoint_, files_[1].id) << "the pass resumes at the object it could not read";
  Replica().SetRequestHook(nullptr);
  absl::StatusOr<RemoteScrubReport> resumed = Pass(true, checkpoint_);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->finished);
  EXPECT_EQ(resumed->replica_bad, 1u);
  EXPECT_EQ(resumed->replica_repaired, 1u);
  EXPECT_EQ(resumed->objects_checked, 5u + 4u);
}

TEST_F(RemoteScrubTest, TheBackgroundPassIsPacedResumableAndShowsWhatItFound) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(2), 1000));
  const double before = clock_.MonotonicSeconds();
  {
    RemoteScrubber scrubber(volume_->ns(), Copies(), BackgroundOptions(64 << 10));
    RemoteScrubStatus status = WaitForAWholePass(scrubber);
    ASSERT_TRUE(status.last_complete.finished) << "no pass finished in 10 s";
    EXPECT_EQ(status.last_complete.replica_bad, 1u);
    EXPECT_EQ(status.last_complete.replica_repaired, 1u);
    EXPECT_EQ(status.last_complete.objects_checked, 10u);
    EXPECT_FALSE(status.running);
    EXPECT_GT(status.last_finished, 0);
    EXPECT_FALSE(status.overdue);
  }
  // 10 objects of about 200 KB at 64 KiB/s take about 30 s of the clock.
  EXPECT_GE(clock_.MonotonicSeconds() - before, 25.0) << "the pass was not paced";
  EXPECT_TRUE(InReplica(files_[2].id, files_[2].data));

  // A new daemon shows the last pass's counts and starts no pass before
  // the interval is over.
  const uint64_t gets = Replica().Requests(Op::kGet);
  RemoteScrubber restarted(volume_->ns(), Copies(), BackgroundOptions(64 << 10));
  absl::SleepFor(absl::Milliseconds(100));
  RemoteScrubStatus status = restarted.GetStatus();
  EXPECT_TRUE(status.last_complete.finished);
  EXPECT_EQ(status.last_complete.replica_repaired, 1u);
  EXPECT_EQ(Replica().Requests(Op::kGet), gets) << "a pass started before its interval";
}

TEST_F(RemoteScrubTest, AnInterruptedBackgroundPassGoesOnFromItsCursor) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  // A previous daemon stopped at file 4.
  ASSERT_TRUE(volume_->ns().SetVolumeMeta(kRemoteScrubStartedKey, "1700000000").ok());
  ASSERT_TRUE(
      volume_->ns().SetVolumeMeta(kRemoteScrubCursorKey, absl::StrCat(files_[4].id)).ok());
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(0), 1000));  // behind the cursor
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(5), 1000));  // ahead of it
  RemoteScrubber scrubber(volume_->ns(), Copies(), BackgroundOptions(1 << 30));
  RemoteScrubStatus status = WaitForAWholePass(scrubber);
  ASSERT_TRUE(status.last_complete.finished) << "no pass finished in 10 s";
  EXPECT_EQ(status.last_complete.objects_checked, 4u) << "files 4 and 5, replica and tier";
  EXPECT_EQ(status.last_complete.replica_repaired, 1u);
  EXPECT_TRUE(InReplica(files_[5].id, files_[5].data));
  EXPECT_FALSE(InReplica(files_[0].id, files_[0].data)) << "left for the next pass";
}

// A file deleted (and a blob moved back in) while the pass reads their
// objects: the objects are gone for a reason, not rot.
TEST_F(RemoteScrubTest, ObjectsGoneBecauseOfADeleteOrAMoveInDuringThePassAreNotDamage) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  NamespaceStore& ns = volume_->ns();
  const std::string deleted_key = TierKey(2), moved_key = TierKey(3);
  const BlobId moved = files_[3].id;
  Tier().SetRequestHook([&](Op op, const std::string& key) -> std::optional<Fault> {
    if (op != Op::kGet) return std::nullopt;
    if (key == deleted_key) {
      absl::StatusOr<InodeAttr> unlinked = ns.Unlink(kRootInode, "f2");
      EXPECT_TRUE(unlinked.ok()) << unlinked.status();
      if (unlinked.ok()) {
        EXPECT_TRUE(ns.ReleaseInode(unlinked->ino).ok());
      }
      return Fault::kNoSuchBucket;  // a 404, as for a deleted object
    }
    if (key == moved_key) {
      EXPECT_TRUE(ns.SetBlobLocation(moved, BlobLocation::kLocal).ok());
      return Fault::kNoSuchBucket;
    }
    return std::nullopt;
  });
  absl::StatusOr<RemoteScrubReport> report = Pass(/*repair=*/false);
  Tier().SetRequestHook(nullptr);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->tier_bad, 0u) << (report->problems.empty() ? "" : report->problems[0]);
  EXPECT_EQ(report->lost, 0u);
  EXPECT_TRUE(report->Healthy());
}

TEST_F(RemoteScrubTest, AReplicaAnotherCopyOwnsNowIsNotRewritten) {
  ASSERT_NO_FATAL_FAILURE(WriteReplicateAndTier());
  ASSERT_NO_FATAL_FAILURE(Flip(Replica(), ReplicaKey(0), 1000));
  const std::string damaged = *Replica().Object(ReplicaKey(0));
  // A restored copy took the replica over.
  ReplicaOwner other(Replica(), absl::StrCat("cairn/", volume_->config().volume_id, "/"),
                     "another-copy", &clock_);
  ASSERT_TRUE(other.Claim().ok());
  clock_.Advance(absl::Minutes(2));  // past this copy's cached answer
  absl::StatusOr<RemoteScrubReport> report = Pass();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->replica_bad, 1u);
  EXPECT_EQ(report->replica_repaired, 0u);
  EXPECT_EQ(*Replica().Object(ReplicaKey(0)), damaged) << "wrote into a replica it does not own";
  ASSERT_FALSE(report->problems.empty());
  EXPECT_NE(report->problems[0].find("not repaired"), std::string::npos) << report->problems[0];
}

TEST_F(RemoteScrubTest, ATierSharingTheReplicasObjectsIsCheckedOnce) {
  ASSERT_NO_FATAL_FAILURE(ConfigureAndOpen(/*with_replica=*/false, 0));
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol(), "", env_);
  ASSERT_TRUE(config.ok());
  ReplicaConfig replica;
  static_cast<S3Target&>(replica) = static_cast<const S3Target&>(*config->tier);
  config->replica = replica;
  ASSERT_TRUE(SaveVolumeConfig(Vol(), *config, env_).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_TRUE(config->tier->SameObjectsAs(*config->replica));
  for (int i = 0; i < 3; ++i) {
    std::string data = RandomBytes(100000, 90 + i);
    files_.push_back({WriteFile(absl::StrCat("f", i), data), data});
  }
  ASSERT_TRUE(volume_->replica_owner()->Check().ok());
  ASSERT_TRUE(services_->replicator()->RunPass().ok());
  ASSERT_TRUE(volume_->tier_mover()->MoveOut(files_[2].id).ok());
  ASSERT_NO_FATAL_FAILURE(Flip(Tier(), ReplicaKey(0), 500));  // local: from the disks
  ASSERT_NO_FATAL_FAILURE(Flip(Tier(), ReplicaKey(2), 500));  // the only copy
  absl::StatusOr<RemoteScrubReport> report = Pass();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->objects_checked, 3u) << "one object per blob";
  EXPECT_EQ(report->replica_bad, 1u);
  EXPECT_EQ(report->replica_repaired, 1u);
  EXPECT_EQ(report->tier_bad, 1u);
  EXPECT_EQ(report->lost, 1u);
  EXPECT_TRUE(InReplica(files_[0].id, files_[0].data));
}

}  // namespace
}  // namespace cairn
