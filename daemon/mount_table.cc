#include "daemon/mount_table.h"

#include <libmount/libmount.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace cairn::cli {
namespace {

struct UpdateDeleter {
  void operator()(libmnt_update* update) const { mnt_free_update(update); }
};
struct FsDeleter {
  void operator()(libmnt_fs* fs) const { mnt_unref_fs(fs); }
};

// libmount keeps only userspace options (x-*) in the table; this one is
// what makes the entry worth keeping.
constexpr char kTableOptions[] = "x-cairn";

// Applies `update` under libmount's own lock of the table.
absl::Status Apply(libmnt_update* update, int set_rc, const std::string& what) {
  if (set_rc != 0) {
    return absl::InternalError(absl::StrCat(what, ": ", strerror(set_rc < 0 ? -set_rc : set_rc)));
  }
  if (!mnt_update_is_ready(update)) return absl::OkStatus();  // nothing to record
  if (int rc = mnt_update_table(update, nullptr); rc != 0) {
    return absl::InternalError(absl::StrCat(what, ": ", strerror(rc < 0 ? -rc : rc)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RecordInMountTable(const std::string& volume_dir, const std::string& mountpoint) {
  std::unique_ptr<libmnt_update, UpdateDeleter> update(mnt_new_update());
  std::unique_ptr<libmnt_fs, FsDeleter> fs(mnt_new_fs());
  if (!update || !fs) return absl::ResourceExhaustedError("libmount: out of memory");
  if (mnt_fs_set_source(fs.get(), volume_dir.c_str()) != 0 ||
      mnt_fs_set_target(fs.get(), mountpoint.c_str()) != 0 ||
      mnt_fs_set_fstype(fs.get(), "fuse.cairn") != 0 ||
      mnt_fs_set_options(fs.get(), kTableOptions) != 0) {
    return absl::ResourceExhaustedError("libmount: out of memory");
  }
  return Apply(update.get(), mnt_update_set_fs(update.get(), 0, nullptr, fs.get()),
               "recording the mount in /run/mount/utab");
}

void ForgetInMountTable(const std::string& mountpoint) {
  std::unique_ptr<libmnt_update, UpdateDeleter> update(mnt_new_update());
  if (!update) return;
  (void)Apply(update.get(), mnt_update_set_fs(update.get(), 0, mountpoint.c_str(), nullptr),
              "forgetting the mount");
}

}  // namespace cairn::cli
