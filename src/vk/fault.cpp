// Fault injection switches; see fault.h for what each variable does.
#include "vk/fault.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "base/log.h"

namespace vkvit::vk::fault {

namespace {

// A positive integer with an optional K/M/G suffix (`sized`); throws naming the variable.
uint64_t parse_count(const char* name, const std::string& text, bool sized) {
  const char* s = text.c_str();
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s, &end, 10);
  uint64_t scale = 1;
  if (sized && end && *end) {
    const char c = *end;
    scale = c == 'K' || c == 'k' ? 1ull << 10 : c == 'M' || c == 'm' ? 1ull << 20 : c == 'G' || c == 'g' ? 1ull << 30 : 0;
    if (scale) ++end;
  }
  if (end == s || !end || *end != '\0' || errno == ERANGE || v == 0 || scale == 0 || text[0] == '-')
    throw Error(std::string(name) + "='" + text + "' is not " +
                (sized ? "a byte count (e.g. 64M)" : "a positive integer") + "; fix or unset it (see src/vk/fault.h)");
  return uint64_t(v) * scale;
}

Faults read_env() {
  Faults f;
  if (const char* v = std::getenv("VKVIT_FAULT_NAN_AT_STEP"); v && *v) {
    const std::string text = v;
    const size_t comma = text.find(',');
    f.nan_step = parse_count("VKVIT_FAULT_NAN_AT_STEP", text.substr(0, comma), false);
    if (comma != std::string::npos) f.nan_count = parse_count("VKVIT_FAULT_NAN_AT_STEP", text.substr(comma + 1), false);
    log_warn("fault injection: NaN in the batch of step " + std::to_string(f.nan_step) + " (" +
             std::to_string(f.nan_count) + " attempt" + (f.nan_count == 1 ? "" : "s") + ")");
  }
  if (const char* v = std::getenv("VKVIT_FAULT_DEVICE_MEMORY_LIMIT"); v && *v) {
    f.device_memory_limit = parse_count("VKVIT_FAULT_DEVICE_MEMORY_LIMIT", v, true);
    log_warn("fault injection: device memory limited to " + std::to_string(f.device_memory_limit) + " bytes");
  }
  if (const char* v = std::getenv("VKVIT_FAULT_DEVICE_LOST_AT_STEP"); v && *v) {
    f.device_lost_step = parse_count("VKVIT_FAULT_DEVICE_LOST_AT_STEP", v, false);
    log_warn("fault injection: device lost at step " + std::to_string(f.device_lost_step));
  }
  return f;
}

}  // namespace

const Faults& faults() {
  static const Faults f = read_env();
  return f;
}

bool nan_at(uint64_t step, uint64_t attempt) {
  const Faults& f = faults();
  return f.nan_step != 0 && step == f.nan_step && attempt < f.nan_count;
}

uint64_t save_delay_ms() {
  static const uint64_t ms = [] {
    const char* v = std::getenv("VKVIT_FAULT_SAVE_DELAY_MS");
    return v ? uint64_t(std::max(std::atoi(v), 0)) : 0;
  }();
  return ms;
}

bool device_lost_at(uint64_t step) {
  static std::atomic<bool> fired{false};
  const Faults& f = faults();
  if (f.device_lost_step == 0 || step != f.device_lost_step) return false;
  return !fired.exchange(true);
}

}  // namespace vkvit::vk::fault
