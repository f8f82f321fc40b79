// cairn.toml: VolumeConfig and its sections, read and written.
#include "backend/config/config.h"

#include <arpa/inet.h>

#include <cstring>
#include <functional>
#include <ostream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "backend/base/files.h"
#include "backend/base/log.h"
#include "toml++/toml.h"

namespace cairn {
namespace {


std::string Join(const std::string& dir, const char* name) {
  return dir + "/" + name;
}

void WriteS3Target(const S3Target& t, std::ostream& out) {
  auto text = [](const std::string& v) { return toml::value<std::string>(v); };
  out << "endpoint = " << text(t.endpoint) << "\n"
      << "bucket = " << text(t.bucket) << "\n"
      << "prefix = " << text(t.prefix) << "\n"
      << "region = " << text(t.region) << "\n"
      << "addressing = " << text(t.addressing) << "\n";
  if (!t.access_key_id.empty()) out << "access_key_id = " << text(t.access_key_id) << "\n";
  if (!t.secret_access_key.empty()) {
    out << "secret_access_key = " << text(t.secret_access_key) << "\n";
  }
  if (!t.credentials_file.empty()) {
    out << "credentials_file = " << text(t.credentials_file) << "\n";
  }
  if (!t.profile.empty()) out << "profile = " << text(t.profile) << "\n";
  if (!t.ca_file.empty()) out << "ca_file = " << text(t.ca_file) << "\n";
  if (!t.storage_class.empty()) out << "storage_class = " << text(t.storage_class) << "\n";
}

}  // namespace

MemoryPlan PlanMemory(const VolumeConfig& config) {
  const uint64_t quarter = config.memory_bytes / 4;
  MemoryPlan plan;
  plan.dirty_bytes = config.max_dirty_bytes.value_or(quarter);
  plan.read_cache_bytes = config.read_cache_bytes.value_or(quarter);
  plan.namespace_cache_bytes = quarter / 2;
  plan.namespace_write_bytes = quarter / 4;
  const uint64_t cached = plan.dirty_bytes + plan.read_cache_bytes + plan.namespace_cache_bytes;
  // Working memory is what is left, and never less than a quarter: below
  // that the daemon's own buffers push it over the budget under load.
  plan.overdrawn = cached > config.memory_bytes - quarter;
  plan.working_bytes = plan.overdrawn ? 0 : config.memory_bytes - cached;
  return plan;
}

std::string ConfigText(const VolumeConfig& c) {
  toml::array disks;
  for (const std::string& disk : c.disks) disks.push_back(disk);
  std::ostringstream out;
  out << "# cairn volume configuration. Changes take effect at the next mount.\n"
      << "# On-disk format of this volume; written by cairn format, do not edit.\n"
      << "format_version = " << c.format_version << "\n"
      << "# Identity of this volume; its disks and database carry the same id.\n"
      << "volume_id = " << toml::value<std::string>(c.volume_id) << "\n"
      << "# Directories holding the data, in disk order. Empty: the data/ folder inside\n"
      << "# the volume. Change with cairn disk replace, not by hand.\n"
      << "disks = " << disks << "\n"
      << "# How blobs are spread over the disks: plain, copies:N or ec:K+M; fixed at format.\n"
      << "redundancy = " << toml::value<std::string>(c.redundancy.ToString()) << "\n"
      << "# Directory for the write cache (default: cache/ inside the volume).\n"
      << "cache_dir = " << toml::value<std::string>(c.cache_dir) << "\n"
      << "# The daemon's memory: a quarter each for written data not yet stored\n"
      << "# and cached file data, an eighth for the namespace's cache, the rest\n"
      << "# for working memory.\n"
      << "memory_bytes = " << c.memory_bytes << "\n";
  // A share of memory_bytes is shown commented out until it is set.
  const MemoryPlan plan = PlanMemory(c);
  auto share = [&out](const char* key, const std::optional<uint64_t>& set, uint64_t planned) {
    if (set) {
      out << key << " = " << *set << "\n";
    } else {
      out << "# " << key << " = " << planned << "  # overrides its share of memory_bytes\n";
    }
  };
  share("max_dirty_bytes", c.max_dirty_bytes, plan.dirty_bytes);
  share("read_cache_bytes", c.read_cache_bytes, plan.read_cache_bytes);
  out << "# Most bytes the writeback journal in cache_dir may hold before writers wait.\n"
      << "max_journal_bytes = " << c.max_journal_bytes << "\n"
      << "# Written data is stored at the latest this many seconds after the write.\n"
      << "dirty_flush_seconds = " << c.dirty_flush_seconds << "\n"
      << "# Deleted data is freed this many seconds after its last reference.\n"
      << "gc_grace_seconds = " << c.gc_grace_seconds << "\n"
      << "# Log level: error, warning, info or debug.\n"
      << "log_level = " << toml::value<std::string>(c.log_level) << "\n"
      << "# Background scrub: read and verify every blob once per this many seconds\n"
      << "# (0: never), reading at most scrub_bytes_per_second.\n"
      << "scrub_interval_seconds = " << c.scrub_interval_seconds << "\n"
      << "scrub_bytes_per_second = " << c.scrub_bytes_per_second << "\n"
      << "# Background scrub of the remote copies (replica and tier objects): read\n"
      << "# back and verify each once per this many seconds (0: never), reading at\n"
      << "# most remote_scrub_bytes_per_second.\n"
      << "remote_scrub_interval_seconds = " << c.remote_scrub_interval_seconds << "\n"
      << "remote_scrub_bytes_per_second = " << c.remote_scrub_bytes_per_second << "\n";
  if (c.tier) {
    const TierConfig& t = *c.tier;
    out << "\n# The remote tier (docs/CONFIG.md): cold data moves to this S3 bucket.\n"
        << "[tier]\n";
    WriteS3Target(t, out);
    out << "cold_after_seconds = " << t.cold_after_seconds << "\n"
        << "high_watermark_percent = " << t.high_watermark_percent << "\n"
        << "low_watermark_percent = " << t.low_watermark_percent << "\n"
        << "read_timeout_seconds = " << t.read_timeout_seconds << "\n"
        << "cache_bytes = " << t.cache_bytes << "\n";
  } else {
    out << "\n# A remote tier moves cold data to an S3 bucket; see docs/CONFIG.md:\n"
        << "# [tier]\n"
        << "# endpoint = \"https://s3.eu-west-1.amazonaws.com\"\n"
        << "# bucket = \"my-bucket\"\n"
        << "# region = \"eu-west-1\"\n";
  }
  if (c.replica) {
    out << "\n# The replica (docs/CONFIG.md): every blob is copied to this S3 bucket.\n"
        << "[replica]\n";
    WriteS3Target(*c.replica, out);
    out << "# A namespace backup goes to the replica this often (0: only cairn backup),\n"
        << "# and the newest keep_backups of them are kept.\n"
        << "backup_interval_seconds = " << c.replica->backup_interval_seconds << "\n"
        << "keep_backups = " << c.replica->keep_backups << "\n"
        << "backup_wait_seconds = " << c.replica->backup_wait_seconds << "\n";
  }
  if (c.shared_namespace) {
    out << "\n# This volume's namespace is on a PostgreSQL server several hosts share\n"
        << "# (docs/MULTIHOST.md). A password belongs in ~/.pgpass, not in the URL.\n"
        << "[namespace]\n"
        << "url = " << toml::value<std::string>(c.shared_namespace->url) << "\n"
        << "# A host silent this long loses its session: it must mount again.\n"
        << "session_expiry_seconds = " << c.shared_namespace->session_expiry_seconds << "\n";
  }
  if (c.shared_blobs) {
    out << "\n# This volume's data is in this S3 bucket, which every host reads.\n"
        << "[blobs]\n";
    WriteS3Target(*c.shared_blobs, out);
    out << "# Blocks read are kept in cache_dir/blob-blocks, up to this many bytes.\n"
        << "cache_bytes = " << c.shared_blobs->cache_bytes << "\n"
        << "# A read or upload the bucket does not answer fails (EIO) after this long.\n"
        << "read_timeout_seconds = " << c.shared_blobs->read_timeout_seconds << "\n";
  }
  if (!c.metrics.listen.empty()) {
    out << "\n# Prometheus metrics on http://LISTEN/metrics (docs/METRICS.md).\n"
        << "[metrics]\n"
        << "listen = " << toml::value<std::string>(c.metrics.listen) << "\n";
  } else {
    out << "\n# Prometheus metrics over HTTP, off unless an address is given; see\n"
        << "# docs/METRICS.md:\n"
        << "# [metrics]\n"
        << "# listen = \"127.0.0.1:9464\"\n";
  }
  if (!c.s3.listen.empty()) {
    out << "\n# The S3 REST frontend (docs/S3.md).\n"
        << "[s3]\n"
        << "listen = " << toml::value<std::string>(c.s3.listen) << "\n";
    if (!c.s3.keys_file.empty()) {
      out << "keys_file = " << toml::value<std::string>(c.s3.keys_file) << "\n";
    }
    out << "region = " << toml::value<std::string>(c.s3.region) << "\n";
    if (c.s3.tls()) {
      out << "tls_cert = " << toml::value<std::string>(c.s3.tls_cert) << "\n"
          << "tls_key = " << toml::value<std::string>(c.s3.tls_key) << "\n";
    }
    if (c.s3.allow_insecure) out << "allow_insecure = true\n";
  } else {
    out << "\n# The S3 REST frontend, off unless an address is given; see docs/S3.md:\n"
        << "# [s3]\n"
        << "# listen = \"127.0.0.1:9000\"\n";
  }
  return out.str();
}

namespace {

// Reads `key` into `target` if it is one of the S3Target keys; nullopt if
// it is not one of them.
std::optional<absl::Status> ParseS3TargetKey(const std::string& key, const toml::node& node,
                                             S3Target* t,
                                             const std::function<absl::Status(
                                                 const std::string&, const std::string&)>& bad) {
  auto text = [&](std::string* out) -> absl::Status {
    if (!node.is_string()) return bad(key, "must be a string");
    *out = *node.value<std::string>();
    return absl::OkStatus();
  };
  if (key == "endpoint") return text(&t->endpoint);
  if (key == "bucket") return text(&t->bucket);
  if (key == "prefix") return text(&t->prefix);
  if (key == "region") return text(&t->region);
  if (key == "addressing") return text(&t->addressing);
  if (key == "access_key_id") return text(&t->access_key_id);
  if (key == "secret_access_key") return text(&t->secret_access_key);
  if (key == "credentials_file") return text(&t->credentials_file);
  if (key == "profile") return text(&t->profile);
  if (key == "ca_file") return text(&t->ca_file);
  if (key == "storage_class") return text(&t->storage_class);
  return std::nullopt;
}

// The checks every S3Target must pass; normalises the prefix.
absl::Status CheckS3Target(
    S3Target* t,
    const std::function<absl::Status(const std::string&, const std::string&)>& bad) {
  if (t->endpoint.empty()) {
    return bad("endpoint", "missing: the S3 endpoint, like https://s3.eu-west-1.amazonaws.com");
  }
  if (t->bucket.empty()) return bad("bucket", "missing: the bucket's name");
  if (t->addressing != "auto" && t->addressing != "path" && t->addressing != "virtual") {
    return bad("addressing", "must be auto, path or virtual");
  }
  if (!t->prefix.empty() && t->prefix.back() != '/') t->prefix += '/';
  return absl::OkStatus();
}

// Reads a section naming an S3 target ([tier], [replica]): the keys every
// target has, then the section's own integer keys through `own`, which
// returns nullopt for a key it does not know; then CheckS3Target.
using IntegerKey = std::function<absl::Status(int64_t min, int64_t max, int64_t* out)>;
absl::Status ParseS3Section(
    const toml::table& table, const std::string& path, const std::string& section,
    S3Target* target,
    const std::function<std::optional<absl::Status>(const std::string&, const IntegerKey&)>& own) {
  auto bad = [&](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": [", section, "] key '", key, "': ", why));
  };
  for (const auto& [key_node, node] : table) {
    std::string key(key_node.str());
    if (std::optional<absl::Status> s = ParseS3TargetKey(key, node, target, bad)) {
      if (!s->ok()) return *s;
      continue;
    }
    IntegerKey integer = [&](int64_t min, int64_t max, int64_t* out) -> absl::Status {
      if (!node.is_integer()) return bad(key, "must be an integer");
      int64_t v = *node.value<int64_t>();
      if (v < min || v > max) return bad(key, absl::StrCat("must be from ", min, " to ", max));
      *out = v;
      return absl::OkStatus();
    };
    std::optional<absl::Status> s = own(key, integer);
    if (!s) return bad(key, "unknown key (see docs/CONFIG.md)");
    if (!s->ok()) return *s;
  }
  return CheckS3Target(target, bad);
}

