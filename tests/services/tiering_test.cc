// Moving blobs to the remote tier and back (s3rver on 127.0.0.1, behind the
// tests' fault proxy), on a real three-disk volume.
#include "backend/s3/s3_client.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/services/unclaimed_remote.h"
#include "backend/volume/s3_targets.h"
#include "backend/volume/volume.h"

#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/random_bytes.h"
#include "tests/support/s3rver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

class TieringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = S3rver::Start("tier", &why);
    if (!server_) GTEST_SKIP() << why;
    proxy_ = FaultProxy::Start(server_->port());
    FormatOptions format;
    for (int i = 0; i < 3; ++i) format.disks.push_back(Disk(i));
    ASSERT_TRUE(FormatVolume(Vol(), format).ok());
    auto volume = Volume::Open(Vol(), *LoadVolumeConfig(Vol()));
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    s3::S3Options options;
    options.endpoint = proxy_->endpoint();
    options.bucket = "tier";
    options.credentials = {S3rver::kAccessKey, S3rver::kSecretKey, ""};
    options.first_backoff_seconds = 0.01;
    options.max_attempts = 3;
    options.stall_seconds = 1;
    client_ = std::move(*s3::S3Client::Create(options));
    remote_ = std::make_unique<RemoteBlobStore>(*client_, "cairn/", volume_->config().volume_id);
    tiered_ = std::make_unique<TieredBlobStore>(volume_->ns(), volume_->blobs(), *remote_);
    mover_ = std::make_unique<TierMover>(volume_->ns(), volume_->blobs(), *remote_);
  }
  std::string Vol() { return dir_.path() + "/vol"; }
  std::string Disk(int i) { return absl::StrCat(dir_.path(), "/disk", i); }
  int LocalShards(BlobId id) {
    int n = 0;
    for (int d = 0; d < 3; ++d) {
      n += fsys::exists(absl::StrFormat("%s/shards/%02x/%016x.shard", Disk(d), id & 0xff, id));
    }
    return n;
  }
  BlobId WriteFile(const std::string& name, const std::string& data) {
    return WriteFileAsOneBlob(volume_->ns(), *tiered_, name, data);
  }
  BlobLocation Location(BlobId id) { return volume_->ns().GetBlob(id)->location; }

  TempDir dir_;
  std::unique_ptr<S3rver> server_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<Volume> volume_;
  std::unique_ptr<s3::S3Client> client_;
  std::unique_ptr<RemoteBlobStore> remote_;
  std::unique_ptr<TieredBlobStore> tiered_;
  std::unique_ptr<TierMover> mover_;
};

TEST_F(TieringTest, MovedOutBlobsFreeTheirShardsAndReadBackIdentical) {
  std::string data = RandomBytes(1 << 20, 1);
  BlobId id = WriteFile("f", data);
  EXPECT_EQ(LocalShards(id), 3);
  ASSERT_TRUE(mover_->MoveOut(id).ok());
  EXPECT_EQ(Location(id), BlobLocation::kRemote);
  EXPECT_EQ(LocalShards(id), 0);
  EXPECT_TRUE(client_->HeadObject(remote_->KeyOf(id)).ok());
  EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
  EXPECT_EQ(*tiered_->Read(id, 70000, 100), data.substr(70000, 100));
  EXPECT_GE(tiered_->GetStats().remote_reads, 2u);
  // And back: local again, the remote copy kept.
  ASSERT_TRUE(mover_->MoveIn(id).ok());
  EXPECT_EQ(Location(id), BlobLocation::kBoth);
  EXPECT_EQ(LocalShards(id), 3);
  uint64_t remote_reads = tiered_->GetStats().remote_reads;
  EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
  EXPECT_EQ(tiered_->GetStats().remote_reads, remote_reads) << "served locally";
  EXPECT_TRUE(client_->HeadObject(remote_->KeyOf(id)).ok());
  // Out again costs no upload: the copy is there.
  int requests = proxy_->requests;
  ASSERT_TRUE(mover_->MoveOut(id).ok());
  EXPECT_EQ(proxy_->requests.load(), requests);
  EXPECT_EQ(LocalShards(id), 0);
}

