// Keys and values of the namespace database: one encoder and one decoder
// per record kind. Internal to backend/namespace/.
//
// Every key starts with the owning inode (or blob) number in big-endian, so
// the records of one inode sort together and a directory lists by range scan.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "backend/namespace/namespace_store.h"
#include "backend/base/types.h"

namespace cairn {

// What the "inodes" column family holds for one inode.
struct InodeRecord {
  InodeAttr attr;
  uint64_t next_cookie = 3;     // directories: cookie of the next new entry
  std::string symlink_target;   // symlinks only
  uint64_t journal_mark = 0;    // files: see NamespaceStore::CommitWrite
};

struct DentryValue {
  InodeId ino = 0;
  uint32_t mode = 0;  // S_IFMT bits of the child
  uint64_t cookie = 0;
};

struct StoredBlob {
  BlobRecord record;
  uint64_t gc_ready_sec = 0;  // when queued for GC: the key's ready time
};

std::string InodeKey(InodeId ino);
std::string DentryKey(InodeId parent, std::string_view name);
std::string DentryPrefix(InodeId parent);  // == InodeKey(parent)
std::string CookieKey(InodeId parent, uint64_t cookie);
std::string XattrKey(InodeId ino, std::string_view name);
std::string ExtentKey(InodeId ino, uint64_t file_offset);
std::string BlobKey(BlobId id);
std::string GcKey(uint64_t ready_sec, BlobId id);

// Decoders of keys: the numbers at fixed positions (callers check prefixes).
uint64_t KeyNumberAt(std::string_view key, size_t position);

std::string EncodeInode(const InodeRecord& record);
absl::StatusOr<InodeRecord> DecodeInode(InodeId ino, std::string_view value);

std::string EncodeDentry(const DentryValue& value);
absl::StatusOr<DentryValue> DecodeDentry(std::string_view value);

// The listing index: name plus the dentry fields.
std::string EncodeCookieEntry(std::string_view name, const DentryValue& value);
absl::StatusOr<DirEntry> DecodeCookieEntry(uint64_t cookie,
                                           std::string_view value);

std::string EncodeExtent(const Extent& extent);
absl::StatusOr<Extent> DecodeExtent(uint64_t file_offset,
                                    std::string_view value);

std::string EncodeBlob(const StoredBlob& blob);
absl::StatusOr<StoredBlob> DecodeBlob(std::string_view value);

// S3 multipart uploads (namespace_store.h), in the meta family.
std::string EncodeMultipartUpload(const MultipartUploadRecord& upload);
absl::StatusOr<MultipartUploadRecord> DecodeMultipartUpload(std::string_view value);
// The part's number is in its key; the value holds the rest.
std::string EncodeMultipartPart(const MultipartPartRecord& part);
absl::StatusOr<MultipartPartRecord> DecodeMultipartPart(uint32_t number,
                                                        std::string_view value);

}  // namespace cairn
