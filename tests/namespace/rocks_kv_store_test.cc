// The RocksDB engine keeps the layout every volume has had: the column
// families named by KvSpaceName, keys as the namespace gives them, counters
// and sequences as fixed64 under their names in "meta". So a database
// written before the key-value seam opens as it is, and one written through
// it opens with plain RocksDB.
#include "backend/namespace/rocks_kv_store.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/base/coding.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "tests/support/temp_dir.h"

namespace cairn {
namespace {

std::string Fixed64(uint64_t v) {
  std::string s;
  PutFixed64(&s, v);
  return s;
}

// Opens `path` with plain RocksDB, every column family it has, and hands
// the families by name to `use`.
void WithRawDb(const std::string& path, bool create,
               const std::function<void(rocksdb::DB*,
                                        std::map<std::string, rocksdb::ColumnFamilyHandle*>&)>&
                   use) {
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  if (create) {
    for (int i = 0; i < kKvSpaceCount; ++i) names.push_back(KvSpaceName(static_cast<KvSpace>(i)));
  } else {
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  }
  rocksdb::DBOptions options;
  options.create_if_missing = create;
  options.create_missing_column_families = create;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, path, descriptors, &handles, &db).ok());
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name;
  for (size_t i = 0; i < names.size(); ++i) by_name[names[i]] = handles[i];
  use(db, by_name);
  for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
  delete db;
}

TEST(RocksKvStoreTest, SpacesAreTheColumnFamiliesEveryVolumeHas) {
  const std::vector<std::string> expected = {"inodes", "dentries", "dircookies",
                                             "xattrs", "extents",  "blobs",
                                             "gc",     "orphans",  "meta"};
  ASSERT_EQ(kKvSpaceCount, static_cast<int>(expected.size()));
  for (int i = 0; i < kKvSpaceCount; ++i) {
    EXPECT_EQ(KvSpaceName(static_cast<KvSpace>(i)), expected[i]);
  }
}

TEST(RocksKvStoreTest, ADatabaseWrittenWithoutTheSeamOpensAsItIs) {
  TempDir dir;
  const std::string path = dir.path() + "/ns";
  // As the namespace before the seam wrote them.
  WithRawDb(path, /*create=*/true, [](rocksdb::DB* db, auto& cf) {
    ASSERT_TRUE(db->Put({}, cf["inodes"], std::string("\0\0\0\0\0\0\0\1", 8), "root").ok());
    ASSERT_TRUE(db->Put({}, cf["dircookies"], "cookie", "entry").ok());
    ASSERT_TRUE(db->Put({}, cf["meta"], "c:next_ino", Fixed64(4242)).ok());
    ASSERT_TRUE(db->Put({}, cf["meta"], "c:next_blob", Fixed64(77)).ok());
    ASSERT_TRUE(db->Put({}, cf["meta"], "c:inode_count", Fixed64(12)).ok());
    ASSERT_TRUE(db->Put({}, cf["meta"], "c:data_bytes", Fixed64(1 << 20)).ok());
  });
  absl::StatusOr<std::unique_ptr<KvStore>> store = OpenRocksKvStore(path, RocksKvOptions());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::optional<std::string>> root =
      (*store)->Reader().Get(KvSpace::kInodes, std::string("\0\0\0\0\0\0\0\1", 8));
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(*root, "root");
  EXPECT_EQ(*(*store)->Reader().Get(KvSpace::kCookies, "cookie"), "entry");
  EXPECT_EQ(*(*store)->Allocate("c:next_ino", 2, 1), 4242u);
  EXPECT_EQ(*(*store)->Allocate("c:next_blob", 1, 0), 77u);
  EXPECT_EQ(*(*store)->ReadCounter("c:inode_count"), 12);
  EXPECT_EQ(*(*store)->ReadCounter("c:data_bytes"), 1 << 20);
}

TEST(RocksKvStoreTest, WhatTheSeamWritesPlainRocksDbReads) {
  TempDir dir;
  const std::string path = dir.path() + "/ns";
  {
    RocksKvOptions options;
    options.create_if_missing = true;
    absl::StatusOr<std::unique_ptr<KvStore>> store = OpenRocksKvStore(path, options);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)
                    ->Run([](KvTxn& txn) {
                      txn.Put(KvSpace::kDentries, "name", "entry");
                      txn.Put(KvSpace::kXattrs, "x", "y");
                      txn.AddToCounter("c:inode_count", 3);
                      return absl::OkStatus();
                    })
                    .ok());
    ASSERT_TRUE((*store)->Allocate("c:next_ino", 2, 1024).ok());
  }
  WithRawDb(path, /*create=*/false, [](rocksdb::DB* db, auto& cf) {
    ASSERT_EQ(cf.size(), 1u + kKvSpaceCount);
    std::string value;
    ASSERT_TRUE(db->Get({}, cf["dentries"], "name", &value).ok());
    EXPECT_EQ(value, "entry");
    ASSERT_TRUE(db->Get({}, cf["xattrs"], "x", &value).ok());
    EXPECT_EQ(value, "y");
    ASSERT_TRUE(db->Get({}, cf["meta"], "c:inode_count", &value).ok());
    EXPECT_EQ(value, Fixed64(3));
    // The high-water mark: no inode number at or above it was handed out.
    ASSERT_TRUE(db->Get({}, cf["meta"], "c:next_ino", &value).ok());
    EXPECT_EQ(value, Fixed64(2 + 1024));
  });
}

TEST(RocksKvStoreTest, CheckpointOpensReadOnlyWithTheSameRecords) {
  TempDir dir;
  RocksKvOptions options;
  options.create_if_missing = true;
  absl::StatusOr<std::unique_ptr<KvStore>> store =
      OpenRocksKvStore(dir.path() + "/ns", options);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)
                  ->Run([](KvTxn& txn) {
                    txn.Put(KvSpace::kBlobs, "b", "record");
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_TRUE((*store)->CreateCheckpoint(dir.path() + "/copy").ok());
  RocksKvOptions read_only;
  read_only.read_only = true;
  absl::StatusOr<std::unique_ptr<KvStore>> copy =
      OpenRocksKvStore(dir.path() + "/copy", read_only);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(*(*copy)->Reader().Get(KvSpace::kBlobs, "b"), "record");
  EXPECT_FALSE((*copy)
                   ->Run([](KvTxn& txn) {
                     txn.Put(KvSpace::kBlobs, "c", "x");
                     return absl::OkStatus();
                   })
                   .ok());
  absl::StatusOr<KvStore::EngineStats> stats = (*store)->GetEngineStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->log_writes, 1u);
}

}  // namespace
}  // namespace cairn