TEST_F(TieringTest, NothingIsFreedWhenTheUploadOrItsVerificationFails) {
  std::string data = RandomBytes(300000, 2);
  BlobId id = WriteFile("f", data);
  proxy_->server_error = 100;  // every attempt of the upload fails
  EXPECT_FALSE(mover_->MoveOut(id).ok());
  EXPECT_EQ(Location(id), BlobLocation::kLocal);
  EXPECT_EQ(LocalShards(id), 3);
  proxy_->server_error = 0;
  // The upload goes through but reading it back for verification does not.
  proxy_->server_error_on_get = 100;
  EXPECT_FALSE(mover_->MoveOut(id).ok());
  EXPECT_EQ(Location(id), BlobLocation::kLocal);
  EXPECT_EQ(LocalShards(id), 3);
  proxy_->server_error_on_get = 0;
  // A wrong object at the key (a stale upload, another writer) is replaced
  // and verified by the next attempt.
  ASSERT_TRUE(remote_->Put(id, "not the blob").ok());
  ASSERT_TRUE(mover_->MoveOut(id).ok());
  EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
}

TEST_F(TieringTest, MovesSurviveEveryRemoteFaultAndFreeNothingUntilVerified) {
  struct Fault {
    const char* name;
    std::function<void()> arm;
  };
  std::vector<Fault> faults = {
      {"503 SlowDown burst", [&] { proxy_->slow_down = 2; }},
      {"500s", [&] { proxy_->server_error = 2; }},
      {"reset mid-body", [&] { proxy_->reset_mid_body = 2; }},
      {"stall", [&] { proxy_->stall_seconds = 3, proxy_->stall = 1; }},
  };
  int seed = 100;
  for (const Fault& fault : faults) {
    SCOPED_TRACE(fault.name);
    std::string data = RandomBytes(300000, ++seed);
    BlobId id = WriteFile(fault.name, data);
    fault.arm();
    ASSERT_TRUE(mover_->MoveOut(id).ok());
    EXPECT_EQ(Location(id), BlobLocation::kRemote);
    EXPECT_EQ(LocalShards(id), 0);
    fault.arm();
    EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
    fault.arm();
    ASSERT_TRUE(mover_->MoveIn(id).ok());
    EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
  }
  // Refused, then the server stopped: nothing is freed, and once it is back
  // the move goes through.
  std::string data = RandomBytes(300000, 200);
  BlobId id = WriteFile("down", data);
  proxy_->refuse = true;
  EXPECT_FALSE(mover_->MoveOut(id).ok());
  proxy_->refuse = false;
  server_->Stop();
  EXPECT_FALSE(mover_->MoveOut(id).ok());
  EXPECT_EQ(Location(id), BlobLocation::kLocal);
  EXPECT_EQ(LocalShards(id), 3);
  EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  ASSERT_TRUE(mover_->MoveOut(id).ok());
  EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data);
  EXPECT_TRUE(proxy_->OpenUploads().empty());
}

TEST_F(TieringTest, ACrashBetweenCommitAndFreeLeavesShardsThatAreFreedLater) {
  std::string data = RandomBytes(200000, 3);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(remote_->Put(id, data).ok());
  ASSERT_TRUE(volume_->ns().SetBlobLocation(id, BlobLocation::kFreeing).ok());  // then died
  EXPECT_EQ(*tiered_->Read(id, 0, data.size()), data) << "the remote copy serves meanwhile";
  EXPECT_EQ(*mover_->FinishFreeing(), 1u);
  EXPECT_EQ(LocalShards(id), 0);
  EXPECT_EQ(Location(id), BlobLocation::kRemote);
  EXPECT_EQ(*mover_->FinishFreeing(), 0u);
}

TEST_F(TieringTest, GarbageCollectionDeletesTheRemoteCopyAndOnlyForTieredBlobs) {
  BlobId local = WriteFile("a", RandomBytes(100000, 4));
  BlobId tiered = WriteFile("b", RandomBytes(100000, 5));
  ASSERT_TRUE(mover_->MoveOut(tiered).ok());
  int requests = proxy_->requests;
  ASSERT_TRUE(tiered_->Delete(local).ok());
  EXPECT_EQ(proxy_->requests.load(), requests) << "a local blob costs no remote request";
  ASSERT_TRUE(tiered_->Delete(tiered).ok());
  EXPECT_EQ(GetFsErrorKind(client_->HeadObject(remote_->KeyOf(tiered)).status()),
            FsErrorKind::kNotFound);
}

