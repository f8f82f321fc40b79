#include "backend/base/log.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

namespace cairn {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError: return "ERROR";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kDebug: return "DEBUG";
  }
  return "?";
}

void StderrSink(LogLevel level, std::string_view message) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  localtime_r(&now.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
  // One fprintf per line so lines from threads do not interleave.
  fprintf(stderr, "%s.%03ld cairn[%d] %s %.*s\n", stamp, now.tv_nsec / 1000000,
          static_cast<int>(getpid()), LevelName(level),
          static_cast<int>(message.size()), message.data());
}

LogSink& Sink() {
  static LogSink sink = StderrSink;
  return sink;
}

}  // namespace

void SetLogSink(LogSink sink) { Sink() = std::move(sink); }
void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}
void LogLine(LogLevel level, std::string_view message) {
  Sink()(level, message);
}

bool ParseLogLevel(std::string_view text, LogLevel* level) {
  if (text == "error") *level = LogLevel::kError;
  else if (text == "warning" || text == "warn") *level = LogLevel::kWarning;
  else if (text == "info") *level = LogLevel::kInfo;
  else if (text == "debug") *level = LogLevel::kDebug;
  else return false;
  return true;
}

}  // namespace cairn
