// Rot in the stores a volume keeps besides its shards: a flipped byte must
// give the right bytes, EIO, or a refused mount that says what to run, and
// the command it names must bring back everything intact, saying what was
// lost. Never silently wrong or missing data.
#include <signal.h>

#include <filesystem>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/support/file_bytes.h"

namespace cairn_it {
namespace {

namespace fsys = std::filesystem;

class CorruptionTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
  }

  // The largest file of `dir` with `extension`.
  static std::string Largest(const std::string& dir, const std::string& extension) {
    std::string largest;
    uintmax_t size = 0;
    for (const auto& entry : fsys::directory_iterator(dir)) {
      if (entry.path().extension() != extension) continue;
      if (entry.file_size() > size) {
        size = entry.file_size();
        largest = entry.path();
      }
    }
    return largest;
  }
};

// A crash leaves the namespace's recent changes only in its log. Replay used
// to stop at a damaged record and mount anyway: every file created after it
// was gone and fsck said clean.
TEST_F(CorruptionTest, ADamagedNamespaceLogRefusesTheMountAndFsckRepairSalvagesTheRest) {
  CommandResult made = Run("cd " + QP("") + " && for i in $(seq 400); do echo data$i > f$i; "
                           "done && sync f400");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(CrashDaemon());
  const std::string log = Largest(volume_dir_ + "/namespace", ".log");
  ASSERT_FALSE(log.empty());
  ASSERT_GT(fsys::file_size(log), 40000u) << "the changes are not in the log";
  cairn::FlipByte(log, fsys::file_size(log) / 3);

  CommandResult refused = Cairn("mount " + Quote(volume_dir_) + " " + QP(""), 60);
  EXPECT_NE(refused.exit_code, 0) << Brief(refused);
  EXPECT_NE(refused.output.find("damaged"), std::string::npos) << Brief(refused);
  EXPECT_NE(refused.output.find("cairn fsck --repair"), std::string::npos) << Brief(refused);
  EXPECT_FALSE(IsMounted(mount_dir_));
  CommandResult check = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(check.exit_code, 4) << Brief(check);

  CommandResult repaired = Cairn("fsck --repair " + Quote(volume_dir_), 120);
  EXPECT_TRUE(repaired.exit_code == 1 || repaired.exit_code == 4) << Brief(repaired);
  EXPECT_NE(repaired.output.find("dropping"), std::string::npos)
      << "fsck must say what was lost: " << Brief(repaired);

  ASSERT_NO_FATAL_FAILURE(Mount());
  CommandResult counted = Run("cd " + QP("") + " && n=0; for i in $(seq 400); do "
                              "[ \"$(cat f$i 2>/dev/null)\" = data$i ] && n=$((n+1)); done; "
                              "echo $n");
  EXPECT_GE(std::stoi(counted.output), 300) << Brief(counted);
  EXPECT_EQ(Run("cat " + QP("f400")).output, "data400\n") << "changes after the damage lost";
}

// A crash leaves fsynced writes only in the journal. Replay used to stop at
// a damaged record: 26 of 30 fsynced files came back empty, and the mount
// said nothing.
TEST_F(CorruptionTest, ADamagedJournalRecordCostsOnlyItsOwnWriteAndTheMountSaysSo) {
  CommandResult made = Run("cd " + QP("") + " && for i in $(seq 30); do head -c 100000 "
                           "/dev/urandom > s$i; dd if=s$i of=f$i bs=100000 conv=fsync "
                           "status=none; sha256sum < f$i > " + Quote(work_dir_) + "/sum$i; "
                           "rm s$i; done");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(CrashDaemon());
  const std::string segment = Largest(volume_dir_ + "/cache/journal", ".jnl");
  ASSERT_FALSE(segment.empty());
  ASSERT_GT(fsys::file_size(segment), 3000000u) << "the writes are not in the journal";
  cairn::FlipByte(segment, fsys::file_size(segment) / 2);

  CommandResult mount = Cairn("mount " + Quote(volume_dir_) + " " + QP(""), 120);
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  RecordConnection();
  EXPECT_NE(mount.output.find("journal"), std::string::npos) << Brief(mount);
  EXPECT_NE(mount.output.find("damaged"), std::string::npos) << Brief(mount);
  CommandResult intact = Run("cd " + QP("") + " && n=0; for i in $(seq 30); do "
                             "sha256sum < f$i 2>/dev/null | cmp -s - " + Quote(work_dir_) +
                             "/sum$i && n=$((n+1)); done 2>/dev/null; echo $n");
  EXPECT_EQ(intact.output, "29\n") << "every file but the damaged record's";
  // The file that lost its write fails reads instead of showing old bytes,
  // the mount named it, and fsck names it too.
  CommandResult failing = Run("cd " + QP("") + " && for i in $(seq 30); do cat f$i > /dev/null "
                              "2>&1 || echo f$i; done");
  ASSERT_EQ(failing.output.size() > 0, true) << "no file fails its reads: " << Brief(failing)
                                             << Brief(mount);
  const std::string damaged = failing.output.substr(0, failing.output.find('\n'));
  EXPECT_EQ(failing.output, damaged + "\n") << "only one file lost a write";
  EXPECT_NE(mount.output.find("inode"), std::string::npos) << Brief(mount);
  // cairn status counts it, mounted (from the daemon's figures) and not.
  EXPECT_TRUE(WaitFor(
      [&] {
        return Cairn("status --json " + Quote(volume_dir_), 30)
                   .output.find("\"damaged_files\": 1,") != std::string::npos;
      },
      30))
      << Brief(Cairn("status --json " + Quote(volume_dir_), 30));
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult status = Cairn("status " + Quote(volume_dir_), 60);
  EXPECT_NE(status.output.find("DAMAGED:    1 file lost data"), std::string::npos)
      << Brief(status);
  CommandResult fsck = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(fsck.exit_code, 4) << Brief(fsck);
  EXPECT_NE(fsck.output.find("damaged"), std::string::npos) << Brief(fsck);
  ASSERT_NO_FATAL_FAILURE(Mount());
  // Truncated to nothing, it is usable again, and fsck is clean.
  CommandResult rewritten = Run("cd " + QP("") + " && : > " + damaged + " && echo new > " +
                                damaged + " && cat " + damaged);
  EXPECT_EQ(rewritten.output, "new\n") << Brief(rewritten);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult clean = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(clean.exit_code, 0) << Brief(clean);
  status = Cairn("status --json " + Quote(volume_dir_), 60);
  EXPECT_NE(status.output.find("\"damaged_files\": 0,"), std::string::npos) << Brief(status);
  ASSERT_NO_FATAL_FAILURE(Mount());
}

}  // namespace
}  // namespace cairn_it
