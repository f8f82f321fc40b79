#include "backend/volume/volume.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/fs_error.h"
#include "backend/services/blob_gc.h"
#include "backend/volume/ownership.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

class VolumeTest : public ::testing::Test {
 protected:
  std::string Vol() { return dir_.path() + "/vol"; }
  TempDir dir_;
};

TEST_F(VolumeTest, FormatCreatesConfigNamespaceAndData) {
  auto config = FormatVolume(Vol(), {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->volume_id.size(), 32u);
  EXPECT_TRUE(IsVolumeDir(Vol()));
  EXPECT_TRUE(fsys::is_directory(Vol() + "/namespace"));
  EXPECT_TRUE(fsys::is_directory(Vol() + "/data"));
  auto loaded = LoadVolumeConfig(Vol());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->volume_id, config->volume_id);
  EXPECT_EQ(loaded->format_version, kVolumeFormatVersion);
}

TEST_F(VolumeTest, FormatRefusesNonEmptyDirectoryAndChangesNothing) {
  fsys::create_directories(Vol());
  std::ofstream(Vol() + "/precious") << "keep";
  auto config = FormatVolume(Vol(), {});
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("--force"), std::string::npos);
  EXPECT_FALSE(IsVolumeDir(Vol()));
  EXPECT_TRUE(fsys::exists(Vol() + "/precious"));
  FormatOptions force;
  force.force = true;
  EXPECT_TRUE(FormatVolume(Vol(), force).ok());
}

TEST_F(VolumeTest, ForceFormatOverUnmountedVolumeMakesANewOne) {
  auto first = FormatVolume(Vol(), {});
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(FormatVolume(Vol(), {}).ok());
  FormatOptions force;
  force.force = true;
  auto second = FormatVolume(Vol(), force);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->volume_id, second->volume_id);
  auto volume = Volume::Open(Vol(), *LoadVolumeConfig(Vol()));
  EXPECT_TRUE(volume.ok()) << volume.status();
}

TEST_F(VolumeTest, ConfigErrorsNameTheKeyAndTheFix) {
  EXPECT_NE(LoadVolumeConfig(dir_.path()).status().message().find("cairn format"),
            std::string::npos);
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  std::string path = Vol() + "/cairn.toml";
  std::string original;
  {
    std::ifstream in(path);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::ofstream(path, std::ios::app) << "bogus_key = 3\n";
  auto unknown = LoadVolumeConfig(Vol());
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'bogus_key'"), std::string::npos);
  std::ofstream(path) << original << "max_dirty_bytes = \"lots\"\n";
  // A duplicate key is a TOML parse error; either way the load must fail.
  EXPECT_FALSE(LoadVolumeConfig(Vol()).ok());
  std::string small_journal = original;
  size_t key_at = small_journal.find("max_journal_bytes = ");
  small_journal.replace(key_at, small_journal.find('\n', key_at) - key_at, "max_journal_bytes = 1");
  std::ofstream(path) << small_journal;
  auto too_small = LoadVolumeConfig(Vol());
  ASSERT_FALSE(too_small.ok());
  EXPECT_NE(too_small.status().message().find("max_journal_bytes"), std::string::npos);
  EXPECT_NE(too_small.status().message().find("at least 268435456"), std::string::npos)
      << too_small.status();
  std::string newer = original;
  newer.replace(newer.find("format_version = 2"), 18, "format_version = 99");
  std::ofstream(path) << newer;
  auto too_new = LoadVolumeConfig(Vol());
  ASSERT_FALSE(too_new.ok());
  EXPECT_NE(too_new.status().message().find("upgrade cairn"), std::string::npos);
}

TEST_F(VolumeTest, MemoryBytesIsSharedOutAndAnExplicitCacheKeepsItsSize) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  const std::string path = Vol() + "/cairn.toml";
  std::string original;
  {
    std::ifstream in(path);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(Vol());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->memory_bytes, 256u << 20);
  EXPECT_FALSE(config->max_dirty_bytes.has_value());
  MemoryPlan plan = PlanMemory(*config);
  EXPECT_EQ(plan.dirty_bytes, 64u << 20);
  EXPECT_EQ(plan.read_cache_bytes, 64u << 20);
  EXPECT_EQ(plan.namespace_cache_bytes, 32u << 20);
  EXPECT_EQ(plan.namespace_write_bytes, 16u << 20);
  EXPECT_EQ(plan.working_bytes, 96u << 20);
  EXPECT_FALSE(plan.overdrawn);

  std::string edited = original;
  size_t at = edited.find("memory_bytes = ");
  ASSERT_NE(at, std::string::npos);
  edited.replace(at, edited.find('\n', at) - at, "memory_bytes = 1073741824");
  std::ofstream(path) << edited << "read_cache_bytes = 1048576\n";
  config = LoadVolumeConfig(Vol());
  ASSERT_TRUE(config.ok()) << config.status();
  plan = PlanMemory(*config);
  EXPECT_EQ(plan.dirty_bytes, 256u << 20);
  EXPECT_EQ(plan.read_cache_bytes, 1u << 20);
  EXPECT_EQ(plan.namespace_cache_bytes, 128u << 20);
  EXPECT_EQ(plan.working_bytes, (1024u - 256 - 1 - 128) << 20);
  // The written file keeps the override and the budget.
  absl::StatusOr<VolumeConfig> reread =
      ParseVolumeConfig(ConfigText(*config), Vol(), path);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->memory_bytes, 1u << 30);
  EXPECT_EQ(reread->read_cache_bytes, std::optional<uint64_t>(1u << 20));
  EXPECT_FALSE(reread->max_dirty_bytes.has_value());

  // Caches that leave the working memory less than its quarter are said.
  std::ofstream(path) << original << "max_dirty_bytes = 268435456\n";
  config = LoadVolumeConfig(Vol());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(PlanMemory(*config).overdrawn);

  std::ofstream(path) << edited.replace(edited.find("memory_bytes = "), 25,
                                        "memory_bytes = 1048576   ");
  absl::StatusOr<VolumeConfig> too_small = LoadVolumeConfig(Vol());
  ASSERT_FALSE(too_small.ok());
  EXPECT_NE(too_small.status().message().find("'memory_bytes': must be at least 67108864"),
            std::string::npos)
      << too_small.status();
}