absl::StatusOr<ReplicaConfig> ParseReplica(const toml::table& table, const std::string& path) {
  ReplicaConfig r;
  absl::Status s = ParseS3Section(
      table, path, "replica", &r,
      [&](const std::string& key, const IntegerKey& integer) -> std::optional<absl::Status> {
        if (key == "backup_interval_seconds") return integer(0, INT64_MAX, &r.backup_interval_seconds);
        if (key == "keep_backups") return integer(1, 100000, &r.keep_backups);
        if (key == "backup_wait_seconds") return integer(1, INT64_MAX, &r.backup_wait_seconds);
        return std::nullopt;
      });
  if (!s.ok()) return s;
  return r;
}

absl::StatusOr<TierConfig> ParseTier(const toml::table& table, const std::string& path) {
  TierConfig t;
  absl::Status s = ParseS3Section(
      table, path, "tier", &t,
      [&](const std::string& key, const IntegerKey& integer) -> std::optional<absl::Status> {
        if (key == "cold_after_seconds") return integer(0, INT64_MAX, &t.cold_after_seconds);
        if (key == "high_watermark_percent") return integer(1, 100, &t.high_watermark_percent);
        if (key == "low_watermark_percent") return integer(0, 99, &t.low_watermark_percent);
        if (key == "read_timeout_seconds") return integer(1, 3600, &t.read_timeout_seconds);
        if (key == "cache_bytes") return integer(0, INT64_MAX, &t.cache_bytes);
        return std::nullopt;
      });
  if (!s.ok()) return s;
  if (t.low_watermark_percent >= t.high_watermark_percent) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": [tier] key 'low_watermark_percent': must be below high_watermark_percent"));
  }
  return t;
}

