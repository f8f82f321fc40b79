// Disaster recovery through real mounts: a volume over three disk
// directories with a [replica] on a private s3rver (no backups of its own:
// backup_interval_seconds = 0). The tests take backups with `cairn backup`,
// lose the volume and its disks altogether, and rebuild it with
// `cairn restore` from the bucket alone: everything the backup saw comes
// back (names, types, modes, owners, times, hard links, symlinks, xattrs,
// holes, data), an interrupted or refused restore never yields a mountable
// half-volume, `cairn restore --verify` notices a blob missing from the
// bucket, and an interrupted backup is never offered as usable.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/support/s3rver.h"

namespace cairn_it {
namespace {

// Everything about a tree that a restore must bring back; ctime and atime
// left out (a restore may not keep them), inode numbers only as groups of
// hard links.
struct TreeManifest {
  std::string entries;     // path, type, mode, uid, gid, size, nlink, mtime, link target
  std::string hardlinks;   // one line per inode: its paths, sorted
  std::string checksums;   // sha256sum of every regular file
  std::string xattrs;      // getfattr -d -m - -e hex of everything
  std::string sparse_kb;   // du -k of the sparse file
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

class DisasterRecoveryTest : public MountTest {
 protected:
  int DiskCount() override { return 3; }

  void SetUp() override {
    if (NativeMode()) GTEST_SKIP() << "needs cairn";
    std::string why;
    server_ = cairn::S3rver::Start("replica", &why);
    if (!server_) GTEST_SKIP() << why;
    MountTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(AddReplicaAndRemount(server_->endpoint(), {"backup_interval_seconds = 0"}));
  }

  // `--from ... --endpoint ...` naming the test's replica.
  std::string From() const {
    return "--from s3://replica/cairn/ --endpoint " + Quote(server_->endpoint());
  }
  // The cairn binary with the bucket's credentials in its environment, as
  // on a machine that has nothing but the bucket.
  CommandResult CairnS3(const std::string& args, int timeout_seconds = 120) {
    return Run(std::string("env AWS_ACCESS_KEY_ID=") + cairn::S3rver::kAccessKey +
                   " AWS_SECRET_ACCESS_KEY=" + cairn::S3rver::kSecretKey + " " +
                   Quote(CairnBinary()) + " " + args,
               timeout_seconds);
  }

  // Until the replicator has nothing queued (the backup waits for it too,
  // but a test that starts from a replica caught up is easier to read).
  void WaitReplicated() {
    bool caught_up = WaitFor(
        [&] {
          CommandResult status = Cairn("status --json " + Quote(mount_dir_), 30);
          return status.exit_code == 0 &&
                 status.output.find("\"queued_blobs\": 0") != std::string::npos;
        },
        60);
    ASSERT_TRUE(caught_up) << Brief(Cairn("status --json " + Quote(mount_dir_), 30));
  }

  // `cairn backup MOUNTPOINT`; the new backup's id into `id`.
  void TakeBackup(std::string* id) {
    CommandResult backup = Cairn("backup " + Quote(mount_dir_), 180);
    ASSERT_EQ(backup.exit_code, 0) << Brief(backup);
    std::string found;
    for (const std::string& line : Lines(backup.output)) {
      if (line.rfind("backup ", 0) == 0) {
        size_t colon = line.find(':');
        ASSERT_NE(colon, std::string::npos) << Brief(backup);
        found = line.substr(7, colon - 7);
        break;
      }
    }
    ASSERT_FALSE(found.empty()) << "no line starting with \"backup \": " << Brief(backup);
    if (id != nullptr) *id = found;
  }

  // The manifest of the tree under `root`.
  void Manifest(const std::string& root, TreeManifest* out) {
    const std::string cd = "cd " + Quote(root) + " && export LC_ALL=C && ";
    CommandResult entries = Run(
        cd + "find . -printf '%p\\t%y\\t%m\\t%U\\t%G\\t%s\\t%n\\t%T@\\t%l\\n' | sort", 120);
    ASSERT_EQ(entries.exit_code, 0) << Brief(entries);
    out->entries = entries.output;
    CommandResult links = Run(
        cd + "find . -printf '%p\\n' | sort | while IFS= read -r p; do "
             "printf '%s\\t%s\\n' \"$(stat -c %i -- \"$p\")\" \"$p\"; done | "
             "awk -F'\\t' '{ g[$1] = g[$1] \"\\t\" $2 } END { for (i in g) print substr(g[i], 2) }' "
             "| sort",
        120);
    ASSERT_EQ(links.exit_code, 0) << Brief(links);
    out->hardlinks = links.output;
    CommandResult sums = Run(cd + "find . -type f -print0 | sort -z | xargs -0 sha256sum", 120);
    ASSERT_EQ(sums.exit_code, 0) << Brief(sums);
    out->checksums = sums.output;
    CommandResult xattrs =
        Run(cd + "find . -print0 | sort -z | xargs -0 getfattr -h -d -m - -e hex", 120);
    ASSERT_EQ(xattrs.exit_code, 0) << Brief(xattrs);
    out->xattrs = xattrs.output;
    CommandResult du = Run(cd + "du -k sparse | cut -f1", 30);
    ASSERT_EQ(du.exit_code, 0) << Brief(du);
    out->sparse_kb = du.output;
  }

