// Replication to a replica bucket (s3rver on 127.0.0.1, behind the tests'
// fault proxy), on a real three-disk volume with a [replica].
#include "backend/s3/s3_client.h"
#include "backend/services/replication.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "backend/base/crc32c.h"
#include "backend/base/fs_error.h"
#include "backend/services/tier_mover.h"
#include "backend/services/tiered_blob_store.h"
#include "backend/services/tiering.h"
#include "backend/services/unclaimed_remote.h"
#include "backend/volume/s3_targets.h"
#include "backend/volume/volume.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/replica_bucket.h"
#include "tests/support/random_bytes.h"
#include "tests/support/s3rver.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

class ReplicationTest : public ReplicaBucketTest {
 protected:
  // Opens the volume, with a [replica] on the test's server when asked.
  void Open(bool with_replica) {
    replicator_.reset();
    replica_.reset();
    volume_.reset();
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol());
    ASSERT_TRUE(config.ok()) << config.status();
    if (with_replica) {
      config->replica = ReplicaSection();
    }
    auto volume = Volume::Open(Vol(), *config);
    ASSERT_TRUE(volume.ok()) << volume.status();
    volume_ = std::move(*volume);
    replica_ = std::make_unique<RemoteBlobStore>(*client_, "cairn/", volume_->config().volume_id);
    Replicator::Options options;
    options.background = false;
    replicator_ = std::make_unique<Replicator>(volume_->ns(), volume_->blobs(), *replica_, options);
  }
  BlobId WriteFile(const std::string& name, const std::string& data) {
    return WriteFileAsOneBlob(volume_->ns(), volume_->blobs(), name, data);
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
  bool InReplica(BlobId id, const std::string& data) {
    return replica_->Verify(id, data.size(), Crc32c(data)).ok();
  }

  std::unique_ptr<Volume> volume_;
  std::unique_ptr<RemoteBlobStore> replica_;
  std::unique_ptr<Replicator> replicator_;
};

TEST_F(ReplicationTest, EveryCommittedBlobIsQueuedAndCopiedVerified) {
  ASSERT_NO_FATAL_FAILURE(Open(true));
  std::string a = RandomBytes(300000, 1), b = RandomBytes(1 << 20, 2);
  BlobId id_a = WriteFile("a", a), id_b = WriteFile("b", b);
  EXPECT_EQ(Queued(), (std::vector<BlobId>{id_a, id_b})) << "queued by the commit itself";
  absl::StatusOr<ReplicationBacklog> backlog = volume_->ns().GetReplicationBacklog(100);
  ASSERT_TRUE(backlog.ok());
  EXPECT_EQ(backlog->blobs, 2u);
  EXPECT_EQ(backlog->bytes, a.size() + b.size());
  EXPECT_GT(backlog->oldest_sec, 0);
  absl::StatusOr<uint64_t> copied = replicator_->RunPass();
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, 2u);
  EXPECT_TRUE(Queued().empty());
  EXPECT_TRUE(InReplica(id_a, a));
  EXPECT_TRUE(InReplica(id_b, b));
  EXPECT_EQ(volume_->ns().GetReplicationBacklog(100)->blobs, 0u);
  EXPECT_EQ(replicator_->GetStatus().lag_seconds, 0);
}

TEST_F(ReplicationTest, AFailingReplicaKeepsTheQueueAndCatchesUpAfterwards) {
  ASSERT_NO_FATAL_FAILURE(Open(true));
  std::string data = RandomBytes(200000, 3);
  BlobId id = WriteFile("f", data);
  proxy_->server_error = 1000;
  EXPECT_FALSE(replicator_->RunPass().ok());
  EXPECT_EQ(Queued(), std::vector<BlobId>{id}) << "nothing cleared without a verified copy";
  EXPECT_EQ(replicator_->GetStatus().healthy, false);
  proxy_->server_error = 0;
  // The upload goes through but its verification does not.
  proxy_->server_error_on_get = 1000;
  EXPECT_FALSE(replicator_->RunPass().ok());
  EXPECT_EQ(Queued(), std::vector<BlobId>{id});
  proxy_->server_error_on_get = 0;
  // The queue survives a restart, and the next pass catches up.
  ASSERT_NO_FATAL_FAILURE(Open(true));
  EXPECT_EQ(Queued(), std::vector<BlobId>{id});
  proxy_->slow_down = 2;
  ASSERT_TRUE(replicator_->RunPass().ok());
  EXPECT_TRUE(Queued().empty());
  EXPECT_TRUE(InReplica(id, data));
  EXPECT_EQ(replicator_->GetStatus().healthy, true);
}

TEST_F(ReplicationTest, BlobsStoredBeforeReplicationBeganAreQueuedOnce) {
  ASSERT_NO_FATAL_FAILURE(Open(false));
  std::string data = RandomBytes(150000, 4);
  BlobId id = WriteFile("old", data);
  EXPECT_TRUE(Queued().empty()) << "no replica, no queue";
  ASSERT_NO_FATAL_FAILURE(Open(true));
  EXPECT_EQ(Queued(), std::vector<BlobId>{id});
  ASSERT_TRUE(replicator_->RunPass().ok());
  EXPECT_TRUE(InReplica(id, data));
  ASSERT_NO_FATAL_FAILURE(Open(true));
  EXPECT_TRUE(Queued().empty()) << "queued once per replica target";
}

TEST_F(ReplicationTest, ABlobDeletedBeforeItsCopyIsDroppedFromTheQueue) {
  ASSERT_NO_FATAL_FAILURE(Open(true));
  BlobId id = WriteFile("gone", RandomBytes(100000, 5));
  absl::StatusOr<InodeAttr> unlinked = volume_->ns().Unlink(kRootInode, "gone");
  ASSERT_TRUE(unlinked.ok());
  ASSERT_TRUE(volume_->ns().ReleaseInode(unlinked->ino).ok());
  ASSERT_TRUE(volume_->blobs().Delete(id).ok());
  ASSERT_TRUE(volume_->ns().ForgetBlobs({id}).ok());
  int requests = proxy_->requests;
  ASSERT_TRUE(replicator_->RunPass().ok());
  EXPECT_TRUE(Queued().empty());
  EXPECT_EQ(proxy_->requests.load(), requests) << "nothing to upload";
}

TEST_F(ReplicationTest, ABadReplicaSectionIsRefusedNamingTheKey) {
  std::string config = Vol() + "/cairn.toml";
  FILE* f = fopen(config.c_str(), "a");
  ASSERT_NE(f, nullptr);
  fputs("\n[replica]\nbucket = \"b\"\n", f);
  fclose(f);
  absl::StatusOr<VolumeConfig> loaded = LoadVolumeConfig(Vol());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("[replica] key 'endpoint'"), std::string::npos)
      << loaded.status();
}

}  // namespace
}  // namespace cairn
