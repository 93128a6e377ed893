#include "base/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace vkvit {
namespace {

LogLevel level_from_env() {
  const char* v = std::getenv("VKVIT_LOG");
  if (!v) return LogLevel::warn;
  if (!std::strcmp(v, "error")) return LogLevel::error;
  if (!std::strcmp(v, "info")) return LogLevel::info;
  if (!std::strcmp(v, "debug")) return LogLevel::debug;
  return LogLevel::warn;
}

LogLevel g_level = level_from_env();
std::mutex g_mutex;
std::string g_prefix;
bool g_status_shown = false;
std::string g_status;  // the status line's text while shown
const char kEraseLine[] = "\r\x1b[K";  // to column 0, erase to the end of the line (VT100/ECMA-48)

}  // namespace

LogLevel log_level() { return g_level; }
void set_log_level(LogLevel level) { g_level = level; }
void set_log_prefix(const std::string& prefix) { g_prefix = prefix; }

void log(LogLevel level, const std::string& message) {
  if (level > g_level) return;
  static const char* names[] = {"error", "warning", "info", "debug"};
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_status_shown) std::fputs(kEraseLine, stderr);
  std::fprintf(stderr, "vkvit: %s%s: %s\n", g_prefix.c_str(), names[static_cast<int>(level)], message.c_str());
  if (g_status_shown) std::fputs(g_status.c_str(), stderr);
  std::fflush(stderr);
}

void show_status_line(const std::string& text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  // One write, the text before the erase: the old line is overwritten rather than blanked first,
  // which would flicker.
  const std::string line = "\r" + text + "\x1b[K";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  g_status = text;
  g_status_shown = true;
}

void clear_status_line() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_status_shown) return;
  std::fputs(kEraseLine, stderr);
  std::fflush(stderr);
  g_status_shown = false;
}

}  // namespace vkvit