  // `cairn restore` of the newest backup (or `extra` options) into
  // work_dir_/NAME with disks work_dir_/NAME-diskN.
  CommandResult Restore(const std::string& name, const std::string& extra = "") {
    std::string disks;
    for (int i = 0; i < DiskCount(); ++i) {
      disks += " --disk " + Quote(work_dir_ + "/" + name + "-disk" + std::to_string(i));
    }
    return CairnS3("restore " + From() + " " + extra + " " + Quote(work_dir_ + "/" + name) +
                       disks,
                   180);
  }

  // Unmounts the test volume and mounts the volume in `dir` in its place
  // (the fixture then unmounts that one, whatever happens).
  void MountInstead(const std::string& dir) {
    if (IsMounted(mount_dir_)) {
      ASSERT_NO_FATAL_FAILURE(Unmount());
    }
    volume_dir_ = dir;
    ASSERT_NO_FATAL_FAILURE(Mount());
  }

  // The files of the s3rver object whose data is `object_file` (NAME._S3rver_object and the
  // metadata beside it): removing them deletes the object.
  CommandResult DeleteObjectFiles(const std::string& object_file) {
    const std::string suffix = "._S3rver_object";
    std::string stem = object_file.substr(0, object_file.size() - suffix.size());
    return Run("rm -f -- " + Quote(stem) + "._S3rver_* && ! ls -d " + Quote(stem) +
               "._S3rver_* 2>/dev/null");
  }

