// The remote tier through a real mount: a volume over three disk
// directories with a [tier] pointing at a private s3rver on 127.0.0.1,
// driven with cairn tier, xattrs and ordinary reads.
#include <sys/stat.h>

#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/s3rver.h"

namespace cairn_it {
namespace {

class TierTest : public MountTest {
 protected:
  int DiskCount() override { return 3; }
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    std::string why;
    server_ = cairn::S3rver::Start("tier", &why);
    if (!server_) GTEST_SKIP() << why;
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(Unmount());
    ConfigureTier("");
    ASSERT_NO_FATAL_FAILURE(Mount());
  }
  // Replaces the [tier] section of the volume's cairn.toml (other sections
  // stay) with one for the test's s3rver, plus `extra` lines.
  void ConfigureTier(const std::string& extra) {
    std::string config = volume_dir_ + "/cairn.toml";
    CommandResult edit = Run(
        "sed -i '/^\\[tier\\]/,/^\\[[a-z]*\\]/{/^\\[tier\\]/d;/^\\[[a-z]*\\]/!d}' " + Quote(config) + " && printf '%s\\n' '[tier]' " +
        Quote("endpoint = \"" + server_->endpoint() + "\"") + " 'bucket = \"tier\"' " +
        "'access_key_id = \"S3RVER\"' 'secret_access_key = \"S3RVER\"' 'read_timeout_seconds = 3' " +
        (extra.empty() ? "" : Quote(extra)) + " >> " + Quote(config) + " && chmod 600 " +
        Quote(config));
    ASSERT_EQ(edit.exit_code, 0) << Brief(edit);
  }
  std::string Location(const std::string& relative) {
    return Run("getfattr --absolute-names --only-values -n user.cairn.location " + QP(relative)).output;
  }
  // Shard files on the local disks.
  int LocalShards() {
    return std::atoi(Run("find " + Quote(work_dir_) + "/disk* -name '*.shard' | wc -l").output.c_str());
  }
  void WriteTree() {
    CommandResult made = Run(
        "set -e; cd " + QP("") + "; mkdir -p a/b; "
        "for i in 1 2 3; do head -c $((i * 700000)) /dev/urandom > a/big$i; done; "
        "head -c 3000000 /dev/urandom > a/b/deep; echo small > a/b/small; "
        "find . -type f -print0 | sort -z | xargs -0 sha256sum > " + Quote(work_dir_ + "/sums"));
    ASSERT_EQ(made.exit_code, 0) << Brief(made);
  }
  void ExpectTreeIntact() {
    CommandResult check = Run("echo 3 > /proc/sys/vm/drop_caches; cd " + QP("") +
                              " && sha256sum --quiet -c " + Quote(work_dir_ + "/sums"));
    EXPECT_EQ(check.exit_code, 0) << Brief(check);
  }

