// Volume: format, config file, the one-daemon lock, and opening the parts.
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <ostream>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "backend/base/fs_error.h"
#include "backend/blob/local_blob_store.h"
#include "backend/base/log.h"
#include "backend/storage_maintenance.h"
#include "backend/replication.h"
#include "backend/tiering.h"
#include "backend/volume.h"
#include "toml++/toml.h"

namespace cairn {
namespace {

namespace fsys = std::filesystem;

constexpr char kConfigName[] = "cairn.toml";
constexpr char kNamespaceDir[] = "namespace";
constexpr char kDataDir[] = "data";
constexpr char kLockName[] = "lock";
constexpr char kLastStopName[] = "last-stop";

std::string Absolute(const std::string& path) {
  std::error_code ec;
  fsys::path abs = fsys::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

std::string Join(const std::string& dir, const char* name) {
  return dir + "/" + name;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

absl::Status WriteFileDurably(const std::string& path, const std::string& text,
                              mode_t mode = 0644) {
  std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("create " + temp);
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) {
    errno = err;
    return Errno("write " + temp);
  }
  chmod(temp.c_str(), mode);  // whatever the umask took away
  if (rename(temp.c_str(), path.c_str()) != 0) return Errno("rename " + temp);
  std::string dir = fsys::path(path).parent_path().string();
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

std::string RandomVolumeId() {
  std::random_device device;  // /dev/urandom on Linux
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&id, "%08x", device());
  return id;
}

bool DirIsEmptyOrMissing(const std::string& dir) {
  std::error_code ec;
  if (!fsys::exists(dir, ec)) return true;
  return fsys::is_directory(dir, ec) && fsys::is_empty(dir, ec);
}

// A disk directory is often the root of a freshly made filesystem, which
// holds lost+found: that one entry does not make it "in use".
bool DiskDirIsFree(const std::string& dir) {
  std::error_code ec;
  if (!fsys::exists(dir, ec)) return true;
  if (!fsys::is_directory(dir, ec)) return false;
  for (const auto& entry : fsys::directory_iterator(dir, ec)) {
    if (entry.path().filename() != "lost+found") return false;
  }
  return !ec;
}

// Empties a disk directory for --force, keeping lost+found (fsck's).
void EraseDiskDir(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fsys::directory_iterator(dir, ec)) {
    if (entry.path().filename() != "lost+found") fsys::remove_all(entry.path(), ec);
  }
}

// Reads "PID MOUNTPOINT" from an open lock file.
void ParseLockContent(int fd, MountRecord* record) {
  char buf[4200];
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return;
  buf[n] = '\0';
  std::string text(buf, n);
  size_t space = text.find(' ');
  record->pid = atoi(text.substr(0, space).c_str());
  if (space != std::string::npos) {
    record->mountpoint = text.substr(space + 1);
    while (!record->mountpoint.empty() && record->mountpoint.back() == '\n') {
      record->mountpoint.pop_back();
    }
  }
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
      << "# Most bytes of written data kept in memory before writers must wait.\n"
      << "max_dirty_bytes = " << c.max_dirty_bytes << "\n"
      << "# Most bytes the writeback journal in cache_dir may hold before writers wait.\n"
      << "max_journal_bytes = " << c.max_journal_bytes << "\n"
      << "# Memory for cached file data being read.\n"
      << "read_cache_bytes = " << c.read_cache_bytes << "\n"
      << "# Written data is stored at the latest this many seconds after the write.\n"
      << "dirty_flush_seconds = " << c.dirty_flush_seconds << "\n"
      << "# Deleted data is freed this many seconds after its last reference.\n"
      << "gc_grace_seconds = " << c.gc_grace_seconds << "\n"
      << "# Log level: error, warning, info or debug.\n"
      << "log_level = " << toml::value<std::string>(c.log_level) << "\n"
      << "# Background scrub: read and verify every blob once per this many seconds\n"
      << "# (0: never), reading at most scrub_bytes_per_second.\n"
      << "scrub_interval_seconds = " << c.scrub_interval_seconds << "\n"
      << "scrub_bytes_per_second = " << c.scrub_bytes_per_second << "\n";
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
  return out.str();
}

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

}  // namespace

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
  return {Join(Absolute(volume_dir), kDataDir)};
}

