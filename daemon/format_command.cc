#include <cstdio>

#include "backend/volume/volume.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kFormatHelp[] =
    "usage: cairn format VOLUME_DIR [--disk DIR]... [--ec K+M | --copies N] [--force]\n"
    "\n"
    "Creates a new volume in VOLUME_DIR (created if missing): its config\n"
    "(cairn.toml), namespace database, volume id and format version, and a\n"
    "marker in every disk directory naming the volume and the disk's place.\n"
    "\n"
    "Every blob of file data (up to 4 MiB) is compressed when that pays,\n"
    "checksummed, and split into shards, one per disk, so that disks can be\n"
    "lost without losing data:\n"
    "  1 disk        plain      no redundancy\n"
    "  2 disks       copies:2   every blob on both, one disk may be lost\n"
    "  3-5 disks     ec:2+1     2 data + 1 parity shard, one disk may be lost\n"
    "  6+ disks      ec:4+2     4 data + 2 parity shards, two may be lost\n"
    "\n"
    "options:\n"
    "  --disk DIR    a data directory, ideally on its own drive; repeat for\n"
    "                each disk. None: VOLUME_DIR/data (the embedded default).\n"
    "  --ec K+M      Reed-Solomon with K data and M parity shards (K 2..16,\n"
    "                M 1..4); needs at least K+M disks.\n"
    "  --copies N    N full copies of every blob (N 2..16, at most the disks).\n"
    "  --force       format even if VOLUME_DIR (or a disk) is not empty,\n"
    "                erasing what is there. A mounted volume is never erased.\n";

int FormatCommand(const Args& args) {
  FormatOptions options;
  std::string dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--force") {
      options.force = true;
    } else if (arg == "--disk") {
      if (i + 1 >= args.size()) return UsageError("format", "--disk needs a directory");
      options.disks.push_back(args[++i]);
    } else if (arg.rfind("--disk=", 0) == 0) {
      options.disks.push_back(arg.substr(7));
    } else if (arg == "--ec" || arg == "--copies" || arg.rfind("--ec=", 0) == 0 ||
               arg.rfind("--copies=", 0) == 0) {
      if (options.redundancy) return UsageError("format", "give --ec or --copies once");
      bool ec = arg.rfind("--ec", 0) == 0;
      std::string value;
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return UsageError("format", arg + (ec ? " needs K+M (like 4+2)" : " needs N"));
      }
      absl::StatusOr<Redundancy> r =
          ParseRedundancy((ec ? "ec:" : "copies:") + value);
      if (!r.ok()) {
        return UsageError("format", ec ? "--ec wants K+M with K 2..16 and M 1..4, like 4+2"
                                       : "--copies wants a number from 2 to 16");
      }
      options.redundancy = *r;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("format", "unknown option '" + arg + "'");
    } else if (dir.empty()) {
      dir = arg;
    } else {
      return UsageError("format", "unexpected argument '" + arg + "'");
    }
  }
  if (dir.empty()) return UsageError("format", "missing VOLUME_DIR");
  absl::StatusOr<VolumeConfig> config = FormatVolume(dir, options);
  if (!config.ok()) return Fail("format", config.status());
  printf("formatted volume %s at %s (%zu disk%s, %s)\n", config->volume_id.c_str(),
         AbsolutePath(dir).c_str(), config->DataDisks(dir).size(),
         config->DataDisks(dir).size() == 1 ? "" : "s",
         config->redundancy.ToString().c_str());
  return kExitOk;
}

}  // namespace cairn::cli
