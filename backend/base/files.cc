#include "backend/base/files.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backend/base/fs_error.h"

namespace cairn {

std::string AbsolutePath(const std::string& path) {
  std::string full = path;
  if (full.empty() || full[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) return path;
    full = absl::StrCat(cwd, "/", path);
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(full, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  return "/" + absl::StrJoin(parts, "/");
}

bool PathIsWithin(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status File::Allocate(uint64_t length) {
  const std::string zeros(1 << 20, '\0');
  for (uint64_t at = 0; at < length; at += zeros.size()) {
    const uint64_t n = std::min<uint64_t>(zeros.size(), length - at);
    if (absl::Status s = PWrite(at, std::string_view(zeros).substr(0, n)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status WriteFileSynced(Env* env, const std::string& path, std::string_view bytes,
                             uint32_t permissions) {
  absl::StatusOr<std::unique_ptr<File>> file =
      env->Open(path, OpenMode::kCreateOrTruncate, permissions);
  if (!file.ok()) return file.status();
  if (absl::Status s = (*file)->PWrite(0, bytes); !s.ok()) return s;
  if (absl::Status s = (*file)->Sync(); !s.ok()) return s;
  return (*file)->Close();
}

absl::Status WriteFileAtomically(Env* env, const std::string& path, std::string_view bytes,
                                 uint32_t permissions) {
  const std::string temp = path + ".tmp";
  if (absl::Status s = WriteFileSynced(env, temp, bytes, permissions); !s.ok()) {
    env->Remove(temp).IgnoreError();  // the write's error is the one to report
    return s;
  }
  // open() applied the umask; the mode asked for is what the file must have.
  if (absl::Status s = env->SetPermissions(temp, permissions); !s.ok()) return s;
  if (absl::Status s = env->Rename(temp, path); !s.ok()) return s;
  return env->SyncDir(DirName(path));
}

absl::Status ReplaceFile(Env* env, const std::string& path, std::string_view bytes,
                         uint32_t permissions) {
  const std::string temp = path + ".tmp";
  absl::StatusOr<std::unique_ptr<File>> file =
      env->Open(temp, OpenMode::kCreateOrTruncate, permissions);
  if (!file.ok()) return file.status();
  absl::Status written = (*file)->PWrite(0, bytes);
  if (written.ok()) written = (*file)->Close();
  if (!written.ok()) {
    env->Remove(temp).IgnoreError();  // the write's error is the one to report
    return written;
  }
  return env->Rename(temp, path);
}

absl::StatusOr<std::string> ReadFileToString(Env* env, const std::string& path) {
  absl::StatusOr<std::unique_ptr<File>> file = env->Open(path, OpenMode::kRead);
  if (!file.ok()) return file.status();
  absl::StatusOr<uint64_t> size = (*file)->Size();
  if (!size.ok()) return size.status();
  absl::StatusOr<std::string> data = (*file)->PRead(0, *size);
  if (!data.ok()) return data.status();
  // A file that grew meanwhile is read to its end.
  for (;;) {
    absl::StatusOr<std::string> more = (*file)->PRead(data->size(), 1 << 16);
    if (!more.ok()) return more.status();
    if (more->empty()) break;
    data->append(*more);
  }
  return data;
}

absl::Status CreateDirs(Env* env, const std::string& path, uint32_t permissions) {
  if (path.empty() || path == "/" || path == ".") return absl::OkStatus();
  absl::StatusOr<FileInfo> info = env->Stat(path);
  if (info.ok()) {
    if (info->is_directory) return absl::OkStatus();
    return FsError(FsErrorKind::kNotDirectory,
                   absl::StrCat(path, " exists and is not a directory"));
  }
  if (!IsNotFoundError(info.status())) return info.status();
  const std::string parent = DirName(path);
  if (absl::Status s = CreateDirs(env, parent, permissions); !s.ok()) return s;
  if (absl::Status s = env->CreateDir(path, permissions); !s.ok()) return s;
  // The new name is durable only once its directory is synced: data later
  // fsynced inside it must not vanish with it in a power cut.
  return env->SyncDir(parent);
}

absl::Status RemoveAll(Env* env, const std::string& path) {
  // Not following links: a link to a directory goes, never what it names.
  absl::StatusOr<FileInfo> info = env->Stat(path, /*follow_symlinks=*/false);
  if (!info.ok()) return IsNotFoundError(info.status()) ? absl::OkStatus() : info.status();
  if (!info->is_directory) return env->Remove(path);
  absl::StatusOr<std::vector<std::string>> names = env->ListDir(path);
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    if (absl::Status s = RemoveAll(env, path + "/" + name); !s.ok()) return s;
  }
  return env->RemoveDir(path);
}

}  // namespace cairn
