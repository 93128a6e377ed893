#include "vk/log.h"

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

}  // namespace

LogLevel log_level() { return g_level; }
void set_log_level(LogLevel level) { g_level = level; }
void set_log_prefix(const std::string& prefix) { g_prefix = prefix; }

void log(LogLevel level, const std::string& message) {
  if (level > g_level) return;
  static const char* names[] = {"error", "warning", "info", "debug"};
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "vkvit: %s%s: %s\n", g_prefix.c_str(), names[static_cast<int>(level)], message.c_str());
}

}  // namespace vkvit