absl::StatusOr<uint64_t> SweepOrphanBlobs(NamespaceStore& ns, BlobStore& blobs) {
  constexpr char kSweepFloorKey[] = "blob_sweep_floor";
  absl::StatusOr<std::optional<std::string>> stored = ns.GetVolumeMeta(kSweepFloorKey);
  if (!stored.ok()) return stored.status();
  uint64_t floor = 0;
  if (stored->has_value() && !absl::SimpleAtoi(**stored, &floor)) floor = 0;
  // Everything allocated so far; no blob is being stored while we sweep.
  absl::StatusOr<BlobId> next = ns.AllocateBlobIds(0);
  if (!next.ok()) return next.status();
  absl::StatusOr<std::vector<BlobId>> ids = blobs.ListIds(floor);
  if (!ids.ok()) return ids.status();
  uint64_t deleted = 0;
  for (BlobId id : *ids) {
    if (id >= *next) continue;  // not ours to judge: never allocated
    absl::StatusOr<BlobRecord> record = ns.GetBlob(id);
    if (record.ok()) continue;
    if (!IsNotFoundError(record.status())) return record.status();
    if (absl::Status s = blobs.Delete(id); !s.ok()) return s;
    deleted++;
  }
  if (deleted > 0) {
    LogInfo("deleted %d blob files that a crash left uncommitted", deleted);
  }
  if (absl::Status s = ns.SetVolumeMeta(kSweepFloorKey, absl::StrCat(*next)); !s.ok()) {
    return s;
  }
  return deleted;
}

bool IsVolumeDir(const std::string& dir) {
  return access(Join(dir, kConfigName).c_str(), F_OK) == 0;
}

absl::StatusOr<VolumeConfig> LoadVolumeConfig(const std::string& volume_dir,
                                              const std::string& config_path) {
  std::string dir = Absolute(volume_dir);
  std::string path = config_path.empty() ? Join(dir, kConfigName) : Absolute(config_path);
  if (!IsVolumeDir(dir)) {
    return absl::NotFoundError(absl::StrCat(
        dir, " is not a cairn volume (no cairn.toml); create one with: cairn format ",
        dir));
  }
  if (!config_path.empty() && access(path.c_str(), R_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("config file ", path, ": ", strerror(errno)));
  }
  toml::table table;
  try {
    table = toml::parse_file(path);
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
    } else if (key == "metrics") {
      const toml::table* metrics = node.as_table();
      if (metrics == nullptr) {
        s = bad(key, "must be a table: a [metrics] section");
      } else {
        absl::StatusOr<MetricsConfig> parsed = ParseMetrics(*metrics, path);
        if (!parsed.ok()) return parsed.status();
        c.metrics = *parsed;
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
  size_t disk_count = c.DataDisks(dir).size();
  if (static_cast<size_t>(c.redundancy.total_shards()) > disk_count) {
    return bad("redundancy", absl::StrCat(c.redundancy.ToString(), " needs ",
                                          c.redundancy.total_shards(), " disks; ",
                                          disk_count, " are configured"));
  }
  return c;
}

absl::Status SaveVolumeConfig(const std::string& volume_dir,
                              const VolumeConfig& config) {
  // A rewrite keeps the file's mode (an owner-only file may hold the tier's
  // secret key); a file with a secret is never made readable by others.
  std::string path = Join(Absolute(volume_dir), kConfigName);
  mode_t mode = 0644;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) mode = st.st_mode & 0777;
  if ((config.tier && !config.tier->secret_access_key.empty()) ||
      (config.replica && !config.replica->secret_access_key.empty())) {
    mode &= 0700;
  }
  return WriteFileDurably(path, ConfigText(config), mode);
}

absl::StatusOr<MountRecord> ReadMountRecord(const std::string& volume_dir) {
  MountRecord record;
  std::string path = Join(Absolute(volume_dir), kLockName);
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return record;
    return Errno("open " + path);
  }
  if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
    flock(fd, LOCK_UN);
  } else {
    record.mounted = true;
    ParseLockContent(fd, &record);
  }
  close(fd);
  return record;
}

