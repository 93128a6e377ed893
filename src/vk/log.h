// Minimal leveled logging to stderr. Level from VKVIT_LOG (error|warn|info|debug), default warn.
#pragma once
#include <string>

namespace vkvit {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

LogLevel log_level();
void set_log_level(LogLevel level);
// Text put before every message, e.g. "rank 1 of 2 on host: " in a data-parallel run, so that
// each rank's warnings say whose they are.
void set_log_prefix(const std::string& prefix);
void log(LogLevel level, const std::string& message);

inline void log_warn(const std::string& m) { log(LogLevel::warn, m); }
inline void log_info(const std::string& m) { log(LogLevel::info, m); }
inline void log_debug(const std::string& m) { log(LogLevel::debug, m); }

}  // namespace vkvit