absl::StatusOr<SharedBlobsConfig> ParseSharedBlobs(const toml::table& table,
                                                    const std::string& path) {
  SharedBlobsConfig b;
  absl::Status s = ParseS3Section(
      table, path, "blobs", &b,
      [&](const std::string& key, const IntegerKey& integer) -> std::optional<absl::Status> {
        if (key == "cache_bytes") return integer(0, INT64_MAX, &b.cache_bytes);
        if (key == "read_timeout_seconds") return integer(1, 3600, &b.read_timeout_seconds);
        return std::nullopt;
      });
  if (!s.ok()) return s;
  return b;
}

absl::StatusOr<SharedNamespaceConfig> ParseSharedNamespace(const toml::table& table,
                                                           const std::string& path) {
  SharedNamespaceConfig n;
  auto bad = [&](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": [namespace] key '", key, "': ", why));
  };
  for (const auto& [key_node, node] : table) {
    std::string key(key_node.str());
    if (key == "url") {
      if (!node.is_string()) return bad(key, "must be a string like \"postgresql://cairn@db/cairn\"");
      n.url = *node.value<std::string>();
    } else if (key == "session_expiry_seconds") {
      if (!node.is_integer()) return bad(key, "must be an integer");
      n.session_expiry_seconds = *node.value<int64_t>();
      if (n.session_expiry_seconds < 2 || n.session_expiry_seconds > 3600) {
        return bad(key, "must be from 2 to 3600");
      }
    } else {
      return bad(key, "unknown key (see docs/CONFIG.md)");
    }
  }
  if (!absl::StartsWith(n.url, "postgresql://") && !absl::StartsWith(n.url, "postgres://")) {
    return bad("url", "must be a PostgreSQL URL: postgresql://USER@HOST[:PORT]/DATABASE");
  }
  return n;
}