absl::StatusOr<VolumeConfig> FormatVolume(const std::string& volume_dir,
                                          const FormatOptions& options) {
  std::string dir = Absolute(volume_dir);
  std::error_code ec;
  if (fsys::exists(dir, ec) && !fsys::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory; choose another path"));
  }
  bool existing_volume = IsVolumeDir(dir);
  // A restore's marker is all a directory being restored may hold.
  auto only_restore_marker = [&] {
    std::error_code ignored;
    if (!options.restoring) return false;
    for (const auto& entry : fsys::directory_iterator(dir, ignored)) {
      if (entry.path().filename() != kRestoreMarkerName) return false;
    }
    return true;
  };
  if (!options.force && !DirIsEmptyOrMissing(dir) && !only_restore_marker()) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, existing_volume ? " already holds a cairn volume"
                             : " is not empty",
        "; refusing to format over it. Use --force to erase it"));
  }
  absl::StatusOr<MountRecord> mounted = ReadMountRecord(dir);
  if (mounted.ok() && mounted->mounted) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", dir, " is mounted at ", mounted->mountpoint, " by process ",
        mounted->pid, "; unmount it first: cairn umount ", mounted->mountpoint));
  }
  std::vector<std::string> disks;
  for (const std::string& disk : options.disks) {
    std::string abs = Absolute(disk);
    if (std::find(disks.begin(), disks.end(), abs) != disks.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("disk directory ", abs, " is given twice; every --disk must be a "
                       "different directory (ideally on a different drive)"));
    }
    if (!options.force && !DiskDirIsFree(abs)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "disk directory ", abs, " is not empty; use --force to erase it"));
    }
    disks.push_back(abs);
  }
  const size_t disk_count = std::max<size_t>(1, disks.size());
  Redundancy redundancy = options.redundancy.value_or(DefaultRedundancy(disk_count));
  if (static_cast<size_t>(redundancy.total_shards()) > disk_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "redundancy ", redundancy.ToString(), " needs at least ", redundancy.total_shards(),
        " disks (one per shard); ", disk_count, " given. Add --disk directories or choose "
        "less redundancy"));
  }
  fsys::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  if (options.force) {
    // The config goes first, so an interrupted wipe never leaves something
    // that looks like a volume.
    for (const char* name : {kConfigName, kNamespaceDir, kDataDir, "cache"}) {
      fsys::remove_all(Join(dir, name), ec);
    }
    for (const auto& entry : fsys::directory_iterator(dir, ec)) {
      if (entry.path().filename() != kLockName &&
          !(options.restoring && entry.path().filename() == kRestoreMarkerName)) {
        fsys::remove_all(entry.path(), ec);
      }
    }
    for (const std::string& disk : disks) EraseDiskDir(disk);
  }
  VolumeConfig config;
  config.volume_id = options.volume_id.empty() ? RandomVolumeId() : options.volume_id;
  config.disks = disks;
  config.redundancy = redundancy;
  config.cache_dir = Join(dir, "cache");
  NamespaceOptions ns_options;
  ns_options.create_if_missing = true;
  {
    absl::StatusOr<std::unique_ptr<NamespaceStore>> ns =
        NamespaceStore::Open(Join(dir, kNamespaceDir), ns_options);
    if (!ns.ok()) return ns.status();
    if (absl::Status s = (*ns)->SetVolumeMeta("volume_id", config.volume_id); !s.ok()) return s;
    if (absl::Status s = (*ns)->SetVolumeMeta(
            "format_version", std::to_string(kVolumeFormatVersion));
        !s.ok()) {
      return s;
    }
    if (absl::Status s = (*ns)->Sync(); !s.ok()) return s;
  }
  std::vector<std::string> data_disks = config.DataDisks(dir);
  for (size_t i = 0; i < data_disks.size(); ++i) {
    fsys::create_directories(data_disks[i], ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot create ", data_disks[i], ": ", ec.message()));
    }
    if (absl::Status s = StripedBlobStore::PrepareDisk(data_disks[i], config.volume_id,
                                                       static_cast<int>(i),
                                                       static_cast<int>(data_disks.size()));
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = SaveVolumeConfig(dir, config); !s.ok()) return s;
  return config;
}

