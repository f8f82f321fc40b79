#include "daemon/cli.h"

#include "backend/base/files.h"

#include "daemon/control_channel.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

std::optional<std::string> OptionValue(const Args& args, size_t& i, const std::string& name,
                                       std::string* error) {
  const std::string& arg = args[i];
  if (arg == name) {
    if (i + 1 >= args.size()) {
      *error = name + " wants a value";
      return std::nullopt;
    }
    return args[++i];
  }
  if (arg.rfind(name + "=", 0) == 0) return arg.substr(name.size() + 1);
  return std::nullopt;
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

std::string VolumeDirOf(const std::string& target) {
  std::string path = AbsolutePath(target);
  if (std::optional<MountEntry> mount = FindCairnMount(path)) return mount->volume_dir;
  return path;
}

std::string AbsolutePath(const std::string& path) { return cairn::AbsolutePath(path); }

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
  absl::StatusOr<std::string> table = ReadFileToString(Env::Default(), "/proc/self/mountinfo");
  if (!table.ok()) return std::nullopt;
  std::istringstream mountinfo(*table);
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

absl::StatusOr<std::string> AskDaemon(const std::string& volume_dir, const std::string& volume_id,
                                      const std::string& request,
                                      const std::function<void(const std::string&)>& on_progress) {
  absl::StatusOr<MountRecord> record = ReadMountRecord(volume_dir);
  if (!record.ok()) return record.status();
  if (!record->mounted) {
    return absl::UnavailableError(absl::StrCat("no daemon serves ", volume_dir));
  }
  std::string final_line;
  ControlTarget target{AbsolutePath(volume_dir), volume_id, record->pid};
  absl::Status sent = ControlRequest(target, request, [&](const std::string& line) {
    if (line.rfind("progress ", 0) == 0) {
      if (on_progress) on_progress(line.substr(9));
    } else {
      final_line = line;
    }
  });
  if (!sent.ok()) return sent;
  if (final_line.rfind("error ", 0) == 0) return absl::FailedPreconditionError(final_line.substr(6));
  if (final_line.rfind("done ", 0) != 0) {
    return absl::InternalError("the daemon ended its answer without a result");
  }
  return final_line.substr(5);
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

Progress::Progress(std::string what, std::string unit)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      tty_(isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()),
      last_line_(start_) {
  if (const char* seconds = getenv("CAIRN_PROGRESS_SECONDS")) {
    double value = atof(seconds);
    if (value > 0) line_seconds_ = value;
  }
}

void Progress::Update(uint64_t done, uint64_t total, uint64_t bytes, uint64_t total_bytes) {
  const auto now = std::chrono::steady_clock::now();
  if (!tty_ && std::chrono::duration<double>(now - last_line_).count() < line_seconds_) return;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  total = std::max(total, done);
  double fraction = total == 0 ? 1.0 : static_cast<double>(done) / total;
  if (total_bytes > 0) fraction = std::min(1.0, static_cast<double>(bytes) / total_bytes);
  std::string eta = "--:--";
  if (fraction >= 1) {
    eta = "0:00";
  } else if (fraction > 0 && seconds > 0) {
    int64_t left = static_cast<int64_t>(seconds * (1 - fraction) / fraction);
    eta = absl::StrFormat("%d:%02d", left / 60, left % 60);
  }
  const std::string rate = Human(seconds > 0 ? static_cast<uint64_t>(bytes / seconds) : 0);
  if (tty_) {
    constexpr int kWidth = 30;
    std::string bar(static_cast<size_t>(fraction * kWidth), '#');
    bar.resize(kWidth, '-');
    fprintf(stderr, "\r%s [%s] %3.0f%%  %llu/%llu %s  %s/s  ETA %s ", what_.c_str(), bar.c_str(),
            100 * fraction, static_cast<unsigned long long>(done),
            static_cast<unsigned long long>(total), unit_.c_str(), rate.c_str(), eta.c_str());
    shown_ = true;
  } else {
    fprintf(stderr, "%s: %.0f%% done, %llu of %llu %s, %s/s, %s left\n", what_.c_str(),
            100 * fraction, static_cast<unsigned long long>(done),
            static_cast<unsigned long long>(total), unit_.c_str(), rate.c_str(), eta.c_str());
    last_line_ = now;
  }
}

void Progress::Clear() {
  if (shown_) fprintf(stderr, "\r%100s\r", "");
  shown_ = false;
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
  absl::StatusOr<std::string> text =
      ReadFileToString(Env::Default(), config.cache_dir + "/stats.json");
  if (!text.ok()) return "";
  std::string json = text->substr(0, text->find('\n'));
  return json.size() > 2 && json.front() == '{' && json.back() == '}' ? json : "";
}

}  // namespace cairn::cli
