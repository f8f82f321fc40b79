#include <cstdio>

#include "backend/volume.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kFormatHelp[] =
    "usage: cairn format VOLUME_DIR [--disk DIR]... [--force]\n"
    "\n"
    "Creates a new volume in VOLUME_DIR (created if missing): its config\n"
    "(cairn.toml), namespace database, volume id and format version.\n"
    "\n"
    "options:\n"
    "  --disk DIR   keep the data in DIR instead of VOLUME_DIR/data (the\n"
    "               embedded default). One disk for now.\n"
    "  --force      format even if VOLUME_DIR (or a disk) is not empty,\n"
    "               erasing what is there. A mounted volume is never erased.\n";

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
  printf("formatted volume %s at %s\n", config->volume_id.c_str(),
         AbsolutePath(dir).c_str());
  return kExitOk;
}

}  // namespace cairn::cli