TEST_F(TieringTest, ARemoteThatIsDownFailsOnlyRemoteReadsAndRecovers) {
  std::string cold = RandomBytes(100000, 6), hot = RandomBytes(100000, 7);
  BlobId cold_id = WriteFile("cold", cold);
  BlobId hot_id = WriteFile("hot", hot);
  ASSERT_TRUE(mover_->MoveOut(cold_id).ok());
  server_->Stop();
  absl::StatusOr<std::string> failed = tiered_->Read(cold_id, 0, cold.size());
  EXPECT_EQ(GetFsErrorKind(failed.status()), FsErrorKind::kIo) << failed.status();
  EXPECT_EQ(*tiered_->Read(hot_id, 0, hot.size()), hot) << "local data stays usable";
  EXPECT_FALSE(mover_->MoveOut(hot_id).ok());
  EXPECT_EQ(LocalShards(hot_id), 3) << "nothing freed while the remote is down";
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  EXPECT_EQ(*tiered_->Read(cold_id, 0, cold.size()), cold);
  EXPECT_TRUE(mover_->MoveOut(hot_id).ok());
}

TEST_F(TieringTest, TieredReadsAreCachedOnLocalDiskInBlocks) {
  auto cache = DiskBlockCache::Open(dir_.path() + "/blocks", 64 << 20);
  ASSERT_TRUE(cache.ok()) << cache.status();
  TieredBlobStore tiered(volume_->ns(), volume_->blobs(), *remote_, cache->get());
  std::string data = RandomBytes(3 * kRemoteBlockBytes + 12345, 12);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(mover_->MoveOut(id).ok());
  // A cold read at the start: one GET brings the object's header and the
  // first block together.
  int requests = proxy_->requests;
  EXPECT_EQ(*tiered.Read(id, 10, 100), data.substr(10, 100));
  EXPECT_EQ(proxy_->requests.load(), requests + 1);
  // A small read fetches one block; reading it again costs no request.
  requests = proxy_->requests;
  EXPECT_EQ(*tiered.Read(id, kRemoteBlockBytes + 10, 100), data.substr(kRemoteBlockBytes + 10, 100));
  EXPECT_EQ(proxy_->requests.load(), requests + 1);
  requests = proxy_->requests;
  EXPECT_EQ(*tiered.Read(id, kRemoteBlockBytes + 500, 4096),
            data.substr(kRemoteBlockBytes + 500, 4096));
  EXPECT_EQ(proxy_->requests.load(), requests);
  // The whole blob: the missing blocks after the cached ones, in one run.
  EXPECT_EQ(*tiered.Read(id, 0, data.size()), data);
  EXPECT_EQ(proxy_->requests.load(), requests + 1);
  (*cache)->WaitForBackgroundPuts();  // blocks are written behind the reads
  EXPECT_EQ((*cache)->GetCounters().blocks, 4u);
  // Later reads, even across block edges and of the short last block, stay local.
  requests = proxy_->requests;
  EXPECT_EQ(*tiered.Read(id, kRemoteBlockBytes - 7, 2 * kRemoteBlockBytes + 20),
            data.substr(kRemoteBlockBytes - 7, 2 * kRemoteBlockBytes + 20));
  EXPECT_EQ(*tiered.Read(id, data.size() - 5, 5), data.substr(data.size() - 5));
  EXPECT_EQ(proxy_->requests.load(), requests);
  EXPECT_GE(tiered.GetStats().cache_hits, 4u);
  // A damaged cached block is fetched again, never returned.
  std::string block_file = absl::StrFormat("%s/blocks/%02x/%016x-%08x.blk", dir_.path(),
                                           id & 0xff, id, 2);
  {
    std::fstream f(block_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x5a');
  }
  EXPECT_EQ(*tiered.Read(id, 2 * kRemoteBlockBytes, kRemoteBlockBytes),
            data.substr(2 * kRemoteBlockBytes, kRemoteBlockBytes));
  EXPECT_EQ(proxy_->requests.load(), requests + 1);
  // Deleting the blob drops its blocks.
  ASSERT_TRUE(tiered.Delete(id).ok());
  EXPECT_EQ((*cache)->GetCounters().blocks, 0u);
}

TEST_F(TieringTest, AnObjectHoldingOtherDataThanRecordedIsAnErrorNeverItsBytes) {
  std::string data = RandomBytes(100000, 13);
  BlobId id = WriteFile("f", data);
  ASSERT_TRUE(mover_->MoveOut(id).ok());
  // A well-formed object of this blob id with other bytes (a stale upload).
  ASSERT_TRUE(remote_->Put(id, RandomBytes(100000, 14)).ok());
  absl::StatusOr<std::string> read = tiered_->Read(id, 0, 100);
  EXPECT_EQ(GetFsErrorKind(read.status()), FsErrorKind::kIo) << read.status();
  EXPECT_FALSE(mover_->MoveIn(id).ok());
}

// A local store that runs `before_read` the first time it is read.
class HookedStore : public BlobStore {
 public:
  HookedStore(BlobStore& base, std::function<void()> before_read)
      : base_(base), before_read_(std::move(before_read)) {}
  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override { return base_.Put(id, data); }
  absl::StatusOr<std::string> Read(BlobId id, uint64_t o, uint64_t l) override {
    absl::StatusOr<std::string> data = base_.Read(id, o, l);
    if (before_read_) std::exchange(before_read_, nullptr)();
    return data;
  }
  absl::Status Delete(BlobId id) override { return base_.Delete(id); }
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override { return base_.ListIds(from); }
  absl::StatusOr<StoreUsage> Usage() override { return base_.Usage(); }

 private:
  BlobStore& base_;
  std::function<void()> before_read_;
};

TEST_F(TieringTest, GarbageCollectedWhileMovingOutLeavesNoRemoteObject) {
  std::string data = RandomBytes(200000, 15);
  BlobId id = WriteFile("f", data);
  // The file is deleted and its blob collected while the mover has read it
  // and is about to upload it.
  HookedStore local(volume_->blobs(), [&] {
    absl::StatusOr<InodeAttr> unlinked = volume_->ns().Unlink(kRootInode, "f");
    ASSERT_TRUE(unlinked.ok());
    ASSERT_TRUE(volume_->ns().ReleaseInode(unlinked->ino).ok());
    ASSERT_EQ(volume_->ns().GetBlob(id)->refcount, 0u);
    ASSERT_TRUE(tiered_->Delete(id).ok());
    ASSERT_TRUE(volume_->ns().ForgetBlobs({id}).ok());
  });
  TierMover mover(volume_->ns(), local, *remote_);
  absl::Status moved = mover.MoveOut(id);
  EXPECT_EQ(GetFsErrorKind(moved), FsErrorKind::kNotFound) << moved;
  EXPECT_EQ(GetFsErrorKind(client_->HeadObject(remote_->KeyOf(id)).status()),
            FsErrorKind::kNotFound)
      << "the upload of a blob nothing references is deleted";
  EXPECT_FALSE(volume_->ns().GetBlob(id).ok()) << "and no record comes back";
}

TEST_F(TieringTest, TheSweepDeletesOnlyObjectsNoBlobClaims) {
  BlobId tiered = WriteFile("tiered", RandomBytes(100000, 16));
  ASSERT_TRUE(mover_->MoveOut(tiered).ok());
  BlobId both = WriteFile("both", RandomBytes(100000, 17));
  ASSERT_TRUE(mover_->MoveOut(both).ok());
  ASSERT_TRUE(mover_->MoveIn(both).ok());
  // A crash between upload and commit: the blob is still recorded local.
  std::string stale_data = RandomBytes(100000, 18);
  BlobId stale = WriteFile("stale", stale_data);
  ASSERT_TRUE(remote_->Put(stale, stale_data).ok());
  // An object whose blob is gone (deleted while being moved).
  const BlobId gone = 424242;
  ASSERT_TRUE(remote_->Put(gone, "bytes of a deleted blob").ok());

  std::vector<std::string> lines;
  absl::StatusOr<UnclaimedRemote> found =
      SweepUnclaimedRemote(volume_->ns(), *remote_, *client_, /*remove=*/false, &lines);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->objects, 2u);
  ASSERT_EQ(lines.size(), found->objects + found->uploads);
  EXPECT_NE(lines[0].find("never committed"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("no longer exists"), std::string::npos) << lines[1];
  EXPECT_TRUE(client_->HeadObject(remote_->KeyOf(stale)).ok()) << "listing deletes nothing";

  lines.clear();
  found = SweepUnclaimedRemote(volume_->ns(), *remote_, *client_, /*remove=*/true, &lines);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->objects, 2u);
  for (BlobId id : {stale, gone}) {
    EXPECT_EQ(GetFsErrorKind(client_->HeadObject(remote_->KeyOf(id)).status()),
              FsErrorKind::kNotFound);
  }
  for (BlobId id : {tiered, both}) EXPECT_TRUE(client_->HeadObject(remote_->KeyOf(id)).ok());
  EXPECT_EQ(*tiered_->Read(stale, 0, stale_data.size()), stale_data) << "its local copy stays";
  lines.clear();
  EXPECT_EQ(SweepUnclaimedRemote(volume_->ns(), *remote_, *client_, false, &lines)->objects, 0u);
}

