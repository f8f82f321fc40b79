// Ordinary tools users run on a mount, checked against the source of truth
// (a native copy) by the same tools.
#include <sys/stat.h>

#include "tests/integration/mount_fixture.h"

namespace cairn_it {
namespace {

// A listing of a tree with the attributes cp -a and tar promise to keep
// (directory sizes are filesystem-specific and left out).
std::string TreeListing(const std::string& dir) {
  return Sh("cd " + Quote(dir) +
             " && find . -printf '%p %y %m %U %G %l\\n' | sort"
             " && find . -type f -printf '%p %s\\n' | sort")
      .output;
}

using ToolsTest = MountTest;

TEST_F(ToolsTest, CopyOfUsrIncludeIsIdentical) {
  CommandResult cp = Sh("cp -a /usr/include " + Quote(P("include")));
  ASSERT_EQ(cp.exit_code, 0) << cp.output;
  CommandResult diff = Sh("diff -r --no-dereference /usr/include " + Quote(P("include")));
  EXPECT_EQ(diff.exit_code, 0) << diff.output.substr(0, 2000);
  EXPECT_EQ(TreeListing("/usr/include"), TreeListing(P("include")));
}

TEST_F(ToolsTest, TarRoundTripIsIdentical) {
  ASSERT_EQ(Sh("mkdir " + Quote(P("out"))).exit_code, 0);
  CommandResult tar = Sh("tar -C /usr/include -cf - linux | tar -C " +
                          Quote(P("out")) + " -xpf -");
  ASSERT_EQ(tar.exit_code, 0) << tar.output;
  CommandResult diff =
      Sh("diff -r --no-dereference /usr/include/linux " + Quote(P("out/linux")));
  EXPECT_EQ(diff.exit_code, 0) << diff.output.substr(0, 2000);
  // And back out of the mount.
  std::string back = work_dir_ + "/back";
  ASSERT_EQ(Sh("mkdir -p " + Quote(back) + " && tar -C " + Quote(P("out")) +
                " -cf - linux | tar -C " + Quote(back) + " -xpf -")
                .exit_code,
            0);
  EXPECT_EQ(Sh("diff -r --no-dereference /usr/include/linux " + Quote(back + "/linux"))
                .exit_code,
            0);
}

TEST_F(ToolsTest, RsyncLeavesNothingToDo) {
  CommandResult rsync =
      Sh("rsync -a /usr/include/c++ " + Quote(P("")) + " 2>&1 | tail -5");
  ASSERT_EQ(rsync.exit_code, 0) << rsync.output;
  CommandResult again = Sh("rsync -a --checksum --dry-run --itemize-changes "
                            "/usr/include/c++ " +
                            Quote(P("")));
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.output, "");
}

TEST_F(ToolsTest, MvLnChmodChownTouch) {
  std::string script =
      "set -e; cd " + Quote(P("")) +
      "; mkdir -p a/b; echo one > a/b/f; mv a/b/f a/g; mv a/b c;"
      " ln a/g a/hard; ln -s ../a/g c/soft; chmod 0640 a/g;"
      " chown 1234:5678 a/hard; touch -d '2001-02-03 04:05:06' a/g;"
      " test ! -e a/b; test -d c; cat c/soft; readlink c/soft;"
      " stat -c '%h %a %u %g %Y' a/g";
  CommandResult result = Sh(script);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // The hard link shares mode, owner and times with the original.
  long expected = std::stol(Sh("date -d '2001-02-03 04:05:06' +%s").output);
  EXPECT_EQ(result.output, "one\n../a/g\n2 640 1234 5678 " +
                               std::to_string(expected) + "\n");
}

TEST_F(ToolsTest, TruncateUpAndDown) {
  std::string f = Quote(P("t"));
  ASSERT_EQ(Sh("printf 0123456789 > " + f + " && truncate -s 4 " + f +
                " && truncate -s 8 " + f)
                .exit_code,
            0);
  CommandResult dump = Sh("od -An -c " + f + " | tr -s ' '");
  EXPECT_EQ(dump.output, " 0 1 2 3 \\0 \\0 \\0 \\0\n");
}

TEST_F(ToolsTest, DdWithSeekMakesSparseFile) {
  std::string f = Quote(P("sparse"));
  ASSERT_EQ(Sh("dd if=/dev/urandom of=" + f +
                " bs=4096 count=1 seek=2560 status=none")
                .exit_code,
            0);
  CommandResult st = Sh("stat -c '%s %b' " + f);
  long size = 0, blocks = 0;
  ASSERT_EQ(sscanf(st.output.c_str(), "%ld %ld", &size, &blocks), 2);
  EXPECT_EQ(size, 2561 * 4096);
  EXPECT_LT(blocks * 512, size / 4) << "hole should not be stored";
  CommandResult zeros = Sh("head -c 10485760 " + f + " | tr -d '\\000' | wc -c");
  EXPECT_EQ(zeros.output, "0\n");
}

TEST_F(ToolsTest, RmRfEmptiesTheTree) {
  ASSERT_EQ(Sh("cp -a /usr/include/linux " + Quote(P("linux"))).exit_code, 0);
  CommandResult rm = Sh("rm -rf " + Quote(P("linux")));
  EXPECT_EQ(rm.exit_code, 0) << rm.output;
  EXPECT_EQ(Sh("ls -A " + Quote(P(""))).output, "");
}

TEST_F(ToolsTest, GitCommitStatusLog) {
  if (Sh("command -v git").exit_code != 0) GTEST_SKIP() << "git not installed";
  std::string script =
      "set -e; cd " + Quote(P("")) +
      "; git init -q repo; cd repo; git config user.email t@example.com;"
      " git config user.name t; cp -a /usr/include/linux/*.h . ;"
      " git add -A; git commit -qm first; echo x >> if.h; git add if.h;"
      " git commit -qm second; git status --porcelain; git log --oneline | wc -l;"
      " git fsck --strict 2>&1 | grep -v '^dangling' || true";
  CommandResult result = Sh(script);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "2\n");
}

}  // namespace
}  // namespace cairn_it