absl::StatusOr<MetricsConfig> ParseMetrics(const toml::table& table, const std::string& path) {
  MetricsConfig m;
  auto bad = [&](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": [metrics] key '", key, "': ", why));
  };
  for (const auto& [key_node, node] : table) {
    std::string key(key_node.str());
    if (key != "listen") return bad(key, "unknown key (see docs/CONFIG.md)");
    if (!node.is_string()) return bad(key, "must be a string like \"127.0.0.1:9464\"");
    m.listen = *node.value<std::string>();
  }
  if (!m.listen.empty()) {
    absl::StatusOr<ListenAddress> address = ParseListenAddress(m.listen);
    if (!address.ok()) return bad("listen", std::string(address.status().message()));
    // Port 0 would pick a random port nobody could find to scrape.
    if (address->port == 0) return bad("listen", "port must be from 1 to 65535");
  }
  return m;
}

absl::StatusOr<S3Config> ParseS3(const toml::table& table, const std::string& path) {
  S3Config config;
  auto bad = [&](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": [s3] key '", key, "': ", why));
  };
  for (const auto& [key_node, node] : table) {
    std::string key(key_node.str());
    if (key == "listen" || key == "keys_file" || key == "region" || key == "tls_cert" ||
        key == "tls_key") {
      if (!node.is_string()) return bad(key, "must be a string");
      std::string value = *node.value<std::string>();
      if (key == "listen") config.listen = value;
      if (key == "keys_file") {
        if (!value.empty() && value[0] != '/') return bad(key, "must be an absolute path");
        config.keys_file = value;
      }
      if (key == "region") {
        if (value.empty()) return bad(key, "must not be empty (us-east-1 if unsure)");
        config.region = value;
      }
      if (key == "tls_cert") config.tls_cert = value;
      if (key == "tls_key") config.tls_key = value;
    } else if (key == "allow_insecure") {
      if (!node.is_boolean()) return bad(key, "must be true or false");
      config.allow_insecure = *node.value<bool>();
    } else {
      return bad(key, "unknown key (see docs/S3.md)");
    }
  }
  // One without the other would serve plain HTTP to clients that were
  // told to expect TLS, or fail only at mount.
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return config.tls_cert.empty()
               ? bad("tls_key", "is set but tls_cert is not: give tls_cert the PEM certificate "
                                "chain that goes with this key, or remove tls_key")
               : bad("tls_cert", "is set but tls_key is not: give tls_key the PEM private key "
                                 "of this certificate, or remove tls_cert");
  }
  if (absl::Status s = CheckS3Listen(config); !s.ok()) {
    return bad("listen", std::string(s.message()));
  }
  return config;
}

}  // namespace

