// mount -o ro writes nothing to the volume: not its namespace (a log a crash
// left is replayed in memory), not its journal (what it holds is served
// from memory and stored by the next read-write mount), not its disks. So
// a volume on a full disk, or one an operator wants to look at without
// touching, can always be mounted this way.
#include <string>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

class ReadOnlyTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
  }

  // Every file and directory of the volume, its disks and cache, with the
  // checksum of each file. Left out: what a running daemon keeps about
  // itself (the lock's pid and mountpoint, how it last stopped, its
  // figures for cairn status, its control socket).
  std::string Snapshot() {
    CommandResult listed = Run(
        "cd " + Quote(work_dir_) + " && find . -path ./mnt -prune -o ! -name lock "
        "! -name last-stop ! -name stats.json ! -name control -print | sort | while read -r f; "
        "do if [ -f \"$f\" ]; then printf '%s %s\\n' \"$f\" \"$(sha256sum < \"$f\")\"; "
        "else printf '%s\\n' \"$f\"; fi; done");
    EXPECT_EQ(listed.exit_code, 0) << Brief(listed);
    return listed.output;
  }
};

TEST_F(ReadOnlyTest, AReadOnlyMountAfterACrashShowsEveryWriteAndChangesNoByte) {
  // Small files (kept in the namespace) and large ones (blobs), fsynced
  // and then only in the journal and the namespace log when the daemon dies.
  CommandResult made = Run(
      "cd " + QP("") + " && mkdir d && for i in $(seq 12); do head -c $((i * 40000)) "
      "/dev/urandom > " + Quote(work_dir_) + "/src$i; dd if=" + Quote(work_dir_) +
      "/src$i of=d/f$i bs=1M conv=fsync status=none; done && mv d/f1 d/renamed && sync");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(CrashDaemon());
  const std::string before = Snapshot();

  CommandResult mount = Cairn("mount -o ro " + Quote(volume_dir_) + " " + QP(""), 60);
  ASSERT_EQ(mount.exit_code, 0) << Brief(mount);
  RecordConnection();
  CommandResult same = Run("cd " + QP("d") + " && cmp renamed " + Quote(work_dir_) +
                           "/src1 && for i in $(seq 2 12); do cmp f$i " + Quote(work_dir_) +
                           "/src$i || exit 1; done");
  EXPECT_EQ(same.exit_code, 0) << "a write the crash left in the journal is missing: "
                               << Brief(same) << Brief(mount);
  // Data only in the journal is data to SEEK_HOLE too: a copy with
  // cp --sparse must not skip it.
  CommandResult hole = Run("python3 -c \"import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
                           "print(os.lseek(fd, 0, os.SEEK_HOLE))\" " + QP("d/f12"));
  EXPECT_EQ(hole.output, "480000\n") << "journaled data reported as a hole: " << Brief(hole);
  CommandResult write = Run("touch " + QP("new") + " 2>&1");
  EXPECT_NE(write.exit_code, 0);
  EXPECT_NE(write.output.find("Read-only file system"), std::string::npos) << Brief(write);
  CommandResult scrub = Cairn("scrub " + QP(""), 60);
  EXPECT_EQ(scrub.exit_code, 1) << Brief(scrub);
  EXPECT_NE(scrub.output.find("read-only"), std::string::npos) << Brief(scrub);
  CommandResult status = Cairn("status " + QP(""), 60);
  EXPECT_EQ(status.exit_code, 0) << Brief(status);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  EXPECT_EQ(Snapshot(), before) << "the read-only mount changed the volume";

  // The next read-write mount stores what the journal held.
  ASSERT_NO_FATAL_FAILURE(Mount());
  same = Run("cd " + QP("d") + " && for i in $(seq 2 12); do cmp f$i " + Quote(work_dir_) +
             "/src$i || exit 1; done");
  EXPECT_EQ(same.exit_code, 0) << Brief(same);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult fsck = Cairn("fsck " + Quote(volume_dir_), 120);
  EXPECT_EQ(fsck.exit_code, 0) << Brief(fsck);
}

}  // namespace
}  // namespace cairn_it
