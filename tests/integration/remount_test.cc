// Everything written is still there, byte for byte and attribute for
// attribute, after the volume is unmounted (by `cairn umount` or plain
// umount(8)) and mounted again. Nothing is fsynced: a clean unmount alone
// must store everything.
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

class RemountTest : public MountTest {
 protected:
  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    MountTest::SetUp();
  }

  // Every entry's type, mode, owner, size, link count, inode number, times
  // (ns), symlink target and rdev; every file's sha256; every xattr (hex).
  // Written to work_dir_/`name`; returns the file's content.
  std::string Snapshot(const std::string& name) {
    std::string file = Quote(work_dir_ + "/" + name);
    CommandResult result = Run(
        "set -e; cd " + QP("") +
        "; { find . -printf '%p %y %m %U %G %s %n %i %T@ %A@ %C@ %l\\n' | LC_ALL=C sort"
        "; find . -type c -printf '%p ' -exec stat -c '%t:%T' {} \\;"
        "; find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum"
        "; getfattr -R -h -d -m - -e hex --absolute-names . ; } > " + file +
        "; cat " + file);
    EXPECT_EQ(result.exit_code, 0) << result.output.substr(0, 2000);
    return result.output;
  }

  void ExpectSameSnapshot(const std::string& before) {
    std::string after = Snapshot("after");
    if (after == before) return;
    CommandResult diff = Run("diff " + Quote(work_dir_ + "/before") + " " +
                             Quote(work_dir_ + "/after") + " | head -60");
    ADD_FAILURE() << "the tree changed across the remount:\n" << Brief(diff);
  }

  void WriteVariedTree() {
    std::string script =
        "set -e; cd " + QP("") +
        "; mkdir -p d/e deep/1/2/3/4/5/6/7/8 many; : > empty; printf x > one"
        "; head -c 102400 /dev/urandom > d/100k; head -c 5242880 /dev/urandom > d/5m"
        // Sparse: data, a 4 MiB hole, data, a hole up to the end.
        "; head -c 4096 /dev/urandom > sparse"
        "; head -c 8192 /dev/urandom | dd of=sparse bs=4096 seek=1025 conv=notrunc status=none"
        "; truncate -s 20M sparse"
        // Overwritten in the middle, in place.
        "; head -c 300000 /dev/urandom > mid"
        "; head -c 1000 /dev/zero | dd of=mid bs=1 seek=150000 conv=notrunc status=none"
        // Grown, then cut short.
        "; head -c 200000 /dev/urandom > cut; truncate -s 70000 cut"
        "; for i in $(seq 1 1000); do echo $i > many/f$i; done"
        "; echo deep > deep/1/2/3/4/5/6/7/8/leaf"
        "; ln -s d/100k link; ln -s /nonexistent/target dangling; ln one d/e/hard"
        "; ln one hard2; mkfifo d/fifo; mknod d/null c 1 3"
        "; setfattr -n user.color -v blue one; setfattr -n user.empty d"
        "; setfattr -n user.bin -v 0x00ff10 d/5m; setfattr -h -n trusted.t -v v link"
        "; chmod 0600 d/100k; chmod 1777 d/e; chmod 4711 cut; chmod 2750 d"
        "; chown 1000:1000 d/5m; chown -h 7:8 link; chown 0:4321 deep"
        "; touch -h -d '1999-12-31 23:59:59.5' link"
        "; touch -d '2010-06-01 12:00:00.123456789' d/100k"
        "; touch -a -d '2001-01-01 00:00:00.000000001' one"
        "; touch -m -d '2020-02-29 12:00:00' deep/1/2";
    CommandResult result = Run(script);
    ASSERT_EQ(result.exit_code, 0) << Brief(result);
  }

  void ExpectStillSparse() {
    struct stat st;
    ASSERT_EQ(stat(P("sparse").c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 20 << 20);
    EXPECT_LT(st.st_blocks * 512, 1 << 20) << "holes were filled in";
  }
};

TEST_F(RemountTest, CairnUmountThenMountKeepsEverything) {
  ASSERT_NO_FATAL_FAILURE(WriteVariedTree());
  std::string before = Snapshot("before");
  ASSERT_NE(before.find("user.color=0x626c7565"), std::string::npos) << before.substr(0, 3000);
  ASSERT_NE(before.find("./d/fifo p"), std::string::npos);
  pid_t daemon = DaemonPid();
  ASSERT_GT(daemon, 0);
  ASSERT_NO_FATAL_FAILURE(Unmount());
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(daemon); }, 5))
      << "daemon " << daemon << " still alive after cairn umount returned";
  EXPECT_FALSE(IsMounted(mount_dir_));
  EXPECT_EQ(Run("ls -A " + QP("")).output, "") << "mountpoint not empty after unmount";
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectSameSnapshot(before);
  ExpectStillSparse();
  // And the volume takes writes again.
  EXPECT_EQ(Run("echo more >> " + QP("one") + " && cat " + QP("one")).output, "xmore\n");
}

TEST_F(RemountTest, PlainUmountThenMountKeepsEverything) {
  ASSERT_NO_FATAL_FAILURE(WriteVariedTree());
  std::string before = Snapshot("before");
  pid_t daemon = DaemonPid();
  ASSERT_GT(daemon, 0);
  CommandResult umount = Run("umount " + QP(""), 60);
  ASSERT_EQ(umount.exit_code, 0) << Brief(umount);
  EXPECT_FALSE(IsMounted(mount_dir_));
  // umount(8) returns before the daemon has stored everything: wait until it
  // has released the volume and exited.
  std::string status;
  EXPECT_TRUE(WaitFor([&] {
    status = Cairn("status --json " + Quote(volume_dir_), 30).output;
    return JsonField(status, "mounted") == "false";
  }, 120)) << "volume still held after umount: " << status;
  EXPECT_TRUE(WaitFor([&] { return !ProcessAlive(daemon); }, 10))
      << "daemon " << daemon << " did not exit after umount";
  ASSERT_NO_FATAL_FAILURE(Mount());
  ExpectSameSnapshot(before);
  ExpectStillSparse();
}

}  // namespace
}  // namespace cairn_it
