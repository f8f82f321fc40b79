#include "backend/namespace/extent_editor.h"

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backend/namespace/rocks_kv_store.h"
#include "gtest/gtest.h"
#include "tests/support/file_bytes.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

constexpr InodeId kFile = 7;
constexpr uint64_t kExtentBytes = 64 * 1024;
constexpr int kExtents = 3000;  // a few dozen table blocks

std::vector<Extent> AllExtents() {
  std::vector<Extent> extents;
  for (int i = 0; i < kExtents; ++i) {
    Extent e;
    e.file_offset = i * kExtentBytes;
    e.length = kExtentBytes;
    e.blob_id = static_cast<BlobId>(1000 + i);
    extents.push_back(e);
  }
  return extents;
}

// The extents of [lo, hi), unclipped, as a healthy table answers.
std::vector<Extent> Expected(uint64_t lo, uint64_t hi) {
  std::vector<Extent> out;
  for (const Extent& e : AllExtents()) {
    if (e.file_offset < hi && e.file_offset + e.length > lo) out.push_back(e);
  }
  return out;
}

// A database holding one file's extents in a table file (and neighbours'
// keys around it), closed.
void MakeTable(const std::string& dir) {
  RocksKvOptions options;
  options.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<KvStore>> store = OpenRocksKvStore(dir, options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::Status written = (*store)->Run([](KvTxn& txn) {
    for (InodeId ino : {kFile - 1, kFile + 1}) {
      for (int i = 0; i < 100; ++i) {
        Extent e;
        e.file_offset = i * kExtentBytes;
        e.length = kExtentBytes;
        e.blob_id = 5;
        txn.Put(KvSpace::kExtents, ExtentKey(ino, e.file_offset), EncodeExtent(e));
      }
    }
    for (const Extent& e : AllExtents()) {
      txn.Put(KvSpace::kExtents, ExtentKey(kFile, e.file_offset), EncodeExtent(e));
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(written.ok()) << written;
  // Closing writes the extents into one table file.
}

std::string TableFile(const std::string& dir) {
  std::string table;
  for (const auto& entry : fsys::directory_iterator(dir)) {
    if (entry.path().extension() == ".sst") table = entry.path();
  }
  return table;
}

// A flipped byte anywhere in the table: each read of the file's extents
// gives the right extents or an error, never fewer or other extents (a
// damaged block read as "no extent here" made 3 MiB of a file read back as
// zeros).
TEST(ReadExtentsTest, ADamagedTableGivesTheRightExtentsOrAnErrorNeverFewer) {
  TempDir dir;
  const std::string pristine = dir.path() + "/pristine";
  ASSERT_NO_FATAL_FAILURE(MakeTable(pristine));
  const uintmax_t table_size = fsys::file_size(TableFile(pristine));
  ASSERT_GT(table_size, 20000u);
  std::mt19937_64 random(20261204);
  int errors = 0;
  for (int round = 0; round < 60; ++round) {
    const std::string copy = absl::StrCat(dir.path(), "/copy", round);
    fsys::copy(pristine, copy);
    const std::string table = TableFile(copy);
    const uint64_t position = random() % table_size;
    FlipByte(table, position, 0x5a);
    absl::StatusOr<std::unique_ptr<KvStore>> store = OpenRocksKvStore(copy, RocksKvOptions());
    if (!store.ok()) {
      ++errors;  // refused: that is an answer too
      continue;
    }
    // Reads inside extents of every block, as the file's reads are.
    for (uint64_t i = 0; i < kExtents; i += 7) {
      const uint64_t lo = i * kExtentBytes + kExtentBytes / 2;
      for (uint64_t length : {uint64_t{1}, 3 * kExtentBytes}) {
        absl::StatusOr<std::vector<Extent>> read = ReadExtents(
            (*store)->Reader(), kFile, lo, lo + length, /*clip=*/false);
        if (!read.ok()) {
          ++errors;
          continue;
        }
        EXPECT_EQ(*read, Expected(lo, lo + length))
            << "byte " << position << " of the table flipped; read [" << lo << ", "
            << lo + length << ")";
      }
    }
  }
  EXPECT_GT(errors, 0) << "no flip was ever noticed: the test damages nothing";
}

}  // namespace
}  // namespace cairn
