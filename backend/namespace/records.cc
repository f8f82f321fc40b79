#include "backend/namespace/records.h"

#include "absl/strings/str_cat.h"
#include "backend/base/coding.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

// Version 2 appended the journal mark; version 1 records read as mark 0.
constexpr uint32_t kInodeVersion = 2;
constexpr uint32_t kExtentVersion = 1;
constexpr uint32_t kMultipartVersion = 1;
// Bounds a hostile record's header count before anything is reserved.
constexpr uint32_t kMaxUploadHeaders = 4096;

absl::Status Corrupt(std::string_view what) {
  return FsError(FsErrorKind::kIo,
                 absl::StrCat("namespace record is corrupt: ",
                              absl::string_view(what.data(), what.size()),
                              "; run cairn fsck"));
}

void PutTime(std::string* out, const Timespec& t) {
  PutFixed64(out, static_cast<uint64_t>(t.sec));
  PutFixed32(out, t.nsec);
}

bool GetTime(Decoder* d, Timespec* t) {
  uint64_t sec;
  if (!d->Fixed64(&sec) || !d->Fixed32(&t->nsec)) return false;
  t->sec = static_cast<int64_t>(sec);
  return t->nsec < 1000000000u;
}

}  // namespace

std::string InodeKey(InodeId ino) {
  std::string key;
  PutBigEndian64(&key, ino);
  return key;
}
std::string DentryPrefix(InodeId parent) { return InodeKey(parent); }
std::string DentryKey(InodeId parent, std::string_view name) {
  std::string key = InodeKey(parent);
  key.append(name);
  return key;
}
std::string CookieKey(InodeId parent, uint64_t cookie) {
  std::string key = InodeKey(parent);
  PutBigEndian64(&key, cookie);
  return key;
}
std::string XattrKey(InodeId ino, std::string_view name) {
  return DentryKey(ino, name);
}
std::string ExtentKey(InodeId ino, uint64_t file_offset) {
  return CookieKey(ino, file_offset);
}
std::string BlobKey(BlobId id) { return InodeKey(id); }
std::string GcKey(uint64_t ready_sec, BlobId id) {
  return CookieKey(ready_sec, id);
}

uint64_t KeyNumberAt(std::string_view key, size_t position) {
  if (key.size() < position + 8) return 0;
  return DecodeBigEndian64(key.data() + position);
}

std::string EncodeInode(const InodeRecord& r) {
  std::string out;
  PutFixed32(&out, kInodeVersion);
  PutFixed32(&out, r.attr.mode);
  PutFixed32(&out, r.attr.uid);
  PutFixed32(&out, r.attr.gid);
  PutFixed32(&out, r.attr.nlink);
  PutFixed64(&out, r.attr.size);
  PutFixed64(&out, r.attr.rdev);
  PutFixed64(&out, r.attr.allocated_bytes);
  PutTime(&out, r.attr.atime);
  PutTime(&out, r.attr.mtime);
  PutTime(&out, r.attr.ctime);
  PutTime(&out, r.attr.btime);
  PutFixed64(&out, r.attr.parent);
  PutFixed64(&out, r.next_cookie);
  PutBytes(&out, r.symlink_target);
  PutFixed64(&out, r.journal_mark);
  return out;
}

absl::StatusOr<InodeRecord> DecodeInode(InodeId ino, std::string_view value) {
  Decoder d(value);
  InodeRecord r;
  r.attr.ino = ino;
  uint32_t version;
  if (!d.Fixed32(&version) || version < 1 || version > kInodeVersion) {
    return Corrupt(absl::StrCat("inode ", ino, " has an unknown version"));
  }
  if (!d.Fixed32(&r.attr.mode) || !d.Fixed32(&r.attr.uid) ||
      !d.Fixed32(&r.attr.gid) || !d.Fixed32(&r.attr.nlink) ||
      !d.Fixed64(&r.attr.size) || !d.Fixed64(&r.attr.rdev) ||
      !d.Fixed64(&r.attr.allocated_bytes) || !GetTime(&d, &r.attr.atime) ||
      !GetTime(&d, &r.attr.mtime) || !GetTime(&d, &r.attr.ctime) ||
      !GetTime(&d, &r.attr.btime) || !d.Fixed64(&r.attr.parent) ||
      !d.Fixed64(&r.next_cookie) || !d.Bytes(&r.symlink_target) ||
      (version >= 2 && !d.Fixed64(&r.journal_mark)) || !d.empty()) {
    return Corrupt(absl::StrCat("inode ", ino, " is truncated or malformed"));
  }
  return r;
}

std::string EncodeDentry(const DentryValue& v) {
  std::string out;
  PutFixed64(&out, v.ino);
  PutFixed32(&out, v.mode);
  PutFixed64(&out, v.cookie);
  return out;
}

absl::StatusOr<DentryValue> DecodeDentry(std::string_view value) {
  Decoder d(value);
  DentryValue v;
  if (!d.Fixed64(&v.ino) || !d.Fixed32(&v.mode) || !d.Fixed64(&v.cookie) ||
      !d.empty()) {
    return Corrupt("directory entry");
  }
  return v;
}

std::string EncodeCookieEntry(std::string_view name, const DentryValue& v) {
  std::string out;
  PutBytes(&out, name);
  PutFixed64(&out, v.ino);
  PutFixed32(&out, v.mode);
  return out;
}

absl::StatusOr<DirEntry> DecodeCookieEntry(uint64_t cookie,
                                           std::string_view value) {
  Decoder d(value);
  DirEntry e;
  e.cookie = cookie;
  if (!d.Bytes(&e.name) || !d.Fixed64(&e.ino) || !d.Fixed32(&e.mode) ||
      !d.empty()) {
    return Corrupt("directory listing entry");
  }
  return e;
}