// A local store whose fullness is what the test says: the blobs it holds
// over a capacity of `capacity` bytes.
class SizedStore : public BlobStore {
 public:
  SizedStore(BlobStore& base, NamespaceStore& ns, uint64_t capacity)
      : base_(base), ns_(ns), capacity_(capacity) {}
  absl::StatusOr<BlobInfo> Put(BlobId id, std::string_view data) override { return base_.Put(id, data); }
  absl::StatusOr<std::string> Read(BlobId id, uint64_t o, uint64_t l) override {
    return base_.Read(id, o, l);
  }
  absl::Status Delete(BlobId id) override { return base_.Delete(id); }
  absl::StatusOr<std::vector<BlobId>> ListIds(BlobId from) override { return base_.ListIds(from); }
  absl::StatusOr<StoreUsage> Usage() override {
    uint64_t used = 0;
    absl::StatusOr<std::vector<std::pair<BlobId, BlobRecord>>> blobs = ns_.ListBlobs(0, 1000);
    for (const auto& [id, record] : *blobs) {
      if (record.location == BlobLocation::kLocal) used += record.length;
    }
    return StoreUsage{used, capacity_, capacity_ - used, 0};
  }

 private:
  BlobStore& base_;
  NamespaceStore& ns_;
  uint64_t capacity_;
};

