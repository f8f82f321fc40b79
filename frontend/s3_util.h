// What the S3 frontend's parts share: the XML and HTTP text forms, ETags,
// the permission check a key's uid and gid get, and conditional requests.
// Internal to frontend/.
#pragma once

#include <fcntl.h>
#include <openssl/evp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "backend/base/fs_error.h"
#include "fs/file_system.h"
#include "frontend/s3_auth.h"
#include "frontend/s3_handler.h"

namespace cairn::frontend {

inline constexpr char kXmlHeader[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
inline constexpr char kXmlns[] = "http://s3.amazonaws.com/doc/2006-03-01/";
// Where an object's S3-only facts live: xattrs of its file, so that they
// travel with it (rename, cp -a, backups) and the mount shows them.
inline constexpr char kEtagXattr[] = "user.s3.etag";
inline constexpr char kContentTypeXattr[] = "user.s3.content-type";
inline constexpr char kMetaXattrPrefix[] = "user.s3.meta.";
inline constexpr char kDirObjectXattr[] = "user.s3.dir";
inline constexpr char kChecksumXattr[] = "user.s3.checksum";
inline constexpr char kHeaderXattrPrefix[] = "user.s3.header.";
inline constexpr char kPartsXattr[] = "user.s3.parts";
inline constexpr char kUploadXattr[] = "user.s3.upload";
inline constexpr char kEmptyMd5[] = "d41d8cd98f00b204e9800998ecf8427e";
// Bytes moved per read or write of a body.
inline constexpr size_t kIoBytes = 1 << 20;
inline constexpr int kMayRead = 4, kMayWrite = 2, kMaySearch = 1;

// Debian's Abseil has its own string_view type.
inline absl::string_view Absl(std::string_view text) { return {text.data(), text.size()}; }

// Control characters as character references ("\r" is "&#13;").
std::string XmlEscape(std::string_view text);
std::string XmlUnescape(std::string_view text);
// encoding-type=url: keys as S3 encodes them (RFC 3986, '/' kept).
std::string UrlEncode(std::string_view text);
// What the listings (ListObjects, ListMultipartUploads) share:
// encoding-type, which is url or absent (InvalidArgument else); a key,
// prefix, delimiter or marker as a listing writes it, url-encoded when
// asked; and a max-keys-like limit `name`, a whole number >= 0 that S3
// caps at 1000 (InvalidArgument for anything else; 1000 when absent).
absl::StatusOr<bool> ListingUrlEncoded(const S3Request& request);
std::string ListingText(std::string_view text, bool url_encoded);
absl::StatusOr<size_t> ListingLimit(const S3Request& request, const std::string& name);
// %XX decoded; anything else kept as it is.
std::string PercentDecode(std::string_view text);
std::string HttpDate(const Timespec& t);  // "Sun, 06 Nov 1994 08:49:37 GMT"
std::string IsoDate(const Timespec& t);   // "2026-12-05T14:00:00.000Z"
std::optional<int64_t> ParseHttpDate(const std::string& text);

class Md5 {
 public:
  Md5() : context_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(context_, EVP_md5(), nullptr); }
  ~Md5() { EVP_MD_CTX_free(context_); }
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void Update(std::string_view data) { EVP_DigestUpdate(context_, data.data(), data.size()); }
  std::string Finish() {  // the raw 16 bytes
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(context_, digest, &size);
    return std::string(reinterpret_cast<char*>(digest), size);
  }

 private:
  EVP_MD_CTX* context_;
};

std::string Quoted(std::string_view etag);
std::string Unquoted(std::string_view etag);  // also drops a weak "W/"
// What an object's stored ETag is valid for: the file's size and mtime when
// it was written. A write through the mount changes them (the kernel sets
// mtime), so a stale MD5 is never served for other bytes.
std::string EtagStamp(const std::string& etag, const InodeAttr& attr);
// The ETag of an object, unquoted: the one an S3 write recorded, if the
// file did not change since; else a value derived from the inode, size
// and mtime, which changes with every change of content, with "-1" so
// that no client takes it for an MD5.
std::string EtagOf(FileSystem& fs, const InodeAttr& attr);
// The x-amz-checksum-* header and value a PUT was checked against, kept
// for the size and mtime the object had: ChecksumOf returns it only while
// the file still has them.
std::string ChecksumStamp(const std::pair<std::string, std::string>& checksum,
                          const InodeAttr& attr);
std::optional<std::pair<std::string, std::string>> ChecksumOf(FileSystem& fs,
                                                              const InodeAttr& attr);
// What S3 computes for an object uploaded without a checksum.
inline constexpr char kDefaultChecksumHeader[] = "x-amz-checksum-crc64nvme";
// The x-amz-checksum-* header of an algorithm as requests name it
// (x-amz-checksum-algorithm: "CRC64NVME", any case); nullopt for others.
std::optional<std::string> ChecksumHeaderOfAlgorithm(std::string_view algorithm);
// The element of a checksum in XML answers: "x-amz-checksum-crc32c" is
// "ChecksumCRC32C".
std::string ChecksumElement(std::string_view header);
// Whether a checksum value is a multipart upload's composite one
// ("BASE64-N": base64 has no '-').
inline bool IsCompositeChecksum(std::string_view value) {
  return value.find('-') != std::string_view::npos;
}
// Whether the request sends a checksum of its body (a header, or a trailer
// x-amz-trailer announces).
bool SendsChecksum(const S3Request& request);

// The multipart upload that made an object, kept with it (so that a
// Complete repeated after a restart answers as the first did): its id,
// stamped as the ETag is, so that UploadOf names it only while the file
// is as that Complete left it.
std::string UploadStamp(const std::string& upload_id, const InodeAttr& attr);
std::optional<std::string> UploadOf(FileSystem& fs, const InodeAttr& attr);

// The sizes of a multipart upload's parts, kept with its object (for GET
// ?partNumber=): "SIZE,SIZE,..." stamped as the ETag is.
std::string PartSizesStamp(const std::vector<uint64_t>& sizes, const InodeAttr& attr);
std::optional<std::vector<uint64_t>> PartSizesOf(FileSystem& fs, const InodeAttr& attr);

// Where a key's path leads: its parent directory (if every directory on
// the way exists) and what has its last name.
struct Resolved {
  std::optional<InodeAttr> parent;  // nullopt: a directory on the way is missing
  std::optional<InodeAttr> target;  // nullopt: nothing has the last name
  bool parent_is_file = false;      // a component on the way is not a directory
};
absl::StatusOr<Resolved> Resolve(FileSystem& fs, const InodeAttr& bucket, const KeyPath& path,
                                 const S3Key& who);

// Whether the key's uid and gid may do `mask` (kMayRead, kMayWrite,
// kMaySearch) to the inode, by its mode bits as the kernel would decide.
bool MayAccess(const InodeAttr& attr, const S3Key& who, int mask);
absl::Status Denied(std::string_view what);
// Whether anything below `dir` is an object (a regular file, or a
// directory marked as one): a tree of empty directories holds no key.
// Directories the key may not read count as holding none.
bool HasObjectBelow(FileSystem& fs, const InodeAttr& dir, const S3Key& who);
// Removes the empty directories below `dir` (none of which holds an
// object), deepest first, as far as the key may; `forget` hears of each.
// False if one stays.
bool RemoveEmptyTree(FileSystem& fs, const InodeAttr& dir, const S3Key& who,
                     const std::function<void(InodeId, const std::string&)>& forget);
bool IsKind(const absl::Status& status, FsErrorKind kind);
// A volume failure as S3 sees it: the few POSIX conditions with an S3
// name get it; the rest stay failures of the server (500).
absl::Status AsS3(absl::Status status);

struct Condition {
  std::optional<std::string> if_match, if_none_match;
  std::optional<int64_t> if_modified_since, if_unmodified_since;
};
// The If-* headers (`prefix` "x-amz-copy-source-" for a copy's source).
Condition ConditionOf(const std::map<std::string, std::string>& headers,
                      const std::string& prefix = "");
// RFC 7232's order: If-Match, else If-Unmodified-Since (412); then
// If-None-Match, else If-Modified-Since (304 for reads, 412 for writes).
absl::Status CheckCondition(const Condition& c, const std::string& etag, const Timespec& mtime,
                            bool read);

// The headers a PUT sets and GET returns (x-amz-meta-*, Content-Type,
// Cache-Control, Content-Disposition, Content-Encoding, Content-Language,
// Expires), each kept in an xattr of the object's file.
bool IsStoredHeader(const std::string& lower_name);
std::string XattrOfHeader(const std::string& lower_name);
// The header an xattr keeps (lower case), if it keeps one.
std::optional<std::string> HeaderOfXattr(const std::string& xattr);

std::string HeaderOr(const S3Request& request, const std::string& name,
                     const std::string& fallback = "");

// A body read from a file of the volume: [offset, end) of it.
class FileBodyReader final : public BodyReader {
 public:
  FileBodyReader(FileSystem& fs, InodeId ino, uint64_t offset, uint64_t end)
      : fs_(fs), ino_(ino), offset_(offset), end_(end) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;