absl::Status CheckS3Listen(const S3Config& config) {
  if (config.listen.empty()) return absl::OkStatus();
  absl::StatusOr<ListenAddress> address = ParseListenAddress(config.listen);
  if (!address.ok()) return address.status();
  if (address->port == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", config.listen, "': port must be from 1 to 65535"));
  }
  const bool loopback = address->ipv6 ? address->host == "::1"
                                      : absl::StartsWith(address->host, "127.");
  if (!loopback && !config.tls() && !config.allow_insecure) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", config.listen, "' is not a loopback address, and requests would travel without "
        "TLS: set tls_cert and tls_key in [s3], listen on 127.0.0.1 behind a TLS proxy, "
        "or set allow_insecure = true in [s3] to accept clear text"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ListenAddress> ParseListenAddress(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' ", why, "; write HOST:PORT, like 127.0.0.1:9464 or [::1]:9464"));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return bad("has no port");
  ListenAddress address;
  std::string host = text.substr(0, colon);
  std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    in6_addr v6;
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return bad("has no valid IPv6 address");
    address.ipv6 = true;
  } else if (host == "localhost") {
    host = "127.0.0.1";
  } else {
    in_addr v4;
    if (host.find(':') != std::string::npos) {
      return bad("has an IPv6 address without brackets");
    }
    if (inet_pton(AF_INET, host.c_str(), &v4) != 1) {
      return bad("has no valid host: an IPv4 address, [IPv6 address] or localhost");
    }
  }
  int number = -1;
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(port, &number) || number > 65535) {
    return bad("has no valid port (a number up to 65535)");
  }
  address.host = host;
  address.port = number;
  return address;
}

