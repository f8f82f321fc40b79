#include "backend/namespace/namespace_check.h"

#include <sys/stat.h>

#include <map>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/namespace/records.h"

namespace cairn {
namespace {

// Calls `visit(key, value)` for every record of a key space.
template <typename Visit>
absl::Status ForEach(KvReader& reader, KvSpace space, Visit visit) {
  return reader.Scan(space, "", "", [&](std::string_view key, std::string_view value) {
    visit(key, value);
    return true;
  });
}

// The same over the records of `space` whose keys start with `prefix`.
template <typename Visit>
absl::Status ForEachWithPrefix(KvReader& reader, KvSpace space, std::string_view prefix,
                               Visit visit) {
  return reader.Scan(space, prefix, KvPrefixEnd(prefix), [&](std::string_view key, std::string_view value) {
    visit(key, value);
    return true;
  });
}

struct InodeFacts {
  InodeAttr attr;
  uint64_t links = 0;           // directory entries naming it
  uint64_t subdirectories = 0;  // for directories
  uint64_t extent_bytes = 0;
  uint64_t extent_end = 0;      // end of the last extent
};

}  // namespace

absl::StatusOr<NamespaceCheckReport> CheckNamespace(
    KvReader& reader, const NamespaceCounters& counters) {
  NamespaceCheckReport report;
  auto problem = [&](auto&&... parts) {
    // Enough to act on; a badly damaged database is not listed line by line.
    if (report.problems.size() < 1000) report.problems.push_back(absl::StrCat(parts...));
  };

  std::map<InodeId, InodeFacts> inodes;
  uint64_t highest_inode = 0;
  absl::Status s = ForEach(reader, KvSpace::kInodes, [&](std::string_view key, std::string_view value) {
    if (key.size() != 8) return problem("inode key of ", key.size(), " bytes");
    InodeId ino = KeyNumberAt(key, 0);
    absl::StatusOr<InodeRecord> record = DecodeInode(ino, value);
    if (!record.ok()) return problem(record.status().message());
    inodes[ino].attr = record->attr;
    highest_inode = std::max(highest_inode, ino);
  });
  if (!s.ok()) return s;
  report.inodes = inodes.size();
  if (!inodes.count(kRootInode)) problem("the root directory (inode 1) is missing");

  // Directory entries and the listing index.
  absl::flat_hash_map<std::string, InodeId> entries;  // parent key + name -> child
  s = ForEach(reader, KvSpace::kDentries, [&](std::string_view key, std::string_view value) {
    if (key.size() <= 8) return problem("directory entry key of ", key.size(), " bytes");
    InodeId parent = KeyNumberAt(key, 0);
    std::string name(key.substr(8));
    absl::StatusOr<DentryValue> entry = DecodeDentry(value);
    if (!entry.ok()) return problem("entry '", name, "' in directory ", parent, ": ",
                                    entry.status().message());
    entries[std::string(key)] = entry->ino;
    auto dir = inodes.find(parent);
    if (dir == inodes.end() || !S_ISDIR(dir->second.attr.mode)) {
      problem("entry '", name, "' is in inode ", parent, ", which is not a directory");
    }
    auto child = inodes.find(entry->ino);
    if (child == inodes.end()) {
      return problem("entry '", name, "' in directory ", parent, " names inode ",
                     entry->ino, ", which does not exist");
    }
    child->second.links++;
    if ((child->second.attr.mode & S_IFMT) != (entry->mode & S_IFMT)) {
      problem("entry '", name, "' in directory ", parent, " gives inode ", entry->ino,
              " the wrong file type");
    }
    if (S_ISDIR(child->second.attr.mode)) {
      if (dir != inodes.end()) dir->second.subdirectories++;
      if (child->second.attr.parent != parent) {
        problem("directory ", entry->ino, " is in directory ", parent,
                " but records ", child->second.attr.parent, " as its parent");
      }
    }
  });
  if (!s.ok()) return s;
  uint64_t listed = 0;
  s = ForEach(reader, KvSpace::kCookies, [&](std::string_view key, std::string_view value) {
    if (key.size() != 16) return problem("listing key of ", key.size(), " bytes");
    InodeId parent = KeyNumberAt(key, 0);
    absl::StatusOr<DirEntry> entry = DecodeCookieEntry(KeyNumberAt(key, 8), value);
    if (!entry.ok()) return problem(entry.status().message());
    listed++;
    auto it = entries.find(std::string(key.substr(0, 8)) + entry->name);
    if (it == entries.end() || it->second != entry->ino) {
      problem("directory ", parent, " lists '", entry->name,
              "', which it has no matching entry for");
    }
  });
  if (!s.ok()) return s;
  if (listed != entries.size()) {
    problem("directories hold ", entries.size(), " entries but list ", listed);
  }

  absl::flat_hash_set<InodeId> orphans;
  s = ForEach(reader, KvSpace::kOrphans, [&](std::string_view key, std::string_view) {
    if (key.size() != 8) return problem("orphan key of ", key.size(), " bytes");
    InodeId ino = KeyNumberAt(key, 0);
    orphans.insert(ino);
    auto it = inodes.find(ino);
    if (it == inodes.end()) return problem("orphan ", ino, " does not exist");
    if (it->second.links != 0 || it->second.attr.nlink != 0) {
      problem("inode ", ino, " is queued as an orphan but is still linked");
    }
  });
  if (!s.ok()) return s;
  report.orphans = orphans.size();

  // S3 multipart uploads (kv_namespace.cc keeps them in the meta
  // space): their parts are orphans on purpose, held until the upload
  // completes or is aborted; a part whose inode is gone is lost data.
  absl::flat_hash_set<std::string> uploads;
  s = ForEachWithPrefix(reader, KvSpace::kMeta, "mu:", [&](std::string_view key, std::string_view value) {
    std::string id(key.substr(3));
    uploads.insert(id);
    if (absl::StatusOr<MultipartUploadRecord> upload = DecodeMultipartUpload(value); !upload.ok()) {
      problem("multipart upload ", id, ": ", upload.status().message());
    }
  });
  if (!s.ok()) return s;
  report.multipart_uploads = uploads.size();
  absl::flat_hash_map<InodeId, std::string> part_holders;
  s = ForEachWithPrefix(reader, KvSpace::kMeta, "mp:", [&](std::string_view key, std::string_view value) {
    size_t slash = key.rfind('/');
    if (slash == std::string_view::npos || key.size() != slash + 9) {
      return problem("multipart part key of ", key.size(), " bytes");
    }
    std::string id(key.substr(3, slash - 3));
    uint64_t number = KeyNumberAt(key, slash + 1);
    absl::StatusOr<MultipartPartRecord> part =
        DecodeMultipartPart(static_cast<uint32_t>(number), value);
    if (!part.ok()) return problem("multipart upload ", id, ": ", part.status().message());
    report.multipart_parts++;
    if (!uploads.count(id)) problem("part ", number, " of multipart upload ", id, " has no upload");
    part_holders[part->ino] = id;
    auto it = inodes.find(part->ino);
    if (it == inodes.end()) {
      return problem("part ", number, " of multipart upload ", id, " names inode ", part->ino,
                     ", which does not exist (the upload cannot complete; abort it)");
    }
    if (!orphans.count(part->ino)) {
      problem("part ", number, " of multipart upload ", id, " is inode ", part->ino,
              ", which is not a nameless file");
    }
  });
  if (!s.ok()) return s;
  s = ForEachWithPrefix(reader, KvSpace::kMeta, "mh:", [&](std::string_view key, std::string_view value) {
    if (key.size() != 11) return problem("held part key of ", key.size(), " bytes");
    InodeId ino = KeyNumberAt(key, 3);
    auto it = part_holders.find(ino);
    if (it == part_holders.end() || it->second != value) {
      problem("inode ", ino, " is held for multipart upload ",
              absl::string_view(value.data(), value.size()),
              ", which has no part naming it (its space leaks)");
    }
  });
  if (!s.ok()) return s;

  // Open holds of hosts sharing the namespace ("oh:" + inode + session):
  // the holder's close or its session's death removes them, and the
  // inode's free deletes them, so one naming no inode is a leak.
  s = ForEachWithPrefix(reader, KvSpace::kMeta, "oh:", [&](std::string_view key, std::string_view) {
    if (key.size() != 19) return problem("open hold key of ", key.size(), " bytes");
    InodeId ino = KeyNumberAt(key, 3);
    if (!inodes.count(ino)) {
      problem("session ", KeyNumberAt(key, 11), " holds inode ", ino,
              " open, which does not exist");
    }
  });
  if (!s.ok()) return s;

  // File data: extents, and the blobs they reference.
  absl::flat_hash_map<BlobId, uint64_t> references;
  absl::flat_hash_map<BlobId, uint64_t> live_bytes;
  std::map<BlobId, BlobRecord> blobs;
  s = ForEach(reader, KvSpace::kBlobs, [&](std::string_view key, std::string_view value) {
    if (key.size() != 8) return problem("blob key of ", key.size(), " bytes");
    absl::StatusOr<StoredBlob> blob = DecodeBlob(value);
    if (!blob.ok()) return problem(blob.status().message());
    blobs[KeyNumberAt(key, 0)] = blob->record;
  });
  if (!s.ok()) return s;
  InodeId last_ino = 0;
  uint64_t last_end = 0;
  s = ForEach(reader, KvSpace::kExtents, [&](std::string_view key, std::string_view value) {
    if (key.size() != 16) return problem("extent key of ", key.size(), " bytes");
    InodeId ino = KeyNumberAt(key, 0);
    absl::StatusOr<Extent> extent = DecodeExtent(KeyNumberAt(key, 8), value);
    if (!extent.ok()) return problem(extent.status().message());
    report.extents++;
    uint64_t end = extent->file_offset + extent->length;
    if (ino == last_ino && extent->file_offset < last_end) {
      problem("file ", ino, " has overlapping extents at byte ", extent->file_offset);
    }
    last_ino = ino;
    last_end = end;
    auto file = inodes.find(ino);
    if (file == inodes.end()) return problem("extent of inode ", ino, ", which does not exist");
    if (!S_ISREG(file->second.attr.mode)) problem("extent of inode ", ino, ", which is not a file");
    file->second.extent_bytes += extent->length;
    file->second.extent_end = std::max(file->second.extent_end, end);
    report.data_bytes += extent->length;
    if (extent->blob_id == kNoBlob) return;
    references[extent->blob_id]++;
    live_bytes[extent->blob_id] += extent->length;
    auto blob = blobs.find(extent->blob_id);
    if (blob == blobs.end()) {
      return problem("file ", ino, " references blob ", extent->blob_id,
                     ", which the namespace does not record");
    }
    if (extent->blob_offset + extent->length > blob->second.length) {
      problem("file ", ino, " reads past the end of blob ", extent->blob_id);
    }
  });
  if (!s.ok()) return s;
  absl::flat_hash_set<BlobId> queued_for_gc;
  s = ForEach(reader, KvSpace::kGc, [&](std::string_view key, std::string_view) {
    if (key.size() != 16) return problem("GC key of ", key.size(), " bytes");
    BlobId id = KeyNumberAt(key, 8);
    queued_for_gc.insert(id);
    if (!blobs.count(id)) problem("blob ", id, " is queued for GC but not recorded");
  });
  if (!s.ok()) return s;
  BlobId highest_blob = 0;
  for (const auto& [id, record] : blobs) {
    highest_blob = std::max(highest_blob, id);
    uint64_t refs = references.count(id) ? references[id] : 0;
    if (record.refcount != refs) {
      problem("blob ", id, " records ", record.refcount, " references but has ", refs);
    }
    uint64_t live = live_bytes.count(id) ? live_bytes[id] : 0;
    if (record.owner != 0 && record.live_bytes != live) {
      problem("blob ", id, " records ", record.live_bytes, " live bytes but files use ", live);
    }
    if (refs == 0 && !queued_for_gc.count(id)) {
      problem("blob ", id, " is unreferenced but not queued for GC (its space leaks)");
    }
    if (refs > 0 && queued_for_gc.count(id)) {
      problem("blob ", id, " is queued for GC while files still reference it");
    }
    // Garbage waiting for the collector is not worth verifying, and its
    // shards may be gone already: the collector deletes them before it
    // forgets the records, and a crash can come between.
    if (refs == 0 && queued_for_gc.count(id)) continue;
    report.blobs.emplace_back(id, record);
  }

  // Per inode: link counts, sizes, allocated bytes.
  for (const auto& [ino, facts] : inodes) {
    const InodeAttr& attr = facts.attr;
    if (S_ISDIR(attr.mode)) {
      report.directories++;
      // Removed while still in use: nameless until released.
      if (facts.links == 0 && attr.nlink == 0 && orphans.count(ino)) continue;
      if (attr.nlink != 2 + facts.subdirectories) {
        problem("directory ", ino, " has link count ", attr.nlink, " but ",
                facts.subdirectories, " subdirectories");
      }
      if (ino != kRootInode && facts.links != 1) {
        problem("directory ", ino, " has ", facts.links, " entries naming it");
      }
      continue;
    }
    if (S_ISREG(attr.mode)) report.files++;
    if (attr.nlink != facts.links) {
      problem("inode ", ino, " has link count ", attr.nlink, " but ", facts.links,
              " entries naming it");
    }
    if (facts.links == 0 && !orphans.count(ino)) {
      problem("inode ", ino, " has no name and is not queued as an orphan (its space leaks)");
    }
    if (facts.extent_end > attr.size) {
      problem("file ", ino, " has data up to byte ", facts.extent_end,
              " past its size ", attr.size);
    }
    if (facts.extent_bytes != attr.allocated_bytes) {
      problem("file ", ino, " counts ", attr.allocated_bytes, " bytes of data but has ",
              facts.extent_bytes);
    }
  }
  s = ForEach(reader, KvSpace::kXattrs, [&](std::string_view key, std::string_view) {
    if (key.size() <= 8) return problem("xattr key of ", key.size(), " bytes");
    if (!inodes.count(KeyNumberAt(key, 0))) {
      problem("extended attribute of inode ", KeyNumberAt(key, 0), ", which does not exist");
    }
  });
  if (!s.ok()) return s;

  if (counters.inode_count != inodes.size()) {
    problem("the volume counts ", counters.inode_count, " inodes but has ", inodes.size());
  }
  if (counters.data_bytes != report.data_bytes) {
    problem("the volume counts ", counters.data_bytes, " bytes of data but has ",
            report.data_bytes);
  }
  if (counters.next_inode <= highest_inode) {
    problem("the next inode number ", counters.next_inode, " is already in use");
  }
  if (!blobs.empty() && counters.next_blob <= highest_blob) {
    problem("the next blob id ", counters.next_blob, " is already in use");
  }
  return report;
}

}  // namespace cairn