TEST_F(VolumeTest, SweepDeletesOnlyBlobFilesWithoutARecord) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  VolumeConfig config = *LoadVolumeConfig(Vol());
  auto volume = Volume::Open(Vol(), config);
  ASSERT_TRUE(volume.ok()) << volume.status();
  NamespaceStore& ns = (*volume)->ns();
  BlobStore& blobs = (*volume)->blobs();
  NewNode node;
  node.mode = S_IFREG | 0644;
  InodeId file = ns.MakeNode(kRootInode, "f", node, {})->ino;
  BlobId committed = *ns.AllocateBlobIds(2);
  BlobId orphan = committed + 1;  // stored, then the daemon died before the commit
  BlobInfo info = *blobs.Put(committed, "kept");
  ASSERT_TRUE(blobs.Put(orphan, "lost").ok());
  Extent extent;
  extent.length = 4;
  extent.blob_id = committed;
  ASSERT_TRUE(ns.CommitWrite(file, {NewBlob{committed, info.length, info.crc32c}}, {extent}).ok());
  absl::StatusOr<uint64_t> swept = SweepOrphanBlobs(ns, blobs);
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_EQ(*swept, 1u);
  EXPECT_TRUE(blobs.Read(committed, 0, 4).ok());
  EXPECT_FALSE(blobs.Read(orphan, 0, 4).ok());
  EXPECT_EQ(*blobs.ListIds(0), std::vector<BlobId>{committed});
  // A blob stored under an id never allocated is not judged.
  ASSERT_TRUE(blobs.Put(committed + 1000, "future").ok());
  EXPECT_EQ(*SweepOrphanBlobs(ns, blobs), 0u);
  EXPECT_TRUE(blobs.Read(committed + 1000, 0, 6).ok());
}

