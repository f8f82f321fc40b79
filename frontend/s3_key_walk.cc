#include "frontend/s3_key_walk.h"

#include <sys/stat.h>

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "backend/base/fs_error.h"
#include "frontend/s3_util.h"

namespace cairn::frontend {
namespace {

// The entry's name as it sorts among keys: a directory's keys all start
// with "name/".
std::string SortKey(const DirEntry& entry) {
  return S_ISDIR(entry.mode) ? entry.name + "/" : entry.name;
}

// The least string after every name (at most 255 bytes) that starts with
// `prefix`.
std::string PastNamesStartingWith(const std::string& prefix) {
  std::string next = prefix;
  while (!next.empty() && static_cast<unsigned char>(next.back()) == 0xff) next.pop_back();
  if (next.empty()) return prefix + std::string(256, '\xff');
  next.back() = static_cast<char>(static_cast<unsigned char>(next.back()) + 1);
  return next;
}

}  // namespace

KeyWalk::KeyWalk(FileSystem& fs, const S3Key& who, std::string prefix, std::string delimiter,
                 std::string after, size_t max)
    : fs_(fs), who_(who), prefix_(std::move(prefix)), delimiter_(std::move(delimiter)),
      after_(std::move(after)), max_(max) {}

absl::Status KeyWalk::Run(const InodeAttr& bucket) {
  if (max_ == 0) return absl::OkStatus();
  // A marker past every key with the prefix leaves nothing to list.
  if (after_ > prefix_ && !absl::StartsWith(after_, prefix_)) return absl::OkStatus();
  // Start in the directory the prefix's complete components name.
  InodeAttr dir = bucket;
  std::string dir_key;
  size_t slash = prefix_.rfind('/');
  if (slash != std::string::npos) {
    for (absl::string_view part : absl::StrSplit(prefix_.substr(0, slash), '/')) {
      if (part.empty() || part == "." || part == "..") return absl::OkStatus();
      absl::StatusOr<InodeAttr> next = fs_.Find(dir.ino, std::string(part));
      if (!next.ok()) {
        if (IsNotFoundError(next.status())) return absl::OkStatus();
        return next.status();
      }
      if (!S_ISDIR(next->mode) || !MayAccess(*next, who_, kMaySearch)) {
        return absl::OkStatus();
      }
      dir = *next;
      absl::StrAppend(&dir_key, part, "/");
    }
  }
  // A prefix that names a directory ("a/"): the directory's own key, if it
  // is an object, starts with the prefix too and comes before its keys.
  if (!dir_key.empty() && dir_key == prefix_ && dir_key > after_ &&
      fs_.GetXattr(dir.ino, kDirObjectXattr).ok()) {
    if (!Emit(Item{dir_key, false, dir.ino, true})) return absl::OkStatus();
  }
  return Walk(dir, dir_key).status();
}

bool KeyWalk::Emit(Item item) {
  if (items_.size() == max_) {
    truncated_ = true;
    return false;
  }
  items_.push_back(std::move(item));
  return true;
}

absl::StatusOr<bool> KeyWalk::Walk(const InodeAttr& dir, const std::string& dir_key) {
  if (!MayAccess(dir, who_, kMayRead | kMaySearch)) return true;  // as find(1) skips it
  Scan scan;
  scan.dir = dir;
  scan.dir_key = dir_key;
  // Below the walk's first directory every name may hold keys with the
  // prefix; in the first, only names that start with the prefix's rest.
  const std::string partial =
      prefix_.size() > dir_key.size() ? prefix_.substr(dir_key.size()) : std::string();
  std::string start;
  if (absl::Status s = Seek(scan, start); !s.ok()) return s;
  // Names come in byte order; keys are visited in key order: a directory
  // waits in scan.pending until the names that sort before its "name/"
  // have gone by.
  for (;;) {
    bool reseek = false;
    std::string resume;  // where the next scan starts, when `reseek`
    absl::Status failed;
    absl::Status scanned = fs_.ScanDir(dir.ino, start, [&](const DirEntry& entry) {
      // The names that start with `partial` are together: past them, done.
      if (!absl::StartsWith(entry.name, partial)) return false;
      // Names a settled common prefix covers are skipped with one seek.
      auto skipped = [&] {
        if (scan.skip_to.empty()) return false;
        if (entry.name < scan.skip_to) {
          resume = std::move(scan.skip_to);
          scan.skip_to.clear();
          reseek = true;
          return true;
        }
        scan.skip_to.clear();
        return false;
      };
      if (skipped()) return false;
      if (!S_ISREG(entry.mode) && !S_ISDIR(entry.mode)) return true;
      const std::string sort_key = SortKey(entry);
      failed = VisitPendingBefore(scan, &sort_key);
      if (!failed.ok() || scan.stop || skipped()) return false;
      if (S_ISDIR(entry.mode)) {
        scan.pending.push_back(entry);
        return true;
      }
      failed = Visit(scan, entry);
      return failed.ok() && !scan.stop;
    });
    if (!failed.ok()) return failed;
    if (!scanned.ok()) return scanned;
    if (scan.stop) return false;
    if (!reseek) break;
    start = std::move(resume);
  }
  if (absl::Status s = VisitPendingBefore(scan, nullptr); !s.ok()) return s;
  return !scan.stop;
}

absl::Status KeyWalk::Seek(Scan& scan, std::string& start) {
  const std::string& dir_key = scan.dir_key;
  start = prefix_.size() > dir_key.size() ? prefix_.substr(dir_key.size()) : std::string();
  // A marker before this directory's keys (or before the prefix) passes
  // none of them. Run left no marker past them all.
  if (!absl::StartsWith(after_, dir_key) || after_.size() == dir_key.size() || after_ < prefix_) {
    return absl::OkStatus();
  }
  // The marker's name in this directory. It starts with the prefix's rest,
  // as the marker starts with the prefix (Run).
  std::string_view rest = std::string_view(after_).substr(dir_key.size());
  std::string name(rest.substr(0, rest.find('/')));
  // Directories whose names come at or before `name` but whose keys are
  // after the marker: `name` itself, and each prefix of it followed by a
  // byte below '/' (directory "a" when the marker is "a-b"): the last one
  // found sorts first. Files there are all before the marker.
  for (size_t n = std::max<size_t>(start.size(), 1); n <= name.size(); ++n) {
    if (n < name.size() && static_cast<unsigned char>(name[n]) >= '/') continue;
    std::string candidate = name.substr(0, n);
    absl::StatusOr<InodeAttr> found = fs_.Find(scan.dir.ino, candidate);
    if (!found.ok()) {
      if (IsNotFoundError(found.status())) continue;
      return found.status();
    }
    if (S_ISDIR(found->mode)) {
      scan.pending.push_back(DirEntry{std::move(candidate), found->ino,
                                      static_cast<uint32_t>(found->mode & S_IFMT), 0});
    }
  }
  start = name + std::string(1, '\0');  // the names after `name`
  return absl::OkStatus();
}

absl::Status KeyWalk::VisitPendingBefore(Scan& scan, const std::string* sort_key) {
  while (!scan.pending.empty() && !scan.stop) {
    if (sort_key != nullptr && !(scan.pending.back().name + "/" < *sort_key)) break;
    DirEntry entry = std::move(scan.pending.back());
    scan.pending.pop_back();
    if (absl::Status s = Visit(scan, entry); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status KeyWalk::Visit(Scan& scan, const DirEntry& entry) {
  const std::string key = scan.dir_key + SortKey(entry);
  if (!absl::StartsWith(key, prefix_)) return absl::OkStatus();
  if (!delimiter_.empty()) {
    size_t at = key.find(delimiter_, prefix_.size());
    if (at != std::string::npos) {
      // This entry's keys (a file's own, or all below a directory, which
      // start with its key) roll up into one common prefix.
      std::string common = key.substr(0, at + delimiter_.size());
      bool settled = common <= after_ || (!items_.empty() && items_.back().key == common);
      if (!settled && HoldsAKey(entry)) {
        if (!Emit(Item{common, true})) {
          scan.stop = true;
          return absl::OkStatus();
        }
        settled = true;
      }
      // When the common prefix ends inside the name, the names after it
      // that start the same way roll up into it too: skip them. (It ends
      // past this directory's key: else the walk would not be here.)
      std::string covered = common.substr(scan.dir_key.size());
      if (settled && covered.back() != '/') scan.skip_to = PastNamesStartingWith(covered);
      return absl::OkStatus();
    }
  }
  if (!S_ISDIR(entry.mode)) {
    if (key > after_ && !Emit(Item{key, false, entry.ino})) scan.stop = true;
    return absl::OkStatus();
  }
  // A directory: all its keys start with `key`; none is after the marker
  // when the marker passed them all.
  if (key < after_ && !absl::StartsWith(after_, key)) return absl::OkStatus();
  absl::StatusOr<InodeAttr> child = fs_.GetAttr(entry.ino);
  if (!child.ok()) return absl::OkStatus();  // removed while listed
  if (key > after_ && fs_.GetXattr(entry.ino, kDirObjectXattr).ok()) {
    if (!Emit(Item{key, false, entry.ino, true})) {
      scan.stop = true;
      return absl::OkStatus();
    }
  }
  if (!MayAccess(*child, who_, kMaySearch)) return absl::OkStatus();
  absl::StatusOr<bool> more = Walk(*child, key);
  if (!more.ok()) return more.status();
  if (!*more) scan.stop = true;
  return absl::OkStatus();
}

bool KeyWalk::HoldsAKey(const DirEntry& entry) {
  if (!S_ISDIR(entry.mode)) return true;
  if (fs_.GetXattr(entry.ino, kDirObjectXattr).ok()) return true;
  absl::StatusOr<InodeAttr> attr = fs_.GetAttr(entry.ino);
  return attr.ok() && HasObjectBelow(fs_, *attr, who_);
}

}  // namespace cairn::frontend
