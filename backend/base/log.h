// One log line per event, with a level. Where lines go is the daemon's
// choice (stderr in the foreground, syslog when daemonized); library code
// only calls LogError/LogWarning/LogInfo/LogDebug.
#pragma once

#include <functional>
#include <string_view>

#include "absl/strings/str_format.h"

namespace cairn {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

using LogSink = std::function<void(LogLevel, std::string_view)>;

// Replaces the sink (default: stderr with a timestamp and level). Call before
// threads start; not synchronised with concurrent logging.
void SetLogSink(LogSink sink);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);
// Parses "error", "warning", "info", "debug"; false if none of them.
bool ParseLogLevel(std::string_view text, LogLevel* level);

template <typename... Args>
void Log(LogLevel level, const absl::FormatSpec<Args...>& format,
         const Args&... args) {
  if (LogEnabled(level)) LogLine(level, absl::StrFormat(format, args...));
}
template <typename... Args>
void LogError(const absl::FormatSpec<Args...>& f, const Args&... a) {
  Log(LogLevel::kError, f, a...);
}
template <typename... Args>
void LogWarning(const absl::FormatSpec<Args...>& f, const Args&... a) {
  Log(LogLevel::kWarning, f, a...);
}
template <typename... Args>
void LogInfo(const absl::FormatSpec<Args...>& f, const Args&... a) {
  Log(LogLevel::kInfo, f, a...);
}
template <typename... Args>
void LogDebug(const absl::FormatSpec<Args...>& f, const Args&... a) {
  Log(LogLevel::kDebug, f, a...);
}

}  // namespace cairn