std::string ReplicaTargetName(const S3Target& target) {
  return absl::StrCat(target.endpoint, " ", target.bucket, " ", target.prefix);
}

absl::StatusOr<std::unique_ptr<Volume>> Volume::Open(const std::string& volume_dir,
                                                     const VolumeConfig& config, bool restoring) {
  std::unique_ptr<Volume> volume(new Volume());
  volume->dir_ = Absolute(volume_dir);
  if (!restoring && std::filesystem::exists(Join(volume->dir_, kRestoreMarkerName))) {
    return absl::FailedPreconditionError(absl::StrCat(
        volume->dir_, " is a volume cairn restore has not finished building; run the same "
        "cairn restore command again to finish it (or delete the directory and its disks)"));
  }
  volume->config_ = config;
  std::string lock_path = Join(volume->dir_, kLockName);
  volume->lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (volume->lock_fd_ < 0) return Errno("open " + lock_path);
  if (flock(volume->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    MountRecord holder;
    ParseLockContent(volume->lock_fd_, &holder);
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", volume->dir_, " is already in use by process ", holder.pid,
        holder.mountpoint.empty() ? std::string()
                                  : absl::StrCat(" (mounted at ", holder.mountpoint, ")"),
        "; unmount it first: cairn umount ",
        holder.mountpoint.empty() ? "MOUNTPOINT" : holder.mountpoint));
  }
  if (config.format_version > kVolumeFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume ", volume->dir_, " has format version ", config.format_version,
        ", newer than this cairn supports (", kVolumeFormatVersion,
        "); upgrade cairn"));
  }
  NamespaceOptions ns_options;
  ns_options.gc_grace_seconds = config.gc_grace_seconds;
  ns_options.queue_replication = config.replica.has_value();
  absl::StatusOr<std::unique_ptr<NamespaceStore>> ns =
      NamespaceStore::Open(Join(volume->dir_, kNamespaceDir), ns_options);
  if (!ns.ok()) return ns.status();
  absl::StatusOr<std::optional<std::string>> id = (*ns)->GetVolumeMeta("volume_id");
  if (!id.ok()) return id.status();
  if (!id->has_value() || **id != config.volume_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the namespace database in ", volume->dir_, " belongs to volume ",
        id->value_or("(none)"), ", but cairn.toml names volume ",
        config.volume_id, "; the directory was assembled from two volumes"));
  }
  volume->namespace_ = std::move(*ns);
  if (config.format_version == 1) {
    std::string data_dir =
        config.disks.empty() ? Join(volume->dir_, kDataDir) : config.disks[0];
    if (access(data_dir.c_str(), F_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", data_dir, " of volume ", volume->dir_,
          " is missing; is the disk mounted?"));
    }
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> blobs = LocalBlobStore::Open(data_dir);
    if (!blobs.ok()) return blobs.status();
    volume->blobs_ = std::move(*blobs);
  } else {
    StripedStoreOptions store_options;
    store_options.volume_id = config.volume_id;
    store_options.redundancy = config.redundancy;
    store_options.disks = config.DataDisks(volume->dir_);
    NamespaceStore* ns_for_repairs = volume->namespace_.get();
    store_options.queue_repair = [ns_for_repairs](BlobId id) {
      if (absl::Status s = ns_for_repairs->QueueRepair(id); !s.ok()) {
        LogError("could not queue blob %d for repair: %s (the next scrub finds it)", id,
                 s.message());
      }
    };
    absl::StatusOr<std::unique_ptr<StripedBlobStore>> blobs =
        StripedBlobStore::Open(std::move(store_options));
    if (!blobs.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "volume ", volume->dir_, " cannot be opened: ", blobs.status().message()));
    }
    volume->striped_ = blobs->get();
    volume->blobs_ = std::move(*blobs);
  }
  if (config.tier) {
    // Nothing is sent to the remote here: a mount works while it is down.
    absl::StatusOr<s3::S3Options> options =
        TierS3Options(*config.tier, config.ConfigFile(volume->dir_));
    if (!options.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the remote tier of ", volume->dir_, ": ", options.status().message()));
    }
    absl::StatusOr<std::unique_ptr<s3::S3Client>> client = s3::S3Client::Create(*options);
    if (!client.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the remote tier of ", volume->dir_, ": ", client.status().message()));
    }
    volume->tier_client_ = std::move(*client);
    volume->remote_ = std::make_unique<RemoteBlobStore>(*volume->tier_client_, config.tier->prefix,
                                                        config.volume_id);
    if (config.replica && config.tier->SameObjectsAs(*config.replica)) {
      volume->remote_->LeaveDeletesToReplicaGc();
    }
    if (config.tier->cache_bytes > 0) {
      absl::StatusOr<std::unique_ptr<DiskBlockCache>> cache = DiskBlockCache::Open(
          Join(config.cache_dir, "tier-blocks"), static_cast<uint64_t>(config.tier->cache_bytes));
      if (cache.ok()) {
        volume->tier_block_cache_ = std::move(*cache);
      } else {
        // Reads of tiered data still work, each one from the remote.
        LogWarning("the remote tier's block cache in %s cannot be used: %s", config.cache_dir,
                   cache.status().message());
      }
    }
    volume->tiered_ = std::make_unique<TieredBlobStore>(*volume->namespace_, *volume->blobs_,
                                                        *volume->remote_,
                                                        volume->tier_block_cache_.get());
    volume->mover_ = std::make_unique<TierMover>(*volume->namespace_, *volume->blobs_,
                                                 *volume->remote_);
  }
  if (config.replica) {
    absl::StatusOr<s3::S3Options> options =
        S3TargetOptions(*config.replica, config.ConfigFile(volume->dir_));
    absl::StatusOr<std::unique_ptr<s3::S3Client>> client =
        options.ok() ? s3::S3Client::Create(*options)
                     : absl::StatusOr<std::unique_ptr<s3::S3Client>>(options.status());
    if (!client.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the replica of ", volume->dir_, ": ", client.status().message()));
    }
    volume->replica_client_ = std::move(*client);
    volume->replica_ = std::make_unique<RemoteBlobStore>(
        *volume->replica_client_, config.replica->prefix, config.volume_id);
    absl::StatusOr<std::string> token = ReplicaOwnerToken(*volume->namespace_);
    if (!token.ok()) return token.status();
    volume->replica_owner_ = std::make_unique<ReplicaOwner>(
        *volume->replica_client_, absl::StrCat(config.replica->prefix, config.volume_id, "/"),
        *token);
    // Blobs stored before replication to this bucket began join the queue.
    absl::StatusOr<uint64_t> queued =
        volume->namespace_->QueueExistingBlobsForReplica(ReplicaTargetName(*config.replica));
    if (!queued.ok()) return queued.status();
    if (*queued > 0) LogInfo("queued %d existing blobs for the replica", *queued);
  }
  absl::StatusOr<uint64_t> released = volume->namespace_->ReleaseAllOrphans();
  if (!released.ok()) return released.status();
  if (*released > 0) {
    LogInfo("released %d unlinked files left open by an earlier run", *released);
  }
  return volume;
}