std::vector<std::string> VolumeConfig::DataDisks(const std::string& volume_dir) const {
  if (!disks.empty()) return disks;
  if (shared()) return {};  // its data is in the [blobs] bucket
  return {Join(AbsolutePath(volume_dir), kDataDir)};
}

bool IsVolumeDir(const std::string& dir, Env* env) {
  return env->Exists(Join(dir, kConfigName));
}

absl::StatusOr<VolumeConfig> LoadVolumeConfig(const std::string& volume_dir,
                                              const std::string& config_path, Env* env) {
  std::string dir = AbsolutePath(volume_dir);
  std::string path = config_path.empty() ? Join(dir, kConfigName) : AbsolutePath(config_path);
  if (!IsVolumeDir(dir, env)) {
    if (env->Exists(Join(dir, kNamespaceDir))) {
      // Never advise a format here: it would erase the data.
      return absl::NotFoundError(absl::StrCat(
          dir, " holds a cairn namespace but no cairn.toml; rebuild the file from the "
          "namespace and the disks with: cairn fsck --repair ", dir,
          " (add --disk DIR for each disk if the volume had --disk directories)"));
    }
    return absl::NotFoundError(absl::StrCat(
        dir, " is not a cairn volume (no cairn.toml); create one with: cairn format ",
        dir));
  }
  absl::StatusOr<std::string> text = ReadFileToString(env, path);
  if (!text.ok()) {
    if (config_path.empty()) return text.status();
    return absl::NotFoundError(absl::StrCat("config file ", path, ": ", text.status().message()));
  }
  return ParseVolumeConfig(*text, dir, path);
}

