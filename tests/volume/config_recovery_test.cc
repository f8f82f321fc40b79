#include "backend/volume/config_recovery.h"

#include <filesystem>
#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "backend/volume/volume.h"
#include "gtest/gtest.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

class ConfigRecoveryTest : public ::testing::Test {
 protected:
  std::string Vol() { return dir_.path() + "/vol"; }
  std::string Config() { return Vol() + "/cairn.toml"; }
  std::string Disk(int i) { return absl::StrCat(dir_.path(), "/disk", i); }

  // A three-disk ec:2+1 volume holding one blob, opened once (as a mount
  // does) so the namespace keeps its copy of cairn.toml.
  VolumeConfig MakeVolume(const std::function<void(VolumeConfig*)>& edit = nullptr) {
    FormatOptions options;
    options.disks = {Disk(0), Disk(1), Disk(2)};
    auto made = FormatVolume(Vol(), options);
    EXPECT_TRUE(made.ok()) << made.status();
    if (edit) {
      edit(&*made);
      EXPECT_TRUE(SaveVolumeConfig(Vol(), *made).ok());
    }
    auto config = LoadVolumeConfig(Vol());
    EXPECT_TRUE(config.ok()) << config.status();
    auto volume = Volume::Open(Vol(), *config);
    EXPECT_TRUE(volume.ok()) << volume.status();
    if (volume.ok()) WriteFileAsOneBlob((*volume)->ns(), (*volume)->blobs(), "f", "data");
    return *config;
  }

  TempDir dir_;
};

TEST_F(ConfigRecoveryTest, ALostConfigComesBackAsItWasMountedAndTheVolumeOpens) {
  VolumeConfig made =
      MakeVolume([](VolumeConfig* config) { config->max_dirty_bytes = 3 << 20; });
  const std::string before = ReadWholeFile(Config());
  fsys::remove(Config());
  auto lost = LoadVolumeConfig(Vol());
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.status().message().find("cairn fsck --repair"), std::string::npos)
      << lost.status();
  EXPECT_EQ(lost.status().message().find("cairn format"), std::string::npos) << lost.status();

  auto recovered = RecoverVolumeConfig(Vol(), {});
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  auto config = LoadVolumeConfig(Vol());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->volume_id, made.volume_id);
  EXPECT_EQ(config->disks, made.disks);
  EXPECT_EQ(config->redundancy, made.redundancy);
  EXPECT_EQ(config->max_dirty_bytes, 3u << 20);
  EXPECT_EQ(ReadWholeFile(Config()), before);
  EXPECT_EQ(fsys::status(Config()).permissions() & fsys::perms::all, fsys::perms::owner_read |
                                                                         fsys::perms::owner_write);
  auto volume = Volume::Open(Vol(), *config);
  ASSERT_TRUE(volume.ok()) << volume.status();
  EXPECT_TRUE((*volume)->ns().Lookup(kRootInode, "f").ok());
}

TEST_F(ConfigRecoveryTest, SecretsAreNotKeptInTheNamespaceAndTheNoteSaysSo) {
  MakeVolume();
  auto config = LoadVolumeConfig(Vol());
  ASSERT_TRUE(config.ok());
  TierConfig tier;
  tier.endpoint = "http://127.0.0.1:1";
  tier.bucket = "b";
  tier.access_key_id = "AKID";
  tier.secret_access_key = "very-secret";
  config->tier = tier;
  ASSERT_TRUE(SaveVolumeConfig(Vol(), *config).ok());
  {
    auto volume = Volume::Open(Vol(), *LoadVolumeConfig(Vol()));
    ASSERT_TRUE(volume.ok()) << volume.status();
    auto kept = (*volume)->ns().GetVolumeMeta(kMountedConfigKey);
    ASSERT_TRUE(kept.ok() && kept->has_value());
    EXPECT_EQ((*kept)->find("very-secret"), std::string::npos);
    EXPECT_NE((*kept)->find("AKID"), std::string::npos);
  }
  fsys::remove(Config());
  auto recovered = RecoverVolumeConfig(Vol(), {});
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  bool told = false;
  for (const std::string& note : recovered->notes) {
    told |= note.find("secret_access_key") != std::string::npos;
  }
  EXPECT_TRUE(told);
  ASSERT_TRUE(recovered->config.tier.has_value());
  EXPECT_EQ(recovered->config.tier->bucket, "b");
}

