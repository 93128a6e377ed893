// Minimal leveled logging to stderr. Level from VKVIT_LOG (error|warn|info|debug), default warn.
// Also the status line (a progress bar on a terminal) that log messages must not break.
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

// The status line: one line redrawn in place at the bottom of stderr (train/progress.h draws its
// bar with it). log() keeps it whole: a message erases it, is printed on a line of its own and the
// status line is drawn again below it. Messages come from any thread, so drawing takes the log's
// lock too. show_status_line writes '\r', the text and an erase-to-end-of-line code: only for a
// terminal (or when the user asked for the bar).
void show_status_line(const std::string& text);
// Erases the status line (when one is shown) so that ordinary output can take its place.
void clear_status_line();

inline void log_warn(const std::string& m) { log(LogLevel::warn, m); }
inline void log_info(const std::string& m) { log(LogLevel::info, m); }
inline void log_debug(const std::string& m) { log(LogLevel::debug, m); }

}  // namespace vkvit