 private:
  FileSystem& fs_;
  const InodeId ino_;
  uint64_t offset_;
  const uint64_t end_;
};

// Passes a body through, computing a checksum of what it reads: the one
// S3 keeps for objects uploaded without a checksum, or the one a copy
// asks for.
class ChecksummingBody final : public BodyReader {
 public:
  // `header`: a name PayloadChecksum::For knows.
  ChecksummingBody(BodyReader& inner, std::string header)
      : inner_(inner), header_(std::move(header)), checksum_(PayloadChecksum::For(header_)) {}
  absl::StatusOr<size_t> Read(char* buffer, size_t size) override;
  // The inner body's: what the client sent.
  std::optional<std::pair<std::string, std::string>> Checksum() const override {
    return inner_.Checksum();
  }
  // The header and the value computed over what was read; once.
  std::pair<std::string, std::string> Computed() { return {header_, checksum_->Finish()}; }

 private:
  BodyReader& inner_;
  const std::string header_;
  std::unique_ptr<PayloadChecksum> checksum_;
};

// Keeps a file open (opened by the caller, read-only) until destroyed.
class OpenFile {
 public:
  OpenFile(FileSystem& fs, InodeId ino) : fs_(fs), ino_(ino) {}
  ~OpenFile() { fs_.Release(ino_, O_RDONLY); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

 private:
  FileSystem& fs_;
  const InodeId ino_;
};

}  // namespace cairn::frontend