// Every file under `dir` with its bytes (the lock's record aside).
std::map<std::string, std::string> FilesUnder(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fsys::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename() == "lock") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    files[entry.path()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

TEST_F(VolumeTest, AReadOnlyOpenReadsEverythingAndChangesNoFile) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  VolumeConfig config = *LoadVolumeConfig(Vol());
  const std::string data = "the data of a file stored as one blob";
  BlobId id = 0;
  {
    auto volume = Volume::Open(Vol(), config);
    ASSERT_TRUE(volume.ok()) << volume.status();
    id = WriteFileAsOneBlob((*volume)->ns(), (*volume)->blobs(), "f", data);
  }
  // A damaged disk marker: a read-write open writes it again from the
  // shards; a read-only one must not.
  const std::string marker = Vol() + "/data/cairn-disk";
  std::string text;
  {
    std::ifstream in(marker, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  text[10] ^= 1;
  std::ofstream(marker, std::ios::binary | std::ios::trunc) << text;
  const std::map<std::string, std::string> before = FilesUnder(Vol());

  VolumeOpenOptions read_only;
  read_only.read_only = true;
  auto volume = Volume::Open(Vol(), config, Io(), read_only);
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_TRUE((*volume)->read_only());
  absl::StatusOr<InodeAttr> file = (*volume)->ns().Lookup(kRootInode, "f");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::string> read = (*volume)->blobs().Read(id, 0, data.size());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  absl::StatusOr<BlobInfo> put = (*volume)->blobs().Put(id + 1, "new");
  EXPECT_EQ(GetFsErrorKind(put.status()), FsErrorKind::kReadOnly) << put.status();
  EXPECT_FALSE((*volume)->ns().SetVolumeMeta("k", "v").ok());
  volume->reset();
  EXPECT_EQ(FilesUnder(Vol()), before) << "a read-only open changed a file";
}

TEST_F(VolumeTest, SecondOpenIsRefusedAndMountRecordNamesTheHolder) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  VolumeConfig config = *LoadVolumeConfig(Vol());
  EXPECT_FALSE(ReadMountRecord(Vol())->mounted);
  auto first = Volume::Open(Vol(), config);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->RecordMount(4242, "/mnt/x").ok());
  auto second = Volume::Open(Vol(), config);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("4242"), std::string::npos);
  EXPECT_NE(second.status().message().find("cairn umount /mnt/x"), std::string::npos);
  MountRecord record = *ReadMountRecord(Vol());
  EXPECT_TRUE(record.mounted);
  EXPECT_EQ(record.pid, 4242);
  EXPECT_EQ(record.mountpoint, "/mnt/x");
  FormatOptions force;
  force.force = true;
  EXPECT_FALSE(FormatVolume(Vol(), force).ok()) << "formatted a volume in use";
  first->reset();
  EXPECT_FALSE(ReadMountRecord(Vol())->mounted);
}

TEST_F(VolumeTest, AVolumeServedOverS3OnlyIsHeldAndNamedSo) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  VolumeConfig config = *LoadVolumeConfig(Vol());
  auto first = Volume::Open(Vol(), config);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE((*first)->RecordServingS3Only(4343, "http://127.0.0.1:9000").ok());
  MountRecord record = *ReadMountRecord(Vol());
  EXPECT_TRUE(record.mounted);
  EXPECT_EQ(record.pid, 4343);
  EXPECT_EQ(record.mountpoint, "");
  EXPECT_EQ(record.s3_only_url, "http://127.0.0.1:9000");
  auto second = Volume::Open(Vol(), config);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("cairn serve s3"), std::string::npos)
      << second.status();
  EXPECT_NE(second.status().message().find("cairn umount " + Vol()), std::string::npos)
      << second.status();
  // A mount recorded later replaces the record whole.
  ASSERT_TRUE((*first)->RecordMount(4343, "/mnt/y").ok());
  record = *ReadMountRecord(Vol());
  EXPECT_EQ(record.mountpoint, "/mnt/y");
  EXPECT_EQ(record.s3_only_url, "");
}

TEST_F(VolumeTest, NamespaceOfAnotherVolumeIsRefused) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  std::string other = dir_.path() + "/other";
  ASSERT_TRUE(FormatVolume(other, {}).ok());
  fsys::remove_all(Vol() + "/namespace");
  fsys::copy(other + "/namespace", Vol() + "/namespace", fsys::copy_options::recursive);
  auto volume = Volume::Open(Vol(), *LoadVolumeConfig(Vol()));
  ASSERT_FALSE(volume.ok());
  EXPECT_NE(volume.status().message().find("belongs to volume"), std::string::npos);
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