TEST_F(TieringTest, OverTheHighWatermarkTheColdestMoveOutUntilBelowTheLow) {
  std::vector<BlobId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(WriteFile(absl::StrCat("f", i), RandomBytes(250000, i)));
  // Last used: f2 longest ago, then f0, f3, f1.
  int64_t ages[] = {3000, 1000, 4000, 2000};
  for (int i = 0; i < 4; ++i) {
    InodeId ino = volume_->ns().GetBlob(ids[i])->owner;
    SetAttrRequest when;
    Timespec t{absl::ToUnixSeconds(absl::Now()) - ages[i], 0};
    when.atime = t;
    when.mtime = t;
    when.ctime = t;
    ASSERT_TRUE(volume_->ns().SetAttr(ino, when).ok());
  }
  // 4 x 250 kB on 1.25 MB: 80% used. Watermarks 70/50: two blobs must go.
  SizedStore sized(volume_->blobs(), volume_->ns(), 1250000);
  TierMover mover(volume_->ns(), sized, *remote_);
  TierConfig config;
  config.high_watermark_percent = 70;
  config.low_watermark_percent = 50;
  TieringService::Options options;
  options.background = false;
  TieringService service(volume_->ns(), sized, mover, config, options);
  absl::StatusOr<TieringService::PassReport> pass = service.RunPass();
  ASSERT_TRUE(pass.ok()) << pass.status();
  EXPECT_EQ(pass->moved, 2u) << "candidates " << pass->candidates << " local " << pass->local_bytes;
  EXPECT_EQ(Location(ids[2]), BlobLocation::kRemote) << "the coldest first";
  EXPECT_EQ(Location(ids[0]), BlobLocation::kRemote);
  EXPECT_EQ(Location(ids[3]), BlobLocation::kLocal);
  EXPECT_EQ(Location(ids[1]), BlobLocation::kLocal);
}

