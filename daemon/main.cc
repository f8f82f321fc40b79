// The cairn command: one verb per file in daemon/.
#include <malloc.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "daemon/cli.h"

namespace {

// From project() in CMakeLists.txt, as the package and the man pages are.
constexpr char kVersion[] = CAIRN_VERSION;

constexpr char kMainHelp[] =
    "usage: cairn COMMAND [ARGS]\n"
    "\n"
    "cairn is a POSIX filesystem mounted with FUSE, built like S3 inside:\n"
    "a RocksDB namespace and immutable, checksummed blobs of data.\n"
    "\n"
    "commands:\n"
    "  format VOLUME_DIR [--disk DIR]... [--ec K+M | --copies N] [--force]\n"
    "                         create a new volume\n"
    "  format VOLUME_DIR --namespace URL --blobs s3://BUCKET/PREFIX [--endpoint URL]\n"
    "                         create a volume several hosts mount\n"
    "  attach VOLUME_DIR --namespace URL\n"
    "                         this host's directory of a shared volume\n"
    "  mount VOLUME_DIR MOUNTPOINT [-f] [-o OPT,...]\n"
    "                         mount a volume (returns once the mount is ready)\n"
    "  umount MOUNTPOINT      unmount (also: cairn unmount) and wait until the\n"
    "                         daemon has flushed everything and exited\n"
    "  serve s3 VOLUME_DIR|MOUNTPOINT [--listen HOST:PORT]\n"
    "                         serve a volume over S3, mounted or not\n"
    "  status VOLUME_DIR|MOUNTPOINT [--json]\n"
    "                         whether and where a volume is mounted, and usage\n"
    "  fsck VOLUME_DIR [--repair [--disk DIR]...]\n"
    "                         check an unmounted volume; --repair fixes what it can\n"
    "  scrub VOLUME_DIR|MOUNTPOINT [--remote] [--no-repair] [--json]\n"
    "                         verify every shard, rewrite the bad ones\n"
    "  disk replace VOLUME_DIR OLD NEW [--force] [--json]\n"
    "                         rebuild a lost disk's shards onto a new one\n"
    "  tier out|in PATH...    move files to the remote tier (S3) and back\n"
    "  tier status|run VOLUME_DIR|MOUNTPOINT\n"
    "                         the remote tier's state; one policy pass now\n"
    "  pin|unpin PATH...      keep files local (or let them move again)\n"
    "  backup VOLUME_DIR|MOUNTPOINT [--json]\n"
    "                         back the namespace up to the replica now\n"
    "  backup list|gc|claim ...\n"
    "                         the backups in a replica; delete what none needs\n"
    "  restore --from s3://BUCKET/PREFIX NEW_VOLUME_DIR [--disk DIR]...\n"
    "                         build a volume from a backup (disaster recovery)\n"
    "  help [COMMAND]         this text, or a command's\n"
    "\n"
    "options:\n"
    "  -h, --help             show help (also: cairn COMMAND --help)\n"
    "  --version              show the version\n"
    "\n"
    "Exit status: 0 success, 1 the operation failed, 2 bad command line;\n"
    "fsck exits as fsck(8) does (see cairn fsck --help).\n";

int Help(const std::string& verb) {
  if (verb.empty()) {
    fputs(kMainHelp, stdout);
  } else if (verb == "format") {
    fputs(cairn::cli::kFormatHelp, stdout);
  } else if (verb == "attach") {
    fputs(cairn::cli::kAttachHelp, stdout);
  } else if (verb == "mount") {
    fputs(cairn::cli::kMountHelp, stdout);
  } else if (verb == "umount" || verb == "unmount") {
    fputs(cairn::cli::kUmountHelp, stdout);
  } else if (verb == "serve") {
    fputs(cairn::cli::kServeHelp, stdout);
  } else if (verb == "status") {
    fputs(cairn::cli::kStatusHelp, stdout);
  } else if (verb == "fsck") {
    fputs(cairn::cli::kFsckHelp, stdout);
  } else if (verb == "scrub") {
    fputs(cairn::cli::kScrubHelp, stdout);
  } else if (verb == "disk") {
    fputs(cairn::cli::kDiskHelp, stdout);
  } else if (verb == "tier") {
    fputs(cairn::cli::kTierHelp, stdout);
  } else if (verb == "pin" || verb == "unpin") {
    fputs(cairn::cli::kPinHelp, stdout);
  } else if (verb == "backup") {
    fputs(cairn::cli::kBackupHelp, stdout);
  } else if (verb == "restore") {
    fputs(cairn::cli::kRestoreHelp, stdout);
  } else {
    return cairn::cli::UsageError("help", "unknown command '" + verb + "'");
  }
  return cairn::cli::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cairn::cli;
  // Up to 32 FUSE threads would each get a malloc arena, and 4 MiB blob
  // buffers freed in one arena are not reused by another: RSS grew far past
  // the caches' limits. Mapping every buffer of 128 KiB and more fixed that
  // too but halved write throughput (a fresh mapping, page faults and
  // zeroing per buffer).
  mallopt(M_ARENA_MAX, 4);
  // Buffers of a whole blob (cached blobs, blobs being assembled, read or
  // scrubbed) get mappings of their own, given back when freed. In the
  // arenas, where glibc puts them once the first is freed, they left holes
  // between long-lived small allocations that stayed resident: under
  // bench/memory.sh peak RSS was 315-336 MiB against 255-266 with this, for
  // a tenth to a quarter less throughput in that load (page faults of
  // fresh mappings; README). Smaller buffers (1 MiB FUSE buffers, dirty
  // runs) stay in the arenas: mapping those too halved that load's
  // throughput.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  // Whatever cairn creates (volume, disks, journal, sockets) is its owner's
  // alone, whatever umask the caller had: the files hold other users' data.
  umask(077);
  // mount(8) runs /sbin/mount.cairn (a link to this program) for -t cairn.
  // umount(8) runs /sbin/umount.fuse.cairn for a fuse.cairn mount, so plain
  // umount (systemd, fstab) waits for the flush as cairn umount does.
  const char* slash = strrchr(argv[0], '/');
  const std::string program = slash != nullptr ? slash + 1 : argv[0];
  if (program == "mount.cairn" || program == "umount.fuse.cairn") {
    // The helper convention of mount(8) and umount(8): 1 bad usage, 32 failed.
    const Args args(argv + 1, argv + argc);
    int rc = program == "mount.cairn" ? MountHelperCommand(args) : UmountHelperCommand(args);
    return rc == kExitOk ? 0 : rc == kExitUsage ? 1 : 32;
  }
  if (argc < 2) {
    fputs(kMainHelp, stderr);
    return kExitUsage;
  }
  std::string verb = argv[1];
  Args args(argv + 2, argv + argc);
  if (verb == "--help" || verb == "-h") return Help("");
  if (verb == "--version") {
    printf("cairn %s\n", kVersion);
    return kExitOk;
  }
  if (verb == "help") return Help(args.empty() ? "" : args[0]);
  if (verb == "format" || verb == "attach" || verb == "mount" || verb == "umount" || verb == "serve" ||
      verb == "unmount" || verb == "status" || verb == "fsck" || verb == "scrub" ||
      verb == "disk" || verb == "tier" || verb == "pin" || verb == "unpin" ||
      verb == "backup" || verb == "restore") {
    if (WantsHelp(args)) return Help(verb);
  }
  if (verb == "format") return FormatCommand(args);
  if (verb == "attach") return AttachCommand(args);
  if (verb == "mount") return MountCommand(args);
  if (verb == "serve") return ServeCommand(args);
  if (verb == "umount" || verb == "unmount") return UmountCommand(args);
  if (verb == "status") return StatusCommand(args);
  if (verb == "fsck") return FsckCommand(args);
  if (verb == "scrub") return ScrubCommand(args);
  if (verb == "disk") return DiskCommand(args);
  if (verb == "tier") return TierCommand(args);
  if (verb == "pin") return PinCommand(args, true);
  if (verb == "unpin") return PinCommand(args, false);
  if (verb == "backup") return BackupCommand(args);
  if (verb == "restore") return RestoreCommand(args);
  fprintf(stderr, "cairn: unknown command '%s'; see cairn --help\n", verb.c_str());
  return kExitUsage;
}