  std::unique_ptr<cairn::S3rver> server_;
};

TEST_F(DisasterRecoveryTest, RestoredVolumeShowsEverythingAsBackedUp) {
  // Contents first, then owners, then modes (chown clears set-uid), then
  // xattrs, then times (deepest first, so no later change moves them).
  CommandResult made = Run(
      "set -e; cd " + QP("") + "\n"
      "mkdir -p top/a/b/c other 'with space' shared private\n"
      ": > empty\n"
      "printf 'hi\\n' > small\n"
      "head -c 300000 /dev/urandom > top/medium\n"
      "head -c 5000000 /dev/urandom > top/a/big\n"
      "head -c 70000 /dev/urandom > 'with space/file one'\n"
      "printf 'linked content\\n' > top/a/b/linked\n"
      "ln top/a/b/linked top/a/b/linked2\n"
      "ln top/a/b/linked other/linked3\n"
      "ln -s ../small top/rel-link\n"
      "ln -s /etc/passwd top/abs-link\n"
      "ln -s does/not/exist other/dangling\n"
      "truncate -s 20M sparse\n"
      "printf 'in the middle' | dd of=sparse bs=1 seek=10485760 conv=notrunc status=none\n"
      "mkfifo other/fifo\n"
      "chown 1234:5678 top/medium top/a/big other\n"
      "chown -h 1234:5678 top/rel-link\n"
      "chmod 0600 small\n"
      "chmod 0755 top/medium\n"
      "chmod 04755 top/a/big\n"
      "chmod 01777 shared\n"
      "chmod 0700 private\n"
      "chmod 0640 other/fifo\n"
      "setfattr -n user.comment -v 'some text' top/medium\n"
      "setfattr -n user.binary -v 0x00ff7f800a00 top/medium\n"
      "setfattr -n user.empty top/medium\n"
      "setfattr -n user.dir -v 'a directory' top/a\n"
      "setfattr -n user.bin -v 0xdeadbeef00 top/a\n"
      "setfattr -n user.linked -v shared-by-links top/a/b/linked\n"
      "n=0; find . -mindepth 1 -depth -print0 | while IFS= read -r -d '' p; do\n"
      "  n=$((n + 1)); touch -h -d \"2003-04-05 06:07:$((n % 60)).$((100000000 + n * 7654321))\" \"$p\"\n"
      "done\n");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(WaitReplicated());
  std::string backup_id;
  ASSERT_NO_FATAL_FAILURE(TakeBackup(&backup_id));

  TreeManifest before;
  ASSERT_NO_FATAL_FAILURE(Manifest(mount_dir_, &before));
  // The tree is what the test means it to be (else the comparison proves little).
  EXPECT_NE(before.entries.find("./top/a/big\tf\t4755\t1234\t5678\t5000000\t1\t"),
            std::string::npos) << before.entries;
  EXPECT_NE(before.entries.find("./shared\td\t1777\t"), std::string::npos) << before.entries;
  EXPECT_NE(before.entries.find("./other/fifo\tp\t640\t"), std::string::npos) << before.entries;
  size_t sparse = before.entries.find("./sparse\tf\t");
  ASSERT_NE(sparse, std::string::npos) << before.entries;
  EXPECT_NE(before.entries.substr(sparse, before.entries.find('\n', sparse) - sparse)
                .find("\t20971520\t1\t"),
            std::string::npos)
      << before.entries;
  EXPECT_NE(before.entries.find("\t../small\n"), std::string::npos) << before.entries;
  EXPECT_NE(before.entries.find("\tdoes/not/exist\n"), std::string::npos) << before.entries;
  EXPECT_NE(before.hardlinks.find("./other/linked3\t./top/a/b/linked\t./top/a/b/linked2\n"),
            std::string::npos) << before.hardlinks;
  EXPECT_NE(before.xattrs.find("user.binary=0x00ff7f800a00"), std::string::npos) << before.xattrs;
  EXPECT_NE(before.xattrs.find("user.bin=0xdeadbeef00"), std::string::npos) << before.xattrs;
  EXPECT_EQ(Count(before.checksums, "\n"), 9) << before.checksums;
  EXPECT_LT(std::atoi(before.sparse_kb.c_str()), 1024) << "the sparse file holds its holes";

  // The machine is lost: the volume and every disk.
  ASSERT_NO_FATAL_FAILURE(Unmount());
  CommandResult lost = Run("rm -rf " + Quote(volume_dir_) + " " + Quote(work_dir_) + "/disk*");
  ASSERT_EQ(lost.exit_code, 0) << Brief(lost);
  ASSERT_EQ(Run("ls -d " + Quote(work_dir_) + "/disk* " + Quote(volume_dir_)).exit_code, 2)
      << "the old volume and its disks are gone";

  CommandResult list = CairnS3("backup list " + From(), 60);
  ASSERT_EQ(list.exit_code, 0) << Brief(list);
  std::vector<std::string> listed = Lines(list.output);
  ASSERT_EQ(listed.size(), 2u) << Brief(list);
  EXPECT_EQ(listed[0].rfind("BACKUP", 0), 0u) << Brief(list);
  EXPECT_EQ(listed[1].rfind(backup_id + " ", 0), 0u) << Brief(list);

  CommandResult restore = Restore("restored");
  ASSERT_EQ(restore.exit_code, 0) << Brief(restore);
  EXPECT_NE(restore.output.find("restored backup " + backup_id), std::string::npos)
      << Brief(restore);
  EXPECT_GT(std::atoi(Run("find " + Quote(work_dir_) + "/restored-disk* -type f | wc -l")
                          .output.c_str()),
            0)
      << "the data is on the new disks";

  ASSERT_NO_FATAL_FAILURE(MountInstead(work_dir_ + "/restored"));
  EXPECT_EQ(last_mount_output_.find("warning"), std::string::npos) << last_mount_output_;
  TreeManifest after;
  ASSERT_NO_FATAL_FAILURE(Manifest(mount_dir_, &after));
  EXPECT_EQ(after.entries, before.entries);
  EXPECT_EQ(after.hardlinks, before.hardlinks);
  EXPECT_EQ(after.checksums, before.checksums);
  EXPECT_EQ(after.xattrs, before.xattrs);
  EXPECT_EQ(after.sparse_kb, before.sparse_kb);
  EXPECT_LT(std::atoi(after.sparse_kb.c_str()), 1024) << "the restore keeps the holes";
}

TEST_F(DisasterRecoveryTest, RestoreRefusesANonEmptyDirectoryAndAHalfRestoredOneCannotBeMounted) {
  CommandResult made = Run("cd " + QP("") + " && mkdir d && head -c 600000 /dev/urandom > d/one "
                           "&& head -c 2000000 /dev/urandom > two && echo three > d/three && "
                           "sha256sum d/one two d/three > " + Quote(work_dir_ + "/sums"));
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  std::string backup_id;
  ASSERT_NO_FATAL_FAILURE(TakeBackup(&backup_id));

  // A directory with something in it is not a place to restore into.
  CommandResult prepared =
      Run("mkdir " + Quote(work_dir_ + "/busy") + " && echo precious > " +
          Quote(work_dir_ + "/busy/keep"));
  ASSERT_EQ(prepared.exit_code, 0) << Brief(prepared);
  CommandResult refused = Restore("busy");
  EXPECT_EQ(refused.exit_code, 1) << Brief(refused);
  EXPECT_NE(refused.output.find("not empty"), std::string::npos) << Brief(refused);
  CommandResult busy = Run("cd " + Quote(work_dir_ + "/busy") + " && ls -A && cat keep");
  EXPECT_EQ(busy.output, "keep\nprecious\n") << "the directory is left as it was";

  // A restore that stopped before its end: its marker makes it unmountable.
  CommandResult restore = Restore("restored");
  ASSERT_EQ(restore.exit_code, 0) << Brief(restore);
  const std::string marker = work_dir_ + "/restored/restoring";
  ASSERT_NE(Run("test -e " + Quote(marker)).exit_code, 0) << "a finished restore has no marker";
  CommandResult status = Cairn("status --json " + Quote(volume_dir_), 30);
  std::optional<std::string> volume_id = JsonField(status.output, "volume_id");
  ASSERT_TRUE(volume_id.has_value()) << Brief(status);
  ASSERT_NE(restore.output.find(" of volume " + *volume_id + " "), std::string::npos)
      << Brief(restore);
  CommandResult half = Run("printf 'volume %s backup %s\\n' " + Quote(*volume_id) + " " +
                           Quote(backup_id) + " > " + Quote(marker));
  ASSERT_EQ(half.exit_code, 0) << Brief(half);
  const std::string other_mount = work_dir_ + "/mnt2";
  ASSERT_EQ(Run("mkdir " + Quote(other_mount)).exit_code, 0);
  CommandResult mount =
      Cairn("mount " + Quote(work_dir_ + "/restored") + " " + Quote(other_mount), 60);
  EXPECT_NE(mount.exit_code, 0) << Brief(mount);
  EXPECT_NE(mount.output.find("restore"), std::string::npos) << Brief(mount);
  EXPECT_FALSE(IsMounted(other_mount)) << "a half-restored volume was mounted";

  // The same command again finishes it, keeping the blobs already there.
  CommandResult resumed = Restore("restored");
  ASSERT_EQ(resumed.exit_code, 0) << Brief(resumed);
  EXPECT_NE(resumed.output.find("already stored"), std::string::npos) << Brief(resumed);
  EXPECT_NE(Run("test -e " + Quote(marker)).exit_code, 0) << "the marker is gone";
  ASSERT_NO_FATAL_FAILURE(MountInstead(work_dir_ + "/restored"));
  CommandResult check = Run("cd " + QP("") + " && sha256sum -c " + Quote(work_dir_ + "/sums"));
  EXPECT_EQ(check.exit_code, 0) << Brief(check);
}

TEST_F(DisasterRecoveryTest, VerifyReportsAMissingBlob) {
  CommandResult made = Run("cd " + QP("") + " && for i in 1 2 3; do head -c 700000 "
                           "/dev/urandom > f$i; done");
  ASSERT_EQ(made.exit_code, 0) << Brief(made);
  ASSERT_NO_FATAL_FAILURE(WaitReplicated());
  ASSERT_NO_FATAL_FAILURE(TakeBackup(nullptr));

  CommandResult verify = CairnS3("restore --verify " + From(), 120);
  ASSERT_EQ(verify.exit_code, 0) << Brief(verify);
  EXPECT_NE(verify.output.find("3 blobs"), std::string::npos) << Brief(verify);
  EXPECT_NE(verify.output.find("it can be restored"), std::string::npos) << Brief(verify);

  CommandResult blobs = Run("find " + Quote(server_->dir()) +
                            " -type f -path '*/blobs/*' -name '*._S3rver_object' | sort");
  ASSERT_EQ(blobs.exit_code, 0) << Brief(blobs);
  std::vector<std::string> objects = Lines(blobs.output);
  ASSERT_EQ(objects.size(), 3u) << Brief(blobs);
  CommandResult deleted = DeleteObjectFiles(objects[1]);
  ASSERT_EQ(deleted.exit_code, 0) << Brief(deleted);

  CommandResult again = CairnS3("restore --verify " + From(), 120);
  EXPECT_EQ(again.exit_code, 1) << Brief(again);
  EXPECT_NE(again.output.find("missing"), std::string::npos) << Brief(again);
  EXPECT_NE(again.output.find("1 missing"), std::string::npos) << Brief(again);
  EXPECT_EQ(again.output.find("it can be restored"), std::string::npos) << Brief(again);

  // Nor does a restore pass it off as whole: it fails and leaves nothing
  // that mounts.
  CommandResult restore = Restore("restored");
  EXPECT_EQ(restore.exit_code, 1) << Brief(restore);
  EXPECT_EQ(Run("test -e " + Quote(work_dir_ + "/restored/restoring")).exit_code, 0)
      << "a failed restore keeps its marker";
}

TEST_F(DisasterRecoveryTest, BackupListShowsOnlyCompleteBackups) {
  ASSERT_EQ(Run("head -c 400000 /dev/urandom > " + QP("first")).exit_code, 0);
  std::string first_id, second_id;
  ASSERT_NO_FATAL_FAILURE(TakeBackup(&first_id));
  // Within the same second too (ids carry microseconds).
  ASSERT_EQ(Run("head -c 400000 /dev/urandom > " + QP("second")).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(TakeBackup(&second_id));
  ASSERT_LT(first_id, second_id) << "backup ids sort oldest first";

  CommandResult list = Cairn("backup list " + Quote(mount_dir_), 60);
  ASSERT_EQ(list.exit_code, 0) << Brief(list);
  std::vector<std::string> lines = Lines(list.output);
  ASSERT_EQ(lines.size(), 3u) << Brief(list);
  EXPECT_EQ(lines[0].rfind("BACKUP", 0), 0u) << Brief(list);
  EXPECT_EQ(lines[1].rfind(first_id + " ", 0), 0u) << Brief(list);
  EXPECT_EQ(lines[2].rfind(second_id + " ", 0), 0u) << Brief(list);

  CommandResult json = Cairn("backup list --json " + Quote(mount_dir_), 60);
  ASSERT_EQ(json.exit_code, 0) << Brief(json);
  EXPECT_EQ(json.output.front(), '[') << Brief(json);
  EXPECT_EQ(json.output.substr(json.output.find_last_not_of('\n'), 1), "]") << Brief(json);
  EXPECT_EQ(Count(json.output, "\"backup_id\""), 2) << Brief(json);

  // The newest one loses its manifest, as a backup interrupted before its
  // last upload would have none.
  CommandResult manifest = Run("find " + Quote(server_->dir()) + " -type f -path " +
                               Quote("*/backups/" + second_id + "/manifest._S3rver_object"));
  ASSERT_EQ(manifest.exit_code, 0) << Brief(manifest);
  std::vector<std::string> found = Lines(manifest.output);
  ASSERT_EQ(found.size(), 1u) << Brief(manifest);
  CommandResult deleted = DeleteObjectFiles(found[0]);
  ASSERT_EQ(deleted.exit_code, 0) << Brief(deleted);

  list = Cairn("backup list " + Quote(mount_dir_), 60);
  ASSERT_EQ(list.exit_code, 0) << Brief(list);
  int backups = 0;
  for (const std::string& line : Lines(list.output)) {
    if (line.rfind(first_id, 0) == 0) backups++;
    EXPECT_EQ(line.find(second_id), std::string::npos) << Brief(list);
  }
  EXPECT_EQ(backups, 1) << Brief(list);
  EXPECT_NE(list.output.find("interrupted"), std::string::npos) << Brief(list);
  json = Cairn("backup list --json " + Quote(mount_dir_), 60);
  ASSERT_EQ(json.exit_code, 0) << Brief(json);
  EXPECT_EQ(Count(json.output, "\"backup_id\""), 1) << Brief(json);

  CommandResult restore = Restore("restored", "--backup " + Quote(second_id));
  EXPECT_EQ(restore.exit_code, 1) << Brief(restore);
  EXPECT_TRUE(restore.output.find("interrupted") != std::string::npos ||
              restore.output.find("not usable") != std::string::npos ||
              restore.output.find("does not exist") != std::string::npos)
      << Brief(restore);
  EXPECT_NE(Run("test -e " + Quote(work_dir_ + "/restored")).exit_code, 0)
      << "a refused restore creates nothing";
  // The newest usable one is the first: a restore without --backup takes it.
  CommandResult newest = Restore("newest");
  EXPECT_EQ(newest.exit_code, 0) << Brief(newest);
  EXPECT_NE(newest.output.find("restored backup " + first_id), std::string::npos)
      << Brief(newest);
}

}  // namespace
}  // namespace cairn_it
