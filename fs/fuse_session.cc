#include "fs/fuse_session.h"

#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "backend/base/files.h"
#include "backend/base/log.h"
#include "fs/fuse_ops.h"
#include "fs/fuse_wire.h"

namespace cairn {
namespace {

// libfuse option values are comma separated; escape what would split them.
std::string EscapeOptionValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The kernel caps a FUSE mount's readahead at the device default (128 KiB)
// whatever max_readahead says; raising the mount's bdi setting lets
// sequential reads arrive as 1 MiB requests. Best effort: needs root. The
// device number comes from mountinfo, since a stat of the mountpoint would
// need the request loop, which is not running yet.
void RaiseReadahead(Env* env, const std::string& mountpoint) {
  absl::StatusOr<std::string> table = ReadFileToString(env, "/proc/self/mountinfo");
  if (!table.ok()) return;
  std::istringstream mountinfo(*table);
  std::string line, device;
  while (std::getline(mountinfo, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    if (point == mountpoint) device = dev;  // the last mount there is ours
  }
  if (device.empty()) return;
  absl::StatusOr<std::unique_ptr<File>> setting = env->Open(
      absl::StrCat("/sys/class/bdi/", device, "/read_ahead_kb"), OpenMode::kWriteExisting);
  if (setting.ok()) (*setting)->PWrite(0, "1024").IgnoreError();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FuseSession>> FuseSession::Mount(FsContext* context,
                                                                const FuseMountOptions& options) {
  std::string fuse_options = absl::StrCat("default_permissions,fsname=",
                                          EscapeOptionValue(options.source), ",subtype=cairn");
  // Mounted by root, a volume serves every user, as a kernel filesystem
  // does; the kernel enforces permissions (default_permissions).
  if (options.allow_other || geteuid() == 0) absl::StrAppend(&fuse_options, ",allow_other");
  if (options.read_only) absl::StrAppend(&fuse_options, ",ro");
  if (options.noatime) absl::StrAppend(&fuse_options, ",noatime");

  fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, "cairn");
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, fuse_options.c_str());
  if (options.debug) fuse_opt_add_arg(&args, "-d");
  fuse_session* session =
      fuse_session_new(&args, &CairnFuseOperations(context->fs->file_locks() != nullptr),
                       sizeof(fuse_lowlevel_ops), context);
  fuse_opt_free_args(&args);
  if (session != nullptr) context->session = session;
  if (session == nullptr) {
    return absl::InternalError(
        "could not create the FUSE session (see the message above); check "
        "that /dev/fuse exists and fuse3 is installed");
  }
  if (fuse_session_mount(session, options.mountpoint.c_str()) != 0) {
    fuse_session_destroy(session);
    return absl::FailedPreconditionError(absl::StrCat(
        "could not mount on ", options.mountpoint,
        " (see the message above); check that it is an empty directory you "
        "may mount on"));
  }
  if (int rc = InstallWireHooks(session); rc != 0) {
    // Only the round trip it saves is lost: writes ask for
    // security.capability again.
    LogWarning("could not install the FUSE request hooks (%s); writes will cost a "
               "GETXATTR request each", strerror(-rc));
  }
  RaiseReadahead(options.env, options.mountpoint);
  std::unique_ptr<FuseSession> mounted(new FuseSession(session, options.mountpoint, options.env));
  absl::StatusOr<std::unique_ptr<NamespaceWatch>> watch =
      ForgetRemoteChanges(context->fs->namespace_store(), mounted.get());
  if (watch.ok()) {
    mounted->watch_ = *std::move(watch);
  } else {
    // The kernel then keeps what it cached until its timeouts expire.
    LogWarning("not watching other hosts' changes (%s): this mount sees them only as the "
               "kernel's cache times out", watch.status().message());
  }
  return mounted;
}

FuseSession::~FuseSession() {
  watch_.reset();
  fuse_session_unmount(session_);
  fuse_session_destroy(session_);
}

int FuseSession::Run() {
  fuse_loop_config* loop_config = fuse_loop_cfg_create();
  // Threads that block (a writer waiting for room, a read of a remote
  // blob) must not starve the metadata requests behind them: with 16, a
  // metadata loop beside 8 fio writers ran half as fast. Idle threads are
  // kept: libfuse let all but 8 exit and started them again under load,
  // 473 thread starts per GiB written, each with a fresh 1 MiB buffer.
  fuse_loop_cfg_set_max_threads(loop_config, 32);
  fuse_loop_cfg_set_idle_threads(loop_config, 32);
  int rc = fuse_session_loop_mt(session_, loop_config);
  fuse_loop_cfg_destroy(loop_config);
  return rc;
}

void FuseSession::Stop() {
  LogInfo("stop requested: writing back cached data of %s", mountpoint_);
  absl::StatusOr<FileInfo> mount = env_->Stat(mountpoint_);
  if (absl::Status s = env_->SyncFilesystem(mountpoint_); !s.ok()) {
    LogError("writing back the kernel's cached data failed: %s", s.message());
  }
  fuse_session_exit(session_);
  if (umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
    std::string command = absl::StrCat("fusermount3 -u -z -- '", mountpoint_, "' 2>/dev/null");
    [[maybe_unused]] int rc = system(command.c_str());
  }
  // Files still open keep a detached mount alive; abort the connection so
  // the daemon can finish. Everything the kernel held was written back above.
  if (mount.ok()) {
    for (int i = 0; i < 50 && !fuse_session_exited(session_); ++i) usleep(20000);
    absl::StatusOr<std::unique_ptr<File>> abort = env_->Open(
        absl::StrCat("/sys/fs/fuse/connections/", minor(mount->device), "/abort"),
        OpenMode::kWriteExisting);
    if (abort.ok()) (*abort)->PWrite(0, "1").IgnoreError();
  }
}

void FuseSession::ForgetName(InodeId parent, const std::string& name) {
  int rc = fuse_lowlevel_notify_inval_entry(session_, parent, name.data(), name.size());
  // ENOENT: the kernel held nothing of it; ENOTCONN: unmounted meanwhile.
  if (rc != 0 && rc != -ENOENT && rc != -ENOTCONN) {
    LogWarning("could not have the kernel forget %s in directory %d: %s", name, parent,
               strerror(-rc));
  }
}

void FuseSession::ForgetInode(InodeId ino) {
  int rc = fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0);
  if (rc != 0 && rc != -ENOENT && rc != -ENOTCONN) {
    LogWarning("could not have the kernel forget inode %d: %s", ino, strerror(-rc));
  }
}

}  // namespace cairn
