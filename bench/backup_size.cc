// Size of a namespace backup per file, without a million FUSE creates: opens
// a NamespaceStore in DIR, creates FILES regular files spread over DIRS
// directories, gives each one blob of 4096 bytes (as the flusher records a
// file whose data went to a blob), then takes the checkpoint a backup
// uploads (NamespaceStore::CreateCheckpoint) and reports its size. The blob
// list a backup uploads beside the checkpoint is 16 bytes per blob.
//
//   cairn-backup-size DIR [FILES] [DIRS]     (defaults 1000000, 1000)
//
// With a replica every blob is queued in the commit that records it and the
// queue entry is deleted once copied; the program does the same (queue and
// clear), so the checkpoint carries the tombstones a live volume's does.
// It then also compacts a copy of the checkpoint with RocksDB directly (the
// backup uploads the checkpoint as it is), to show how much of its size is
// history RocksDB has not yet compacted away.
// Prints "key value" lines for bench/replica.sh.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "backend/namespace/namespace_store.h"
#include "backend/base/types.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"

namespace fsys = std::filesystem;
using cairn::BlobId;
using cairn::Caller;
using cairn::Extent;
using cairn::InodeAttr;
using cairn::NamespaceOptions;
using cairn::NamespaceStore;
using cairn::NewBlob;
using cairn::NewNode;

namespace {

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  fprintf(stderr, "backup_size: %s: %s\n", what.c_str(), std::string(status.message()).c_str());
  exit(1);
}

