#include "daemon/cli.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cairn::cli {

int Fail(const std::string& verb, const std::string& message) {
  fprintf(stderr, "cairn: %s: %s\n", verb.c_str(), message.c_str());
  return kExitFailed;
}

int Fail(const std::string& verb, const absl::Status& status) {
  return Fail(verb, std::string(status.message()));
}

int UsageError(const std::string& verb, const std::string& message) {
  fprintf(stderr, "cairn: %s: %s; see cairn %s--help\n", verb.c_str(),
          message.c_str(), verb.empty() ? "" : (verb + " ").c_str());
  return kExitUsage;
}

bool WantsHelp(const Args& args) {
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  std::string out = ec ? path : abs.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
static std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = field[i + j];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

std::optional<MountEntry> FindCairnMount(const std::string& path) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  std::optional<MountEntry> found;
  while (std::getline(mountinfo, line)) {
    // id parent major:minor root mountpoint options [optional...] - type source super
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint, options, field;
    fields >> id >> parent >> dev >> root >> mountpoint >> options;
    while (fields >> field && field != "-") {
    }
    std::string type, source;
    fields >> type >> source;
    if (type != "fuse.cairn") continue;
    if (Unescape(mountpoint) != path) continue;
    found = MountEntry{Unescape(mountpoint), Unescape(source)};  // last wins
  }
  return found;
}

std::string Human(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", value, units[unit]);
}

std::optional<uint64_t> StatNumber(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\": ";
  size_t at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(json.c_str() + at + needle.size(), nullptr, 10);
}

std::optional<double> StatDouble(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\": ";
  size_t at = json.find(needle);
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(json.c_str() + at + needle.size(), nullptr);
}

// The JSON object after "key": in `json` (braces matched), or "".
std::string JsonObject(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": {");
  if (at == std::string::npos) return "";
  size_t start = json.find('{', at);
  int depth = 0;
  bool in_string = false;
  for (size_t i = start; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{') depth++;
    if (c == '}' && --depth == 0) return json.substr(start, i - start + 1);
  }
  return "";
}

std::string JsonText(const std::string& json, const std::string& key) {
  std::string needle = "\"" + key + "\": \"";
  size_t at = json.find(needle);
  if (at == std::string::npos) return "";
  std::string out;
  for (size_t i = at + needle.size(); i < json.size() && json[i] != '"'; ++i) {
    if (json[i] == '\\' && i + 1 < json.size()) ++i;
    out += json[i];
  }
  return out;
}

std::string ReadDaemonStats(const VolumeConfig& config) {
  std::ifstream in(config.cache_dir + "/stats.json");
  std::string json;
  std::getline(in, json);
  return json.size() > 2 && json.front() == '{' && json.back() == '}' ? json : "";
}

}  // namespace cairn::cli
