// Everything written is still there, byte for byte and attribute for
// attribute, after the volume is unmounted and mounted again.
#include <sys/stat.h>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

// Content hashes, stat fields and xattrs of every entry, sorted.
std::string Snapshot(const std::string& dir) {
  std::string script =
      "cd " + Quote(dir) +
      " && find . -printf '%p %y %m %U %G %s %n %T@ %A@ %l\\n' | sort"
      " && find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
      " && getfattr -R -d -m - --absolute-names . 2>/dev/null";
  return Sh(script).output;
}

void WriteVariedTree(const std::string& root) {
  std::string script =
      "set -e; cd " + Quote(root) +
      "; mkdir -p d/e; : > empty; printf x > one;"
      " head -c 102400 /dev/urandom > d/100k; head -c 5242880 /dev/urandom > d/5m;"
      " dd if=/dev/urandom of=sparse bs=4096 count=2 seek=1000 status=none;"
      " head -c 300000 /dev/urandom > mid;"
      " dd if=/dev/zero of=mid bs=1 seek=150000 count=1000 conv=notrunc status=none;"
      " head -c 200000 /dev/urandom > cut; truncate -s 70000 cut;"
      " ln -s d/100k link; ln one d/e/hard; mkfifo d/fifo;"
      " setfattr -n user.color -v blue one; setfattr -n user.empty d;"
      " chmod 0600 d/100k; chmod 1777 d/e; chown 1000:1000 d/5m;"
      " touch -h -d '1999-12-31 23:59:59' link;"
      " touch -d '2010-06-01 12:00:00.123456789' d/100k";
  CommandResult result = Sh(script);
  ASSERT_EQ(result.exit_code, 0) << result.output;
}

using RemountTest = MountTest;

TEST_F(RemountTest, CairnUmountThenMountKeepsEverything) {
  if (NativeMode()) GTEST_SKIP() << "needs cairn";
  WriteVariedTree(mount_dir_);
  std::string before = Snapshot(mount_dir_);
  ASSERT_NE(before.find("user.color"), std::string::npos);
  Unmount();
  EXPECT_EQ(Sh("ls -A " + Quote(mount_dir_)).output, "");
  CommandResult status = Sh(Quote(CairnBinary()) + " status --json " +
                             Quote(volume_dir_));
  EXPECT_NE(status.output.find("\"mounted\": false"), std::string::npos)
      << status.output;
  Mount();
  EXPECT_EQ(Snapshot(mount_dir_), before);
}

TEST_F(RemountTest, PlainUmountFlushesBeforeDaemonExits) {
  if (NativeMode()) GTEST_SKIP() << "needs cairn";
  WriteVariedTree(mount_dir_);
  std::string before = Snapshot(mount_dir_);
  ASSERT_EQ(Sh("umount " + Quote(mount_dir_)).exit_code, 0);
  // The daemon finishes flushing after umount returns; wait for it.
  bool released = false;
  for (int i = 0; i < 600 && !released; ++i) {
    CommandResult status = Sh(Quote(CairnBinary()) + " status --json " +
                               Quote(volume_dir_));
    released = status.output.find("\"mounted\": false") != std::string::npos;
    if (!released) usleep(100000);
  }
  ASSERT_TRUE(released);
  Mount();
  EXPECT_EQ(Snapshot(mount_dir_), before);
}

TEST_F(RemountTest, SigtermUnmountsCleanlyAndKeepsData) {
  if (NativeMode()) GTEST_SKIP() << "needs cairn";
  // Written without fsync: SIGTERM must still get the kernel's cached pages
  // and the daemon's buffers onto the volume.
  ASSERT_EQ(Sh("head -c 3000000 /dev/urandom > " + Quote(P("f")) +
                " && sha256sum < " + Quote(P("f")) + " > " +
                Quote(work_dir_ + "/sum"))
                .exit_code,
            0);
  std::string pid = Sh("awk '{print $1}' " + Quote(volume_dir_ + "/lock"))
                        .output;
  ASSERT_FALSE(pid.empty());
  ASSERT_EQ(Sh("kill -TERM " + pid).exit_code, 0);
  bool gone = false;
  for (int i = 0; i < 600 && !gone; ++i) {
    gone = Sh("kill -0 " + pid).exit_code != 0 && !IsMounted(mount_dir_);
    if (!gone) usleep(100000);
  }
  ASSERT_TRUE(gone) << "daemon did not exit on SIGTERM";
  Mount();
  EXPECT_EQ(Sh("sha256sum < " + Quote(P("f"))).output,
            Sh("cat " + Quote(work_dir_ + "/sum")).output);
}

}  // namespace
}  // namespace cairn_it