  std::unique_ptr<cairn::S3rver> server_;
};

TEST_F(TierTest, TierOutFreesLocalSpaceAndEverythingReadsBackIdentical) {
  ASSERT_NO_FATAL_FAILURE(WriteTree());
  EXPECT_EQ(Location("a/big1"), "local");
  CommandResult out = Cairn("tier out " + QP("a"), 120);
  ASSERT_EQ(out.exit_code, 0) << Brief(out);
  EXPECT_EQ(Location("a/big1"), "remote");
  EXPECT_EQ(Location("a/b/deep"), "remote");
  EXPECT_EQ(LocalShards(), 0) << "moved data leaves no shard behind";
  // One blob (up to 4 MiB) for each of a/big1..3 and a/b/deep; a/b/small is inline.
  CommandResult objects = Run("find " + Quote(server_->dir()) + " -type f -name '*._S3rver_object' | wc -l");
  EXPECT_EQ(std::atoi(objects.output.c_str()), 4) << "the bucket holds one object per blob";
  ExpectTreeIntact();
  ASSERT_NO_FATAL_FAILURE(Remount());
  EXPECT_EQ(last_mount_output_.find("warning"), std::string::npos) << last_mount_output_;
  ExpectTreeIntact();
  CommandResult back = Cairn("tier in " + QP("a/big2"), 120);
  ASSERT_EQ(back.exit_code, 0) << Brief(back);
  EXPECT_EQ(Location("a/big2"), "local+remote");
  EXPECT_EQ(Run("getfattr --absolute-names --only-values -n user.cairn.pin " + QP("a/big2")).output, "1");
  EXPECT_GT(LocalShards(), 0);
  ExpectTreeIntact();
  CommandResult fsck_before = Cairn("umount " + Quote(mount_dir_));
  ASSERT_EQ(fsck_before.exit_code, 0) << Brief(fsck_before);
  CommandResult fsck = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(fsck.exit_code, 0) << Brief(fsck);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

TEST_F(TierTest, ThePolicyMovesColdFilesAndLeavesPinnedOnesLocal) {
  ASSERT_NO_FATAL_FAILURE(WriteTree());
  ASSERT_EQ(Cairn("pin " + QP("a/big3")).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  ConfigureTier("cold_after_seconds = 0");
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult run = Cairn("tier run " + QP(""), 120);
  ASSERT_EQ(run.exit_code, 0) << Brief(run);
  EXPECT_EQ(Location("a/big1"), "remote");
  EXPECT_EQ(Location("a/b/deep"), "remote");
  EXPECT_EQ(Location("a/big3"), "local") << "pinned";
  EXPECT_EQ(Location("a/b/small"), "local") << "inline data never moves";
  ExpectTreeIntact();
  CommandResult status = Cairn("tier status " + QP(""));
  EXPECT_EQ(status.exit_code, 0) << Brief(status);
  EXPECT_NE(status.output.find("healthy"), std::string::npos) << Brief(status);
}

TEST_F(TierTest, ARemoteThatIsDownFailsOnlyRemoteReadsUntilItIsBack) {
  ASSERT_NO_FATAL_FAILURE(WriteTree());
  ASSERT_EQ(Cairn("tier out " + QP("a/big1"), 120).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  server_->Stop();
  ASSERT_NO_FATAL_FAILURE(Mount());  // the mount does not need the remote
  EXPECT_NE(last_mount_output_.find("warning: the remote tier does not answer"), std::string::npos)
      << last_mount_output_;
  CommandResult local = Run("cat " + QP("a/big2") + " > /dev/null");
  EXPECT_EQ(local.exit_code, 0) << Brief(local);
  CommandResult remote = Run("echo 3 > /proc/sys/vm/drop_caches; cat " + QP("a/big1") +
                             " > /dev/null", 120);
  EXPECT_NE(remote.exit_code, 0);
  EXPECT_NE(remote.output.find("Input/output error"), std::string::npos) << Brief(remote);
  CommandResult move = Cairn("tier out " + QP("a"), 120);
  EXPECT_NE(move.exit_code, 0) << Brief(move);
  EXPECT_NE(move.output.find(mount_dir_ + "/a/"), std::string::npos) << "names the file: " << Brief(move);
  EXPECT_EQ(Location("a/big2"), "local") << "nothing moved while the remote is down";
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  ExpectTreeIntact();
}

TEST_F(TierTest, TieredDataReadOnceIsServedFromTheLocalCacheWhileTheRemoteIsDown) {
  ASSERT_NO_FATAL_FAILURE(WriteTree());
  ASSERT_EQ(Cairn("tier out " + QP("a"), 120).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(Remount());  // nothing of it left in memory
  CommandResult warm = Run("cat " + QP("a/big1") + " > /dev/null");
  ASSERT_EQ(warm.exit_code, 0) << Brief(warm);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  server_->Stop();
  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult cached = Run("echo 3 > /proc/sys/vm/drop_caches; cd " + QP("") +
                             " && grep ' ./a/big1$' " + Quote(work_dir_ + "/sums") +
                             " | sha256sum --quiet -c");
  EXPECT_EQ(cached.exit_code, 0) << "read from CACHE_DIR/tier-blocks, no remote needed: "
                                 << Brief(cached);
  CommandResult never_read = Run("cat " + QP("a/big2") + " > /dev/null", 120);
  EXPECT_NE(never_read.exit_code, 0) << "not cached: needs the remote";
  std::string why;
  ASSERT_TRUE(server_->Restart(&why)) << why;
  ExpectTreeIntact();
}

}  // namespace
}  // namespace cairn_it
