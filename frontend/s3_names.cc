#include "frontend/s3_names.h"

#include "absl/strings/str_split.h"
#include "frontend/s3_error.h"

namespace cairn::frontend {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool LooksLikeIpv4(std::string_view name) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::string_view(name.data(), name.size()), '.');
  if (parts.size() != 4) return false;
  for (absl::string_view part : parts) {
    if (part.empty() || part.size() > 3) return false;
    for (char c : part) {
      if (c < '0' || c > '9') return false;
    }
  }
  return true;
}

}  // namespace

bool IsValidBucketName(std::string_view name) {
  if (name.size() < 3 || name.size() > 63) return false;
  if (!IsLowerAlnum(name.front()) || !IsLowerAlnum(name.back())) return false;
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '.' && c != '-') return false;
  }
  for (std::string_view bad : {"..", ".-", "-."}) {
    if (name.find(bad) != std::string_view::npos) return false;
  }
  return !LooksLikeIpv4(name);
}

absl::StatusOr<KeyPath> ParseKey(std::string_view key) {
  if (key.empty()) return S3Error(S3ErrorCode::kInvalidArgument, "the object key is empty");
  if (key.size() > 1024) {
    return S3Error(S3ErrorCode::kKeyTooLongError, "the key is longer than 1024 bytes");
  }
  if (key.find('\0') != std::string_view::npos) {
    return S3Error(S3ErrorCode::kInvalidArgument, "the key holds a NUL byte");
  }
  KeyPath path;
  path.dir_key = key.back() == '/';
  if (path.dir_key) key.remove_suffix(1);
  for (absl::string_view part : absl::StrSplit(absl::string_view(key.data(), key.size()), '/')) {
    if (part.empty() || part == "." || part == "..") {
      return S3Error(S3ErrorCode::kInvalidArgument,
                     "the key has an empty, '.' or '..' path component, which a file "
                     "tree cannot hold; use a key without them");
    }
    if (part.size() > 255) {
      return S3Error(S3ErrorCode::kKeyTooLongError,
                     "a path component of the key is longer than 255 bytes");
    }
    path.components.emplace_back(part);
  }
  return path;
}

}  // namespace cairn::frontend
