// Replication through a real mount: a volume with a [replica] on a private
// s3rver; what is written reaches the replica bucket and the lag returns to
// zero, as cairn status reports it.
#include <fstream>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/s3rver.h"

namespace cairn_it {
namespace {

class ReplicaTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    std::string why;
    server_ = cairn::S3rver::Start("replica", &why);
    if (!server_) GTEST_SKIP() << why;
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(AddReplicaAndRemount(server_->endpoint()));
  }
  int ReplicaObjects() {
    return std::atoi(Run("find " + Quote(server_->dir()) +
                         " -type f -path '*/blobs/*' -name '*._S3rver_object' | wc -l").output.c_str());
  }
  std::unique_ptr<cairn::S3rver> server_;
};

TEST_F(ReplicaTest, WrittenDataReachesTheReplicaAndTheLagReturnsToZero) {
  CommandResult made = Run("cd " + QP("") + " && for i in 1 2 3 4 5; do head -c 500000 "
                           "/dev/urandom > f$i; done && sync");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  // Stored (the writeback flushes within seconds), then copied.
  bool caught_up = WaitFor(
      [&] {
        CommandResult status = Cairn("status --json " + Quote(mount_dir_), 30);
        return status.output.find("\"replica\": {\"queued_blobs\": 0,") != std::string::npos &&
               ReplicaObjects() == 5;
      },
      60);
  EXPECT_TRUE(caught_up) << Brief(Cairn("status " + Quote(mount_dir_), 30));
  CommandResult status = Cairn("status " + Quote(mount_dir_), 30);
  EXPECT_NE(status.output.find("replica:    0 blobs (0 B) waiting, lag 0 s; 5 copied"),
            std::string::npos)
      << Brief(status);
}

// A replica object damaged in the bucket, while the volume holds a good
// copy: cairn scrub --remote finds it, rewrites it, and says so.
TEST_F(ReplicaTest, TheRemoteScrubFindsADamagedReplicaObjectAndRewritesIt) {
  CommandResult made = Run("cd " + QP("") + " && for i in 1 2 3; do head -c 300000 "
                           "/dev/urandom > f$i; done && sync");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_TRUE(WaitFor([&] { return ReplicaObjects() == 3; }, 60))
      << Brief(Cairn("status " + Quote(mount_dir_), 30));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Cairn("status --json " + Quote(mount_dir_), 30)
                   .output.find("\"replica\": {\"queued_blobs\": 0,") != std::string::npos;
      },
      60));
  auto damage_one = [&] {
    std::string object = Run("find " + Quote(server_->dir()) +
                             " -type f -path '*/blobs/*' -name '*._S3rver_object' | sort | head -1")
                             .output;
    while (!object.empty() && object.back() == '\n') object.pop_back();
    ASSERT_FALSE(object.empty());
    // Inverted, not overwritten with a constant: the random byte there
    // was that constant one time in 256, and the scrub found nothing.
    std::fstream file(object, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.is_open()) << object;
    file.seekg(150000);
    char byte = 0;
    ASSERT_TRUE(file.get(byte)) << object;
    file.seekp(150000);
    ASSERT_TRUE(file.put(static_cast<char>(~byte)).flush()) << object;
  };
  ASSERT_NO_FATAL_FAILURE(damage_one());
  CommandResult report = Cairn("scrub --remote --no-repair " + Quote(mount_dir_), 120);
  EXPECT_EQ(report.exit_code, 1) << Brief(report);
  EXPECT_NE(report.output.find("1 bad replica objects (0 repaired)"), std::string::npos)
      << Brief(report);
  EXPECT_NE(report.output.find("does not match its checksum"), std::string::npos)
      << Brief(report);

  report = Cairn("scrub --remote " + Quote(mount_dir_), 120);
  EXPECT_EQ(report.exit_code, 0) << Brief(report);
  EXPECT_NE(report.output.find("3 objects"), std::string::npos) << Brief(report);
  EXPECT_NE(report.output.find("1 bad replica objects (1 repaired)"), std::string::npos)
      << Brief(report);
  report = Cairn("scrub --remote --json " + Quote(mount_dir_), 120);
  EXPECT_EQ(report.exit_code, 0) << Brief(report);
  EXPECT_NE(report.output.find("\"replica_bad\": 0,"), std::string::npos) << Brief(report);

  // The status shows what the last whole pass found (after the daemon
  // wrote its figures again).
  EXPECT_TRUE(WaitFor(
      [&] {
        return Cairn("status " + Quote(mount_dir_), 30)
                   .output.find("remote scrub: last pass finished") != std::string::npos;
      },
      30))
      << Brief(Cairn("status " + Quote(mount_dir_), 30));
}

}  // namespace
}  // namespace cairn_it