BlobStore& Volume::blobs() {
  if (tiered_) return *tiered_;
  return *blobs_;
}

Volume::~Volume() {
  mover_.reset();
  tiered_.reset();
  tier_block_cache_.reset();
  replica_owner_.reset();
  replica_.reset();
  replica_client_.reset();
  remote_.reset();
  tier_client_.reset();
  blobs_.reset();
  namespace_.reset();
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

absl::StatusOr<int> Volume::ReplaceDisk(const std::string& old_disk,
                                        const std::string& new_disk, bool force) {
  if (striped_ == nullptr) {
    return absl::FailedPreconditionError(
        "this volume has format 1 (one data directory, no shards); disk replace needs a "
        "volume formatted by this cairn");
  }
  if (config_.redundancy.parity_shards == 0) {
    return absl::FailedPreconditionError(
        "this volume keeps one copy of its data (redundancy plain): there is nothing to "
        "rebuild a disk from. Copy the files to a new volume instead");
  }
  std::vector<std::string> disks = config_.DataDisks(dir_);
  std::string old_abs = Absolute(old_disk);
  int index = -1;
  for (size_t i = 0; i < disks.size(); ++i) {
    if (disks[i] == old_abs) index = static_cast<int>(i);
  }
  int given_index = -1;
  if (index < 0 && absl::SimpleAtoi(old_disk, &given_index) && given_index >= 0 &&
      given_index < static_cast<int>(disks.size())) {
    index = given_index;
  }
  if (index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        old_disk, " is not a disk of volume ", dir_, "; its disks are: ",
        absl::StrJoin(disks, ", ")));
  }
  std::string new_abs = Absolute(new_disk);
  for (size_t i = 0; i < disks.size(); ++i) {
    if (disks[i] == new_abs && static_cast<int>(i) != index) {
      return absl::InvalidArgumentError(
          absl::StrCat(new_abs, " is already disk ", i, " of this volume"));
    }
  }
  std::vector<DiskInfo> states = striped_->Disks();
  if (states[index].state == DiskState::kOk && new_abs == disks[index]) {
    return absl::FailedPreconditionError(absl::StrCat(
        "disk ", disks[index], " is working; give a new directory to move it there, or run "
        "cairn scrub to repair bad shards"));
  }
  if (!DiskDirIsFree(new_abs)) {
    if (!force) {
      return absl::FailedPreconditionError(absl::StrCat(
          "new disk directory ", new_abs,
          " is not empty; use an empty directory (or --force to erase it)"));
    }
    EraseDiskDir(new_abs);
  }
  if (absl::Status s = StripedBlobStore::PrepareDisk(new_abs, config_.volume_id, index,
                                                     static_cast<int>(disks.size()));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = namespace_->SetVolumeMeta(kRebuildPendingKey, absl::StrCat(index));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = namespace_->Sync(); !s.ok()) return s;
  if (absl::Status s = striped_->ReplaceDisk(index, new_abs); !s.ok()) return s;
  disks[index] = new_abs;
  config_.disks = disks;
  if (absl::Status s = SaveVolumeConfig(dir_, config_); !s.ok()) return s;
  LogInfo("disk %d of volume %s replaced by %s; rebuilding its shards", index, dir_, new_abs);
  return index;
}

