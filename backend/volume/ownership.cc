#include "backend/volume/ownership.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"

namespace cairn {
namespace {

std::string ModeText(uint32_t permissions) { return absl::StrFormat("%04o", permissions); }

// What group and others may do with a directory, in words; "" for nothing.
std::string OthersMay(uint32_t permissions) {
  const bool read = permissions & 044, write = permissions & 022, enter = permissions & 011;
  if (!read && !write && !enter) return "";
  std::vector<std::string> may;
  if (read) may.push_back("read");
  if (write) may.push_back("write");
  if (enter) may.push_back("enter");
  return absl::StrCat("other users may ", absl::StrJoin(may, ", "), " it");
}

void CheckAncestors(Env* env, const std::string& root, uint32_t uid,
                    std::vector<OwnershipProblem>* problems) {
  for (std::string dir = DirName(root); !dir.empty(); dir = DirName(dir)) {
    absl::StatusOr<FileInfo> info = env->Stat(dir);
    if (info.ok()) {
      if (info->uid != 0 && info->uid != uid) {
        problems->push_back({dir, absl::StrCat("it is owned by user ", info->uid,
                                               ", who could replace ", root, " below it"),
                             absl::StrCat("keep the volume's directories under directories "
                                          "only root or user ", uid, " owns")});
      } else if ((info->permissions & 022) != 0 && (info->permissions & 01000) == 0) {
        problems->push_back(
            {dir,
             absl::StrCat("other users may write it (mode ", ModeText(info->permissions),
                          ") and so replace ", root, " below it"),
             absl::StrCat("chmod go-w ", dir)});
      }
    }
    if (dir == "/" || dir == ".") break;
  }
}

}  // namespace

std::vector<std::string> BackingStoreRoots(const std::string& volume_dir,
                                           const VolumeConfig& config) {
  std::vector<std::string> roots = {AbsolutePath(volume_dir)};
  if (!config.cache_dir.empty()) roots.push_back(AbsolutePath(config.cache_dir));
  for (const std::string& disk : config.DataDisks(volume_dir)) {
    roots.push_back(AbsolutePath(disk));
  }
  // A root inside another (the default cache_dir and data disk are inside
  // VOLUME_DIR) is checked once, as itself.
  std::sort(roots.begin(), roots.end());
  roots.erase(std::unique(roots.begin(), roots.end()), roots.end());
  return roots;
}

std::vector<OwnershipProblem> CheckVolumeOwnership(Env* env, const std::string& volume_dir,
                                                   const VolumeConfig& config, uint32_t uid,
                                                   bool check_roots) {
  std::vector<OwnershipProblem> problems;
  for (const std::string& root : BackingStoreRoots(volume_dir, config)) {
    CheckAncestors(env, root, uid, &problems);
    if (!check_roots) continue;
    absl::StatusOr<FileInfo> info = env->Stat(root);
    if (!info.ok() || !info->is_directory) continue;  // the open that needs it says so
    if (info->uid != uid) {
      problems.push_back({root,
                          absl::StrCat("it is owned by user ", info->uid, ", not by user ", uid,
                                       " who serves the volume"),
                          absl::StrCat("chown -R ", uid, " ", root)});
    } else if (std::string others = OthersMay(info->permissions); !others.empty()) {
      problems.push_back({root, absl::StrCat(others, " (mode ", ModeText(info->permissions), ")"),
                          absl::StrCat("chmod 700 ", root)});
    }
  }
  return problems;
}

absl::Status OwnershipError(const std::string& volume_dir,
                            const std::vector<OwnershipProblem>& problems) {
  if (problems.empty()) return absl::OkStatus();
  std::vector<std::string> lines;
  for (const OwnershipProblem& p : problems) {
    lines.push_back(absl::StrCat(p.path, ": ", p.why, "; fix: ", p.fix));
  }
  return FsError(FsErrorKind::kAccessDenied,
                 absl::StrCat("the backing store of volume ", volume_dir,
                              " is not its owner's alone, so other users could read the files' "
                              "data from it: ", absl::StrJoin(lines, "; "),
                              ". A volume made by an older cairn is made owner-only by: cairn "
                              "fsck --repair ", volume_dir));
}

absl::StatusOr<uint64_t> MakeVolumeOwnerOnly(
    Env* env, const std::string& volume_dir, const VolumeConfig& config,
    const std::function<void(const std::string&)>& on_fixed) {
  uint64_t changed = 0;
  std::function<absl::Status(const std::string&)> visit =
      [&](const std::string& path) -> absl::Status {
    // Never through a link: a link is left as it is, and what it names
    // is not the volume's.
    absl::StatusOr<FileInfo> info = env->Stat(path, /*follow_symlinks=*/false);
    if (!info.ok()) return IsNotFoundError(info.status()) ? absl::OkStatus() : info.status();
    if (info->is_symlink) return absl::OkStatus();
    const uint32_t wanted = info->is_directory ? 0700 : 0600;
    if (info->is_directory || info->is_regular) {
      if ((info->permissions & 07777) != wanted) {
        if (absl::Status s = env->SetPermissions(path, wanted); !s.ok()) return s;
        changed++;
        if (on_fixed) on_fixed(path);
      }
    }
    if (!info->is_directory) return absl::OkStatus();
    absl::StatusOr<std::vector<std::string>> names = env->ListDir(path);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      if (absl::Status s = visit(path + "/" + name); !s.ok()) return s;
    }
    return absl::OkStatus();
  };
  for (const std::string& root : BackingStoreRoots(volume_dir, config)) {
    if (absl::Status s = visit(root); !s.ok()) return s;
  }
  return changed;
}

}  // namespace cairn