double Since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Bytes of the regular files in `dir`, in all and by kind (sst, log,
// MANIFEST, OPTIONS, other).
std::map<std::string, uint64_t> DirBytes(const std::string& dir) {
  std::map<std::string, uint64_t> bytes;
  for (const auto& entry : fsys::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename();
    std::string kind = "other";
    if (name.ends_with(".sst")) {
      kind = "sst";
    } else if (name.ends_with(".log")) {
      kind = "log";
    } else if (name.starts_with("MANIFEST")) {
      kind = "manifest";
    } else if (name.starts_with("OPTIONS")) {
      kind = "options";
    }
    bytes[kind] += entry.file_size();
    bytes["total"] += entry.file_size();
    bytes["files"] += 1;
  }
  return bytes;
}

void PrintDir(const std::string& label, const std::map<std::string, uint64_t>& bytes) {
  for (const auto& [kind, value] : bytes) {
    printf("%s_%s %llu\n", label.c_str(), kind.c_str(), static_cast<unsigned long long>(value));
  }
}

// Compacts every column family of a copy of the checkpoint to the bottom
// level and returns the bytes of the copy's table files afterwards.
uint64_t CompactedTableBytes(const std::string& checkpoint, const std::string& copy) {
  fsys::copy(checkpoint, copy, fsys::copy_options::recursive);
  std::vector<std::string> names;
  rocksdb::DBOptions db_options;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, copy, &names);
  if (!s.ok()) Die("listing column families", absl::InternalError(s.ToString()));
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::Open(db_options, copy, descriptors, &handles, &raw);
  if (!s.ok()) Die("opening the copy", absl::InternalError(s.ToString()));
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (rocksdb::ColumnFamilyHandle* handle : handles) {
    s = db->CompactRange(compact, handle, nullptr, nullptr);
    if (!s.ok()) Die("compacting the copy", absl::InternalError(s.ToString()));
  }
  for (rocksdb::ColumnFamilyHandle* handle : handles) db->DestroyColumnFamilyHandle(handle);
  db.reset();
  return DirBytes(copy)["sst"];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: cairn-backup-size DIR [FILES] [DIRS]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t files = argc > 2 ? strtoull(argv[2], nullptr, 10) : 1000000;
  const uint64_t dirs = argc > 3 ? strtoull(argv[3], nullptr, 10) : 1000;
  if (files == 0 || dirs == 0 || fsys::exists(dir)) {
    fprintf(stderr, "backup_size: DIR must not exist; FILES and DIRS at least 1\n");
    return 2;
  }
  fsys::create_directories(dir);
  const std::string db_dir = dir + "/db";
  const std::string checkpoint = dir + "/checkpoint";
  constexpr uint64_t kBlobBytes = 4096;
  constexpr uint64_t kIdsAtOnce = 1024;

  NamespaceOptions options;
  options.create_if_missing = true;
  options.queue_replication = true;
  absl::StatusOr<std::unique_ptr<NamespaceStore>> opened = NamespaceStore::Open(db_dir, options);
  if (!opened.ok()) Die("opening the namespace", opened.status());
  NamespaceStore& ns = **opened;
  const Caller caller{1000, 1000};

  const auto start = std::chrono::steady_clock::now();
  NewNode dir_node;
  dir_node.mode = S_IFDIR | 0755;
  NewNode file_node;
  file_node.mode = S_IFREG | 0644;
  std::vector<cairn::InodeId> dir_inodes;
  for (uint64_t d = 0; d < dirs; ++d) {
    absl::StatusOr<InodeAttr> made =
        ns.MakeNode(cairn::kRootInode, absl::StrFormat("d%04d", d), dir_node, caller);
    if (!made.ok()) Die("mkdir", made.status());
    dir_inodes.push_back(made->ino);
  }
  BlobId next_id = 0, ids_left = 0;
  std::vector<BlobId> to_clear;
  for (uint64_t i = 0; i < files; ++i) {
    absl::StatusOr<InodeAttr> made = ns.MakeNode(
        dir_inodes[i % dirs], absl::StrFormat("f%07d", i), file_node, caller);
    if (!made.ok()) Die("create", made.status());
    if (ids_left == 0) {
      absl::StatusOr<BlobId> first = ns.AllocateBlobIds(kIdsAtOnce);
      if (!first.ok()) Die("allocating blob ids", first.status());
      next_id = *first;
      ids_left = kIdsAtOnce;
    }
    const BlobId id = next_id++;
    ids_left--;
    NewBlob blob{id, kBlobBytes, 0};
    Extent extent{0, kBlobBytes, id, 0, ""};
    // The flusher's commit also records how far the writeback journal
    // holds this file's writes.
    absl::StatusOr<InodeAttr> written =
        ns.CommitWrite(made->ino, {&blob, 1}, {&extent, 1}, /*journal_mark=*/i + 1);
    if (!written.ok()) Die("commit", written.status());
    // The replicator clears each entry once its copy is verified.
    to_clear.push_back(id);
    if (to_clear.size() == 256) {
      for (BlobId done : to_clear) {
        if (absl::Status s = ns.ClearReplication(done); !s.ok()) Die("clear", s);
      }
      to_clear.clear();
    }
    if ((i + 1) % 100000 == 0) {
      fprintf(stderr, "backup_size: %llu files, %.0f s\n",
              static_cast<unsigned long long>(i + 1), Since(start));
    }
  }
  for (BlobId done : to_clear) {
    if (absl::Status s = ns.ClearReplication(done); !s.ok()) Die("clear", s);
  }
  const double create_seconds = Since(start);
  absl::StatusOr<cairn::NamespaceStats> stats = ns.Stats();
  if (!stats.ok()) Die("stats", stats.status());

  const auto checkpoint_start = std::chrono::steady_clock::now();
  if (absl::Status s = ns.CreateCheckpoint(checkpoint); !s.ok()) Die("checkpoint", s);
  const double checkpoint_seconds = Since(checkpoint_start);
  std::map<std::string, uint64_t> bytes = DirBytes(checkpoint);
  opened->reset();

  const auto compact_start = std::chrono::steady_clock::now();
  const uint64_t compacted_sst = CompactedTableBytes(checkpoint, dir + "/compacted");
  const double compact_seconds = Since(compact_start);

  const uint64_t blob_list = files * 16;
  printf("files %llu\n", static_cast<unsigned long long>(files));
  printf("dirs %llu\n", static_cast<unsigned long long>(dirs));
  printf("inodes %llu\n", static_cast<unsigned long long>(stats->inode_count));
  printf("create_seconds %.1f\n", create_seconds);
  printf("checkpoint_seconds %.2f\n", checkpoint_seconds);
  printf("compact_seconds %.1f\n", compact_seconds);
  PrintDir("checkpoint", bytes);
  printf("compacted_sst %llu\n", static_cast<unsigned long long>(compacted_sst));
  printf("blob_list %llu\n", static_cast<unsigned long long>(blob_list));
  const uint64_t stored = bytes["total"] + blob_list;
  const uint64_t stored_compacted = bytes["total"] - bytes["sst"] + compacted_sst + blob_list;
  printf("backup_bytes %llu\n", static_cast<unsigned long long>(stored));
  printf("backup_bytes_per_file %.1f\n", static_cast<double>(stored) / files);
  printf("backup_mb_per_million_files %.1f\n", static_cast<double>(stored) / files);
  printf("compacted_backup_bytes %llu\n", static_cast<unsigned long long>(stored_compacted));
  printf("compacted_backup_bytes_per_file %.1f\n", static_cast<double>(stored_compacted) / files);
  return 0;
}
