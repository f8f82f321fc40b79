// A mount of an FsContext through the kernel's FUSE: the libfuse session,
// its request loop, and a stop that loses nothing the kernel still holds.
//
// Why not libfuse's own signal handlers: they end the loop at once, and with
// the writeback cache on, pages the kernel still holds dirty would then be
// lost when the mount goes away. Stop first asks the kernel to write
// everything back (syncfs, served by the still-running loop), then detaches
// the mount so the loop ends. Signals are the daemon's to catch; it calls
// Stop.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "backend/base/env.h"
#include "backend/base/types.h"
#include "fs/fs_context.h"
#include "fs/kernel_invalidation.h"

struct fuse_session;

namespace cairn {

struct FuseMountOptions {
  std::string mountpoint;
  std::string source;        // what mount(8) lists as the device (the volume)
  bool allow_other = false;  // let users other than the mounter in
  bool read_only = false;
  bool debug = false;        // libfuse request tracing to stderr
  bool noatime = false;      // never update atime on read
  // The kernel's files of the mount (/proc, /sys) are reached through it.
  Env* env = Env::Default();
};

class FuseSession : public KernelCache {
 public:
  // Creates the session over `context` (which must outlive it) and mounts
  // it. Errors say what to check (the mountpoint, /dev/fuse). On a
  // namespace other hosts change, it subscribes to their changes and has
  // the kernel forget what they make stale (kernel_invalidation.h).
  static absl::StatusOr<std::unique_ptr<FuseSession>> Mount(FsContext* context,
                                                            const FuseMountOptions& options);
  // Unmounts if still mounted and frees the session.
  ~FuseSession() override;

  // Serves requests until the filesystem is unmounted (umount, fusermount3
  // -u) or Stop is called; returns libfuse's result (0, or -ENODEV after an
  // unmount from outside).
  int Run();

  // Writes back what the kernel holds for the mount, then detaches it so
  // Run returns; files still open do not keep it alive. From any thread,
  // while Run serves.
  void Stop();

  // Has the kernel drop what it cached of the name `name` in directory
  // `parent`: for changes made other than through the mount (over S3), so
  // the mount sees them at once. From any thread but a request handler's
  // (the kernel may wait for a request on that directory).
  void ForgetName(InodeId parent, const std::string& name) override;
  // Has the kernel drop the attributes and cached pages of `ino`. The same
  // rules as ForgetName.
  void ForgetInode(InodeId ino) override;

 private:
  FuseSession(fuse_session* session, std::string mountpoint, Env* env)
      : session_(session), mountpoint_(std::move(mountpoint)), env_(env) {}
  fuse_session* const session_;
  // Other hosts' changes; reset before the session goes.
  std::unique_ptr<NamespaceWatch> watch_;
  const std::string mountpoint_;
  Env* const env_;
};

}  // namespace cairn