TEST(TierOptionsTest, AddressingAndCredentialsComeFromTheConfig) {
  TempDir dir;
  std::string config = dir.path() + "/cairn.toml";
  {
    FILE* f = fopen(config.c_str(), "w");
    fclose(f);
  }
  chmod(config.c_str(), 0600);
  TierConfig tier;
  tier.endpoint = "https://s3.eu-west-1.amazonaws.com";
  tier.bucket = "b";
  tier.access_key_id = "AKID";
  tier.secret_access_key = "secret";
  absl::StatusOr<s3::S3Options> aws = TierS3Options(tier, config);
  ASSERT_TRUE(aws.ok()) << aws.status();
  EXPECT_FALSE(aws->path_style);
  EXPECT_EQ(aws->credentials.access_key_id, "AKID");
  tier.endpoint = "http://127.0.0.1:9000";
  EXPECT_TRUE(TierS3Options(tier, config)->path_style);
  chmod(config.c_str(), 0644);
  EXPECT_EQ(GetFsErrorKind(TierS3Options(tier, config).status()), FsErrorKind::kAccessDenied);
}

// docs/CONFIG.md: a remote read waits read_timeout_seconds in all before
// EIO. With the server refusing connections it gave up after 6 attempts
// (2.3-3.1 s), so an ordinary restart of the remote handed readers EIO.
// An S3 target at a port nothing listens on (connections are refused at
// once), with test credentials.
template <typename Target>
Target RefusingTarget() {
  int probe = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  socklen_t length = sizeof(address);
  EXPECT_EQ(getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(probe);
  Target target;
  target.endpoint = absl::StrCat("http://127.0.0.1:", ntohs(address.sin_port));
  target.bucket = "b";
  target.access_key_id = "AKID";
  target.secret_access_key = "secret";
  return target;
}

// An empty cairn.toml in `dir`, private as one holding a secret must be.
std::string EmptyConfigIn(const TempDir& dir) {
  std::string config = dir.path() + "/cairn.toml";
  fclose(fopen(config.c_str(), "w"));
  chmod(config.c_str(), 0600);
  return config;
}

// Seconds a GET with `options` takes to fail.
double SecondsToFail(const absl::StatusOr<s3::S3Options>& options) {
  EXPECT_TRUE(options.ok()) << options.status();
  if (!options.ok()) return -1;
  absl::StatusOr<std::unique_ptr<s3::S3Client>> client = s3::S3Client::Create(*options);
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return -1;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::string> read = (*client)->GetObject("k");
  EXPECT_FALSE(read.ok());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(TierOptionsTest, AReadOfAnUnreachableRemoteKeepsTryingForReadTimeoutSeconds) {
  TempDir dir;
  const std::string config = EmptyConfigIn(dir);
  TierConfig tier = RefusingTarget<TierConfig>();
  tier.read_timeout_seconds = 4;
  const double waited = SecondsToFail(TierS3Options(tier, config));
  EXPECT_GE(waited, 3.9) << "gave up early";
  EXPECT_LT(waited, 6.0) << "waited past the timeout";
}

// A shared volume's bucket too: it answered EIO after 6 quick attempts
// (3 s) while restarting, and held a reader for about 2 minutes when it
// took connections and never answered.
TEST(TierOptionsTest, ASharedVolumesBucketIsRetriedForItsReadTimeoutToo) {
  TempDir dir;
  const std::string config = EmptyConfigIn(dir);
  SharedBlobsConfig blobs = RefusingTarget<SharedBlobsConfig>();
  blobs.read_timeout_seconds = 4;
  const double waited = SecondsToFail(SharedBlobsS3Options(blobs, config));
  EXPECT_GE(waited, 3.9) << "gave up early";
  EXPECT_LT(waited, 6.0) << "waited past the timeout";
}

}  // namespace
}  // namespace cairn