std::string EncodeExtent(const Extent& e) {
  std::string out;
  PutFixed32(&out, kExtentVersion);
  PutFixed64(&out, e.length);
  PutFixed64(&out, e.blob_id);
  PutFixed64(&out, e.blob_offset);
  PutBytes(&out, e.inline_data);
  return out;
}

absl::StatusOr<Extent> DecodeExtent(uint64_t file_offset,
                                    std::string_view value) {
  Decoder d(value);
  Extent e;
  e.file_offset = file_offset;
  uint32_t version;
  if (!d.Fixed32(&version) || version != kExtentVersion ||
      !d.Fixed64(&e.length) || !d.Fixed64(&e.blob_id) ||
      !d.Fixed64(&e.blob_offset) || !d.Bytes(&e.inline_data) || !d.empty() ||
      (e.blob_id == kNoBlob && e.inline_data.size() != e.length)) {
    return Corrupt(absl::StrCat("extent at offset ", file_offset));
  }
  return e;
}

std::string EncodeBlob(const StoredBlob& b) {
  std::string out;
  PutFixed64(&out, b.record.length);
  PutFixed32(&out, b.record.crc32c);
  PutFixed64(&out, b.record.refcount);
  PutFixed64(&out, b.gc_ready_sec);
  PutFixed64(&out, b.record.live_bytes);
  PutFixed64(&out, b.record.owner);
  // Absent for local blobs, so their records stay as they were.
  if (b.record.location != BlobLocation::kLocal) {
    out.push_back(static_cast<char>(b.record.location));
  }
  return out;
}

absl::StatusOr<StoredBlob> DecodeBlob(std::string_view value) {
  Decoder d(value);
  StoredBlob b;
  if (!d.Fixed64(&b.record.length) || !d.Fixed32(&b.record.crc32c) ||
      !d.Fixed64(&b.record.refcount) || !d.Fixed64(&b.gc_ready_sec)) {
    return Corrupt("blob record");
  }
  if (d.empty()) {  // recorded before live bytes and owners were tracked
    b.record.live_bytes = b.record.length;
    return b;
  }
  if (!d.Fixed64(&b.record.live_bytes) || !d.Fixed64(&b.record.owner)) {
    return Corrupt("blob record");
  }
  std::string_view rest = d.rest();
  if (rest.size() == 1 && static_cast<uint8_t>(rest[0]) <= 3 && rest[0] != 0) {
    b.record.location = static_cast<BlobLocation>(rest[0]);
  } else if (!rest.empty()) {
    return Corrupt("blob record");
  }
  return b;
}

std::string EncodeMultipartUpload(const MultipartUploadRecord& u) {
  std::string out;
  PutFixed32(&out, kMultipartVersion);
  PutBytes(&out, u.bucket);
  PutBytes(&out, u.key);
  PutFixed32(&out, u.uid);
  PutFixed32(&out, u.gid);
  PutBytes(&out, u.access_key);
  PutTime(&out, u.initiated);
  PutBytes(&out, u.checksum_header);
  PutFixed32(&out, static_cast<uint32_t>(u.headers.size()));
  for (const auto& [name, value] : u.headers) {
    PutBytes(&out, name);
    PutBytes(&out, value);
  }
  return out;
}

absl::StatusOr<MultipartUploadRecord> DecodeMultipartUpload(std::string_view value) {
  Decoder d(value);
  MultipartUploadRecord u;
  uint32_t version = 0, headers = 0;
  if (!d.Fixed32(&version) || version != kMultipartVersion) {
    return Corrupt("multipart upload of an unknown version");
  }
  if (!d.Bytes(&u.bucket) || !d.Bytes(&u.key) || !d.Fixed32(&u.uid) || !d.Fixed32(&u.gid) ||
      !d.Bytes(&u.access_key) || !GetTime(&d, &u.initiated) || !d.Bytes(&u.checksum_header) ||
      !d.Fixed32(&headers) || headers > kMaxUploadHeaders) {
    return Corrupt("multipart upload record");
  }
  for (uint32_t i = 0; i < headers; ++i) {
    std::string name, text;
    if (!d.Bytes(&name) || !d.Bytes(&text)) return Corrupt("multipart upload header");
    u.headers.emplace_back(std::move(name), std::move(text));
  }
  if (!d.empty()) return Corrupt("multipart upload record has trailing bytes");
  return u;
}

std::string EncodeMultipartPart(const MultipartPartRecord& p) {
  std::string out;
  PutFixed32(&out, kMultipartVersion);
  PutFixed64(&out, p.ino);
  PutFixed64(&out, p.size);
  PutBytes(&out, p.etag);
  PutBytes(&out, p.checksum);
  PutTime(&out, p.modified);
  return out;
}

absl::StatusOr<MultipartPartRecord> DecodeMultipartPart(uint32_t number,
                                                        std::string_view value) {
  Decoder d(value);
  MultipartPartRecord p;
  p.number = number;
  uint32_t version = 0;
  if (!d.Fixed32(&version) || version != kMultipartVersion) {
    return Corrupt("multipart part of an unknown version");
  }
  if (!d.Fixed64(&p.ino) || !d.Fixed64(&p.size) || !d.Bytes(&p.etag) || !d.Bytes(&p.checksum) ||
      !GetTime(&d, &p.modified) || !d.empty()) {
    return Corrupt("multipart part record");
  }
  return p;
}

}  // namespace cairn