// What a volume keeps in its directories and disks: every directory 0700,
// every file 0600, whatever was asked of the umask.
std::vector<std::string> NotOwnerOnly(const std::string& root) {
  std::vector<std::string> open;
  for (const auto& entry : fsys::recursive_directory_iterator(root)) {
    if (entry.is_symlink() || entry.is_socket()) continue;
    const auto perms = static_cast<unsigned>(entry.symlink_status().permissions());
    const unsigned wanted = entry.is_directory() ? 0700 : 0600;
    if ((perms & 0777) != wanted) {
      open.push_back(absl::StrFormat("%s %o", entry.path().string(), perms & 0777));
    }
  }
  return open;
}

class OwnershipTest : public ::testing::Test {
 protected:
  void SetUp() override { old_umask_ = umask(022); }
  void TearDown() override { umask(old_umask_); }
  std::string Vol() { return dir_.path() + "/vol"; }
  std::string Disk(int i) { return absl::StrCat(dir_.path(), "/disk", i); }
  TempDir dir_;
  mode_t old_umask_ = 0;
};

TEST_F(OwnershipTest, FormatAndUseLeaveOnlyOwnerOnlyFilesWhateverTheUmask) {
  // A disk made by someone else with the usual modes, as a fresh
  // filesystem's root is: format takes it over.
  fsys::create_directories(Disk(0));
  fsys::permissions(Disk(0), fsys::perms(0755));
  FormatOptions format;
  format.disks = {Disk(0), Disk(1), Disk(2)};
  absl::StatusOr<VolumeConfig> config = FormatVolume(Vol(), format);
  ASSERT_TRUE(config.ok()) << config.status();
  {
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(Vol(), *config);
    ASSERT_TRUE(volume.ok()) << volume.status();
    WriteFileAsOneBlob((*volume)->ns(), (*volume)->blobs(), "f", std::string(300000, 'x'));
    ASSERT_TRUE((*volume)->ns().Sync().ok());
  }
  for (const std::string& root : {Vol(), Disk(0), Disk(1), Disk(2)}) {
    EXPECT_EQ(NotOwnerOnly(root), std::vector<std::string>()) << root;
    EXPECT_EQ(static_cast<unsigned>(fsys::status(root).permissions()) & 0777, 0700u) << root;
  }
}

TEST_F(OwnershipTest, OpenRefusesABackingStoreOthersCanReadNamingPathAndFix) {
  ASSERT_TRUE(FormatVolume(Vol(), {}).ok());
  fsys::permissions(Vol(), fsys::perms(0755));
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(Vol(), *LoadVolumeConfig(Vol()));
  ASSERT_FALSE(volume.ok());
  EXPECT_EQ(GetFsErrorKind(volume.status()), FsErrorKind::kAccessDenied);
  EXPECT_THAT(std::string(volume.status().message()),
              ::testing::AllOf(::testing::HasSubstr(Vol() + ": other users may read"),
                               ::testing::HasSubstr("chmod 700 " + Vol()),
                               ::testing::HasSubstr("cairn fsck --repair " + Vol())));
}

TEST_F(OwnershipTest, OpenRefusesWhenADirectoryAboveIsWritableByOthers) {
  const std::string parent = dir_.path() + "/shared";
  fsys::create_directories(parent);
  const std::string vol = parent + "/vol";
  ASSERT_TRUE(FormatVolume(vol, {}).ok());
  fsys::permissions(parent, fsys::perms(0777));  // no sticky bit: anyone may rename vol
  absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(vol, *LoadVolumeConfig(vol));
  ASSERT_FALSE(volume.ok());
  EXPECT_THAT(std::string(volume.status().message()),
              ::testing::HasSubstr(parent + ": other users may write it"));
  // Format refuses there too, before writing anything.
  const std::string other = parent + "/vol2";
  EXPECT_FALSE(FormatVolume(other, {}).ok());
  EXPECT_FALSE(fsys::exists(other));
  // /tmp is writable by all but sticky: fine.
  fsys::permissions(parent, fsys::perms(01777));
  EXPECT_TRUE(Volume::Open(vol, *LoadVolumeConfig(vol)).ok());
}

