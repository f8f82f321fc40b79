#include <cstdio>

#include "backend/volume/shared_volume.h"
#include "backend/volume/volume.h"
#include "daemon/cli.h"

namespace cairn::cli {

const char kFormatHelp[] =
    "usage: cairn format VOLUME_DIR [--disk DIR]... [--ec K+M | --copies N] [--force]\n"
    "       cairn format VOLUME_DIR --namespace postgresql://USER@HOST/DB\n"
    "                    --blobs s3://BUCKET/PREFIX [--endpoint URL] [--region R]\n"
    "                    [--addressing A] [--force]\n"
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
    "                erasing what is there. A mounted volume is never erased.\n"
    "\n"
    "A volume several hosts mount (docs/MULTIHOST.md) keeps its namespace in\n"
    "a PostgreSQL database and its data in an S3 bucket; VOLUME_DIR is this\n"
    "host's part (cairn.toml, the cache). Other hosts join with cairn attach.\n"
    "  --namespace URL  an empty PostgreSQL database (libpq URL; a password\n"
    "                belongs in ~/.pgpass, not in the URL)\n"
    "  --blobs s3://BUCKET/PREFIX  the bucket, and where in it, for the data;\n"
    "                credentials from AWS_ACCESS_KEY_ID and\n"
    "                AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE and\n"
    "                AWS_PROFILE, on every host\n"
    "  --endpoint URL  the S3 endpoint (default https://s3.REGION.amazonaws.com)\n"
    "  --region R    the bucket's region (default us-east-1)\n"
    "  --addressing A  auto, path or virtual (auto: virtual for amazonaws.com)\n";

const char kAttachHelp[] =
    "usage: cairn attach VOLUME_DIR --namespace postgresql://USER@HOST/DB [--force]\n"
    "\n"
    "Makes VOLUME_DIR this host's directory of the shared volume whose\n"
    "namespace is in that database (made by cairn format --namespace on\n"
    "another host): reads the volume's id and bucket from the database,\n"
    "writes cairn.toml with the cache in VOLUME_DIR/cache, and checks that\n"
    "the bucket answers. Then: cairn mount VOLUME_DIR MOUNTPOINT.\n"
    "\n"
    "options:\n"
    "  --namespace URL  the volume's PostgreSQL database (libpq URL)\n"
    "  --force       attach even if VOLUME_DIR is not empty, erasing what is\n"
    "                there (never while it is mounted)\n";

int FormatCommand(const Args& args) {
  FormatOptions options;
  std::string dir;
  std::string namespace_url;
  std::optional<SharedBlobsConfig> blobs;
  SharedBlobsConfig target;
  bool target_options = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::string error;
    auto value = [&](const std::string& name) { return OptionValue(args, i, name, &error); };
    if (std::optional<std::string> url = value("--namespace")) {
      namespace_url = *url;
    } else if (std::optional<std::string> from = value("--blobs")) {
      if (from->rfind("s3://", 0) != 0 || from->size() <= 5) {
        return UsageError("format", "--blobs wants s3://BUCKET/PREFIX, not '" + *from + "'");
      }
      std::string rest = from->substr(5);
      size_t slash = rest.find('/');
      target.bucket = rest.substr(0, slash);
      target.prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
      if (!target.prefix.empty() && target.prefix.back() != '/') target.prefix += '/';
      blobs = target;
    } else if (std::optional<std::string> endpoint = value("--endpoint")) {
      target.endpoint = *endpoint;
      target_options = true;
    } else if (std::optional<std::string> region = value("--region")) {
      target.region = *region;
      target_options = true;
    } else if (std::optional<std::string> addressing = value("--addressing")) {
      if (*addressing != "path" && *addressing != "virtual" && *addressing != "auto") {
        return UsageError("format", "--addressing wants auto, path or virtual");
      }
      target.addressing = *addressing;
      target_options = true;
    } else if (!error.empty()) {
      return UsageError("format", error);
    } else if (arg == "--force") {
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
  if (namespace_url.empty() != !blobs.has_value()) {
    return UsageError("format", "a shared volume needs both --namespace URL and --blobs "
                                "s3://BUCKET/PREFIX");
  }
  if (target_options && !blobs) {
    return UsageError("format", "--endpoint, --region and --addressing go with --blobs");
  }
  if (blobs) {
    // The options may come in any order.
    std::string bucket = blobs->bucket, prefix = blobs->prefix;
    blobs = target;
    blobs->bucket = bucket;
    blobs->prefix = prefix;
    if (blobs->endpoint.empty()) {
      blobs->endpoint = "https://s3." + blobs->region + ".amazonaws.com";
    }
    options.shared_namespace = SharedNamespaceConfig{namespace_url};
    options.shared_blobs = blobs;
  }
  absl::StatusOr<VolumeConfig> config = FormatVolume(dir, options);
  if (!config.ok()) return Fail("format", config.status());
  if (config->shared()) {
    printf("formatted shared volume %s at %s (namespace %s, data in s3://%s/%s%s/)\n"
           "other hosts: cairn attach VOLUME_DIR --namespace URL\n",
           config->volume_id.c_str(), AbsolutePath(dir).c_str(),
           UrlWithoutPassword(config->shared_namespace->url).c_str(),
           config->shared_blobs->bucket.c_str(), config->shared_blobs->prefix.c_str(),
           config->volume_id.c_str());
    return kExitOk;
  }
  printf("formatted volume %s at %s (%zu disk%s, %s)\n", config->volume_id.c_str(),
         AbsolutePath(dir).c_str(), config->DataDisks(dir).size(),
         config->DataDisks(dir).size() == 1 ? "" : "s",
         config->redundancy.ToString().c_str());
  return kExitOk;
}

int AttachCommand(const Args& args) {
  AttachOptions options;
  std::string dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::string error;
    if (std::optional<std::string> url = OptionValue(args, i, "--namespace", &error)) {
      options.namespace_url = *url;
    } else if (!error.empty()) {
      return UsageError("attach", error);
    } else if (arg == "--force") {
      options.force = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return UsageError("attach", "unknown option '" + arg + "'");
    } else if (dir.empty()) {
      dir = arg;
    } else {
      return UsageError("attach", "unexpected argument '" + arg + "'");
    }
  }
  if (dir.empty()) return UsageError("attach", "missing VOLUME_DIR");
  if (options.namespace_url.empty()) {
    return UsageError("attach", "missing --namespace postgresql://USER@HOST/DB");
  }
  absl::StatusOr<VolumeConfig> config = AttachVolume(dir, options);
  if (!config.ok()) return Fail("attach", config.status());
  printf("attached %s to shared volume %s (data in s3://%s/%s%s/); mount it with: cairn mount "
         "%s MOUNTPOINT\n",
         AbsolutePath(dir).c_str(), config->volume_id.c_str(),
         config->shared_blobs->bucket.c_str(), config->shared_blobs->prefix.c_str(),
         config->volume_id.c_str(), AbsolutePath(dir).c_str());
  return kExitOk;
}

}  // namespace cairn::cli