void Volume::RecordStop(const absl::Status& status) {
  std::string text = status.ok() ? "ok\n" : absl::StrCat("error ", status.message(), "\n");
  if (absl::Status s = WriteFileDurably(Join(dir_, kLastStopName), text); !s.ok()) {
    LogWarning("could not record how the daemon stopped: %s", s.ToString());
  }
}

bool LastStopWasClean(const std::string& volume_dir) {
  std::ifstream in(Join(Absolute(volume_dir), kLastStopName));
  std::string first;
  std::getline(in, first);
  return first == "ok";
}

std::optional<std::string> ReadStopError(const std::string& volume_dir) {
  std::ifstream in(Join(Absolute(volume_dir), kLastStopName));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.rfind("error ", 0) != 0) return std::nullopt;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text.substr(6);
}

absl::Status Volume::RecordMount(pid_t pid, const std::string& mountpoint) {
  unlink(Join(dir_, kLastStopName).c_str());
  std::string text = absl::StrCat(pid, " ", mountpoint, "\n");
  if (ftruncate(lock_fd_, 0) != 0 ||
      pwrite(lock_fd_, text.data(), text.size(), 0) !=
          static_cast<ssize_t>(text.size()) ||
      fsync(lock_fd_) != 0) {
    return Errno("record the mount in " + Join(dir_, kLockName));
  }
  return absl::OkStatus();
}

}  // namespace cairn