TEST_F(OwnershipTest, MakeVolumeOwnerOnlyFixesAVolumeAnOlderCairnMade) {
  FormatOptions format;
  format.disks = {Disk(0), Disk(1)};
  absl::StatusOr<VolumeConfig> config = FormatVolume(Vol(), format);
  ASSERT_TRUE(config.ok());
  // As an older cairn left it: directories 0755, files 0644.
  for (const std::string& root : {Vol(), Disk(0), Disk(1)}) {
    fsys::permissions(root, fsys::perms(0755));
    for (const auto& entry : fsys::recursive_directory_iterator(root)) {
      fsys::permissions(entry.path(), fsys::perms(entry.is_directory() ? 0755 : 0644));
    }
  }
  ASSERT_FALSE(Volume::Open(Vol(), *config).ok());
  absl::StatusOr<uint64_t> changed = MakeVolumeOwnerOnly(Env::Default(), Vol(), *config);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_GT(*changed, 3u);
  for (const std::string& root : {Vol(), Disk(0), Disk(1)}) {
    EXPECT_EQ(NotOwnerOnly(root), std::vector<std::string>()) << root;
  }
  EXPECT_TRUE(Volume::Open(Vol(), *config).ok());
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

class FormatDiskTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return dir_.path() + "/" + name; }
  // Nothing of a refused format is left behind.
  void ExpectNothingMade(const std::string& vol) {
    EXPECT_FALSE(fsys::exists(vol)) << vol << " was left behind";
  }
  TempDir dir_;
};

TEST_F(FormatDiskTest, ADiskThatIsAFileIsRefusedBeforeAnythingIsWritten) {
  std::ofstream(Path("file")) << "not a directory";
  FormatOptions format;
  format.disks = {Path("d0"), Path("file")};
  absl::StatusOr<VolumeConfig> config = FormatVolume(Path("vol"), format);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), ::testing::HasSubstr("is not a directory"));
  ExpectNothingMade(Path("vol"));
  EXPECT_FALSE(fsys::exists(Path("d0")));
  // And the next format of the same directory is not refused as "not empty".
  format.disks = {Path("d0")};
  EXPECT_TRUE(FormatVolume(Path("vol"), format).ok());
}

TEST_F(FormatDiskTest, TheVolumeDirectoryOrADiskInsideAnotherIsRefused) {
  FormatOptions format;
  format.disks = {Path("vol")};
  EXPECT_FALSE(FormatVolume(Path("vol"), format).ok());
  ExpectNothingMade(Path("vol"));
  format.disks = {Path("d0"), Path("d0/inner")};
  absl::StatusOr<VolumeConfig> nested = FormatVolume(Path("vol"), format);
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(std::string(nested.status().message()), ::testing::HasSubstr("is inside disk"));
  format.disks = {Path("outer")};
  EXPECT_FALSE(FormatVolume(Path("outer/vol"), format).ok()) << "the volume inside a disk";
  ExpectNothingMade(Path("vol"));
}

TEST_F(FormatDiskTest, ADiskOfAVolumeInUseIsNeverErasedEvenWithForce) {
  FormatOptions first;
  first.disks = {Path("d0"), Path("d1")};
  absl::StatusOr<VolumeConfig> a = FormatVolume(Path("a"), first);
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::unique_ptr<Volume>> open = Volume::Open(Path("a"), *a);
  ASSERT_TRUE(open.ok()) << open.status();
  WriteFileAsOneBlob((*open)->ns(), (*open)->blobs(), "f", std::string(200000, 'a'));
  FormatOptions second = first;
  second.force = true;
  absl::StatusOr<VolumeConfig> b = FormatVolume(Path("b"), second);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(std::string(b.status().message()),
              ::testing::AllOf(::testing::HasSubstr("a running daemon has open"),
                               ::testing::HasSubstr(a->volume_id)));
  ExpectNothingMade(Path("b"));
  // Volume a still has its data.
  absl::StatusOr<InodeAttr> f = (*open)->ns().Lookup(kRootInode, "f");
  ASSERT_TRUE(f.ok());
  absl::StatusOr<std::vector<Extent>> extents = (*open)->ns().GetExtents(f->ino, 0, 200000);
  ASSERT_TRUE(extents.ok());
  EXPECT_TRUE((*open)->blobs().Read((*extents)[0].blob_id, 0, 100).ok());
  // Without --force a disk of another volume is refused, naming it.
  open->reset();
  absl::StatusOr<VolumeConfig> refused = FormatVolume(Path("b"), first);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("is disk 0 of volume " + a->volume_id));
  // Closed, and with --force, it is erased for the new volume.
  EXPECT_TRUE(FormatVolume(Path("b"), second).ok());
}

}  // namespace
}  // namespace cairn