absl::StatusOr<VolumeConfig> ParseVolumeConfig(const std::string& text,
                                               const std::string& volume_dir,
                                               const std::string& path) {
  const std::string dir = AbsolutePath(volume_dir);
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: line %d: %s", path, e.source().begin.line, std::string(e.description())));
  }
  VolumeConfig c;
  c.cache_dir = Join(dir, "cache");
  c.config_path = path;
  auto bad = [&](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": key '", key, "': ", why));
  };
  for (const auto& [key_node, node] : table) {
    std::string key(key_node.str());
    auto integer = [&](int64_t min, int64_t* out) -> absl::Status {
      std::optional<int64_t> v = node.value<int64_t>();
      if (!v || !node.is_integer()) return bad(key, "must be an integer");
      if (*v < min) return bad(key, absl::StrCat("must be at least ", min));
      *out = *v;
      return absl::OkStatus();
    };
    auto text = [&](std::string* out) -> absl::Status {
      if (!node.is_string()) return bad(key, "must be a string");
      *out = *node.value<std::string>();
      return absl::OkStatus();
    };
    int64_t n = 0;
    absl::Status s;
    if (key == "format_version") {
      s = integer(1, &n);
      // Checked before narrowing, so 4294967298 is not read as 2.
      if (s.ok() && n > kVolumeFormatVersion) {
        return absl::FailedPreconditionError(absl::StrCat(
            "volume ", dir, " has format version ", n, ", newer than this cairn supports (",
            kVolumeFormatVersion, "); upgrade cairn, or if cairn.toml was edited, put back the "
            "version the namespace records: cairn fsck --repair ", dir));
      }
      c.format_version = static_cast<int>(n);
    } else if (key == "volume_id") {
      s = text(&c.volume_id);
      if (s.ok() && c.volume_id.size() != 32) s = bad(key, "must be 32 hex digits");
    } else if (key == "disks") {
      const toml::array* disks = node.as_array();
      if (disks == nullptr) {
        s = bad(key, "must be an array of directory paths");
      } else {
        for (const toml::node& disk : *disks) {
          if (!disk.is_string()) {
            s = bad(key, "must be an array of directory paths");
            break;
          }
          std::string p = *disk.value<std::string>();
          c.disks.push_back(p.empty() || p[0] == '/' ? p : dir + "/" + p);
        }
      }
    } else if (key == "cache_dir") {
      s = text(&c.cache_dir);
      if (s.ok() && !c.cache_dir.empty() && c.cache_dir[0] != '/') {
        c.cache_dir = dir + "/" + c.cache_dir;
      }
    } else if (key == "memory_bytes") {
      s = integer(kMinMemoryBytes, &n);
      c.memory_bytes = n;
    } else if (key == "max_dirty_bytes") {
      s = integer(1 << 20, &n);
      c.max_dirty_bytes = n;
    } else if (key == "max_journal_bytes") {
      // Several 64 MiB segments: the active one alone must not fill it.
      s = integer(256 << 20, &n);
      c.max_journal_bytes = n;
    } else if (key == "read_cache_bytes") {
      s = integer(0, &n);
      c.read_cache_bytes = n;
    } else if (key == "dirty_flush_seconds") {
      s = integer(0, &n);
      c.dirty_flush_seconds = n;
    } else if (key == "gc_grace_seconds") {
      s = integer(0, &n);
      c.gc_grace_seconds = n;
    } else if (key == "redundancy") {
      std::string text_value;
      s = text(&text_value);
      if (s.ok()) {
        absl::StatusOr<Redundancy> r = ParseRedundancy(text_value);
        if (!r.ok()) {
          s = bad(key, std::string(r.status().message()));
        } else {
          c.redundancy = *r;
        }
      }
    } else if (key == "scrub_interval_seconds") {
      s = integer(0, &n);
      c.scrub_interval_seconds = n;
    } else if (key == "scrub_bytes_per_second") {
      s = integer(1 << 20, &n);
      c.scrub_bytes_per_second = n;
    } else if (key == "remote_scrub_interval_seconds") {
      s = integer(0, &n);
      c.remote_scrub_interval_seconds = n;
    } else if (key == "remote_scrub_bytes_per_second") {
      s = integer(64 << 10, &n);
      c.remote_scrub_bytes_per_second = n;
    } else if (key == "log_level") {
      s = text(&c.log_level);
      LogLevel level;
      if (s.ok() && !ParseLogLevel(c.log_level, &level)) {
        s = bad(key, "must be one of error, warning, info, debug");
      }
    } else if (key == "tier") {
      const toml::table* tier = node.as_table();
      if (tier == nullptr) {
        s = bad(key, "must be a table: a [tier] section");
      } else {
        absl::StatusOr<TierConfig> parsed = ParseTier(*tier, path);
        if (!parsed.ok()) return parsed.status();
        c.tier = *parsed;
      }
    } else if (key == "replica") {
      const toml::table* replica = node.as_table();
      if (replica == nullptr) {
        s = bad(key, "must be a table: a [replica] section");
      } else {
        absl::StatusOr<ReplicaConfig> parsed = ParseReplica(*replica, path);
        if (!parsed.ok()) return parsed.status();
        c.replica = *parsed;
      }
    } else if (key == "namespace") {
      const toml::table* table = node.as_table();
      if (table == nullptr) {
        s = bad(key, "must be a table: a [namespace] section");
      } else {
        absl::StatusOr<SharedNamespaceConfig> parsed = ParseSharedNamespace(*table, path);
        if (!parsed.ok()) return parsed.status();
        c.shared_namespace = *parsed;
      }
    } else if (key == "blobs") {
      const toml::table* table = node.as_table();
      if (table == nullptr) {
        s = bad(key, "must be a table: a [blobs] section");
      } else {
        absl::StatusOr<SharedBlobsConfig> parsed = ParseSharedBlobs(*table, path);
        if (!parsed.ok()) return parsed.status();
        c.shared_blobs = *parsed;
      }
    } else if (key == "metrics") {
      const toml::table* metrics = node.as_table();
      if (metrics == nullptr) {
        s = bad(key, "must be a table: a [metrics] section");
      } else {
        absl::StatusOr<MetricsConfig> parsed = ParseMetrics(*metrics, path);
        if (!parsed.ok()) return parsed.status();
        c.metrics = *parsed;
      }
    } else if (key == "s3") {
      const toml::table* s3 = node.as_table();
      if (s3 == nullptr) {
        s = bad(key, "must be a table: a [s3] section");
      } else {
        absl::StatusOr<S3Config> parsed = ParseS3(*s3, path);
        if (!parsed.ok()) return parsed.status();
        c.s3 = *parsed;
      }
    } else {
      s = bad(key, "unknown key (see docs/CONFIG.md or cairn format --help)");
    }
    if (!s.ok()) return s;
  }
  if (c.format_version > kVolumeFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", dir, " has format version ", c.format_version,
        ", newer than this cairn supports (", kVolumeFormatVersion,
        "); upgrade cairn"));
  }
  if (c.volume_id.empty()) return bad("volume_id", "missing");
  if (c.shared_namespace.has_value() != c.shared_blobs.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": a volume several hosts mount needs both a [namespace] and a [blobs] "
              "section, and a single-host volume neither; ",
        c.shared_namespace ? "[blobs] is missing" : "[namespace] is missing",
        " (cairn attach writes them)"));
  }
  if (c.shared()) {
    if (!c.disks.empty()) {
      return bad("disks", "a shared volume keeps its data in [blobs], not on local disks; "
                          "remove the key");
    }
    if (c.tier || c.replica) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": [", c.tier ? "tier" : "replica",
          "] is not supported on a shared volume yet (its data is already in the [blobs] "
          "bucket); remove the section"));
    }
  }
  size_t disk_count = c.DataDisks(dir).size();
  if (!c.shared() && static_cast<size_t>(c.redundancy.total_shards()) > disk_count) {
    return bad("redundancy", absl::StrCat(c.redundancy.ToString(), " needs ",
                                          c.redundancy.total_shards(), " disks; ",
                                          disk_count, " are configured"));
  }
  return c;
}

