// A flipped byte in cairn.toml, at many positions with a fixed seed: the
// only acceptable outcomes are a refused open that says why, or a volume
// whose files read back right (or fail with an error): never other bytes,
// and never a change that outlives putting the file back.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "backend/volume/volume.h"
#include "gtest/gtest.h"
#include "tests/support/file_bytes.h"
#include "tests/support/random_bytes.h"
#include "tests/support/temp_dir.h"
#include "tests/support/volume_files.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

TEST(ConfigRotTest, AFlippedByteInCairnTomlIsRefusedOrHarmless) {
  TempDir dir;
  const std::string vol = dir.path() + "/vol";
  FormatOptions format;
  for (int i = 0; i < 3; ++i) format.disks.push_back(absl::StrCat(dir.path(), "/disk", i));
  ASSERT_TRUE(FormatVolume(vol, format).ok());
  const std::string data = RandomBytes(300000, 9);
  BlobId id = 0;
  {
    auto config = LoadVolumeConfig(vol);
    ASSERT_TRUE(config.ok());
    auto volume = Volume::Open(vol, *config);
    ASSERT_TRUE(volume.ok()) << volume.status();
    id = WriteFileAsOneBlob((*volume)->ns(), (*volume)->blobs(), "f", data);
  }
  const std::string toml = vol + "/cairn.toml";
  const std::string pristine = ReadWholeFile(toml);
  std::mt19937_64 random(20261205);
  int refused = 0;
  for (int round = 0; round < 50; ++round) {
    const size_t position = random() % pristine.size();
    std::string damaged = pristine;
    damaged[position] ^= static_cast<char>(1 << (random() % 7));
    std::ofstream(toml, std::ios::binary | std::ios::trunc) << damaged;
    absl::StatusOr<VolumeConfig> config = LoadVolumeConfig(vol);
    if (!config.ok()) {
      EXPECT_FALSE(config.status().message().empty());
      ++refused;
    } else {
      absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(vol, *config);
      if (!volume.ok()) {
        ++refused;
      } else {
        absl::StatusOr<std::string> read = (*volume)->blobs().Read(id, 0, data.size());
        if (read.ok()) {
          EXPECT_EQ(*read, data) << "byte " << position << " of cairn.toml flipped: "
                                 << damaged.substr(0, 400);
        }
      }
    }
    // Put back, the volume is as it was.
    std::ofstream(toml, std::ios::binary | std::ios::trunc) << pristine;
    absl::StatusOr<VolumeConfig> again = LoadVolumeConfig(vol);
    ASSERT_TRUE(again.ok()) << again.status();
    absl::StatusOr<std::unique_ptr<Volume>> volume = Volume::Open(vol, *again);
    ASSERT_TRUE(volume.ok()) << "after byte " << position << ": " << volume.status();
    absl::StatusOr<std::string> read = (*volume)->blobs().Read(id, 0, data.size());
    ASSERT_TRUE(read.ok()) << "after byte " << position << ": " << read.status();
    ASSERT_EQ(*read, data) << "after byte " << position;
  }
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace cairn