TEST_F(ConfigRecoveryTest, WithoutARecordTheDisksGivenAreOrderedByTheirMarkers) {
  VolumeConfig made = MakeVolume();
  {
    // As a volume last mounted by an older cairn: no copy of the file.
    auto volume = Volume::Open(Vol(), made);
    ASSERT_TRUE(volume.ok());
    ASSERT_TRUE((*volume)->ns().SetVolumeMeta(kMountedConfigKey, "").ok());
  }
  fsys::remove(Config());
  auto without_disks = RecoverVolumeConfig(Vol(), {});
  ASSERT_FALSE(without_disks.ok());
  EXPECT_NE(without_disks.status().message().find("--disk"), std::string::npos);
  EXPECT_FALSE(fsys::exists(Config()));

  auto recovered = RecoverVolumeConfig(Vol(), {Disk(2), Disk(0), Disk(1)});
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->config.disks, made.disks);
  EXPECT_EQ(recovered->config.redundancy, made.redundancy);  // read from a shard
  EXPECT_FALSE(recovered->notes.empty());
  auto volume = Volume::Open(Vol(), *LoadVolumeConfig(Vol()));
  ASSERT_TRUE(volume.ok()) << volume.status();
}

TEST_F(ConfigRecoveryTest, DisksOfAnotherVolumeAreRefusedAndNothingIsWritten) {
  MakeVolume();
  FormatOptions other;
  other.disks = {Disk(10), Disk(11), Disk(12)};
  ASSERT_TRUE(FormatVolume(dir_.path() + "/other", other).ok());
  fsys::remove(Config());
  auto recovered = RecoverVolumeConfig(Vol(), {Disk(10), Disk(11), Disk(12)});
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.status().message().find("belongs to volume"), std::string::npos)
      << recovered.status();
  EXPECT_FALSE(fsys::exists(Config()));
}

TEST_F(ConfigRecoveryTest, AnExistingConfigOrAMountedVolumeIsLeftAlone) {
  VolumeConfig made = MakeVolume();
  EXPECT_FALSE(RecoverVolumeConfig(Vol(), {}).ok());
  auto volume = Volume::Open(Vol(), made);
  ASSERT_TRUE(volume.ok());
  fsys::remove(Config());
  auto recovered = RecoverVolumeConfig(Vol(), {});
  ASSERT_FALSE(recovered.ok());
  EXPECT_NE(recovered.status().message().find("in use"), std::string::npos)
      << recovered.status();
  EXPECT_FALSE(fsys::exists(Config()));
}

TEST_F(ConfigRecoveryTest, AnEditedFormatVersionIsRefusedNamingBothAndRepaired) {
  MakeVolume();
  const std::string good = ReadWholeFile(Config());
  for (const std::string bad : {"1", "4294967298", "3"}) {
    std::string text = good;
    const std::string line = absl::StrCat("format_version = ", kVolumeFormatVersion);
    text.replace(text.find(line), line.size(), "format_version = " + bad);
    WriteText(Config(), text);
    absl::Status refused;
    if (auto config = LoadVolumeConfig(Vol()); !config.ok()) {
      refused = config.status();
    } else {
      refused = Volume::Open(Vol(), *config).status();
    }
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.message().find(bad), std::string::npos) << refused;
    if (bad == "1") {
      EXPECT_NE(refused.message().find(absl::StrCat("format ", kVolumeFormatVersion)),
                std::string::npos)
          << refused;
    }
    auto repaired = RepairConfigFormatVersion(Vol());
    ASSERT_TRUE(repaired.ok()) << repaired.status();
    EXPECT_TRUE(repaired->has_value()) << bad;
    EXPECT_EQ(ReadWholeFile(Config()), good) << bad;
    EXPECT_TRUE(Volume::Open(Vol(), *LoadVolumeConfig(Vol())).ok()) << bad;
  }
  auto nothing = RepairConfigFormatVersion(Vol());
  ASSERT_TRUE(nothing.ok());
  EXPECT_FALSE(nothing->has_value());
}

}  // namespace
}  // namespace cairn