absl::Status SaveVolumeConfig(const std::string& volume_dir, const VolumeConfig& config,
                              Env* env) {
  // Owner-only, as everything of a volume: it may hold a secret key, and
  // it names the disks and buckets.
  return WriteFileAtomically(env, Join(AbsolutePath(volume_dir), kConfigName),
                             ConfigText(config), 0600);
}

std::string UrlWithoutPassword(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t authority = scheme + 3;
  const size_t at = url.find('@', authority);
  const size_t end = url.find_first_of("/?", authority);
  if (at == std::string::npos || (end != std::string::npos && at > end)) return url;
  const size_t colon = url.find(':', authority);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + url.substr(at);
}

VolumeConfig WithoutSecrets(VolumeConfig config) {
  for (S3Target* target :
       {config.tier ? static_cast<S3Target*>(&*config.tier) : nullptr,
        config.replica ? static_cast<S3Target*>(&*config.replica) : nullptr,
        config.shared_blobs ? static_cast<S3Target*>(&*config.shared_blobs) : nullptr}) {
    if (target != nullptr) target->secret_access_key.clear();
  }
  if (config.shared_namespace) {
    config.shared_namespace->url = UrlWithoutPassword(config.shared_namespace->url);
  }
  return config;
}

std::string ReplicaTargetName(const S3Target& target) {
  return absl::StrCat(target.endpoint, " ", target.bucket, " ", target.prefix);
}

}  // namespace cairn
