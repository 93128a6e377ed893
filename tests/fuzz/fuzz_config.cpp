// Fuzz target: YAML text and command-line overrides -> train::RunConfig.
// Input layout: the YAML text up to the first NUL byte; after it, NUL-separated overrides
// ("section.key=value") applied together with apply_overrides, as the CLI does.
// A vkvit::Error is the expected answer to a bad config; anything else (a yaml-cpp exception, a
// sanitizer report, a broken promise checked below) is a finding. Promises checked (config.h):
// parse(to_yaml()) gives back an equal config, and a failed override leaves the config unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.h"
#include "train/config.h"

namespace {

using vkvit::train::RunConfig;

[[noreturn]] void broken(const char* what, const std::string& detail) {
  std::fprintf(stderr, "vkvit fuzz config: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void check_round_trip(const RunConfig& c) {
  const std::string yaml = c.to_yaml();
  RunConfig back;
  try {
    back = RunConfig::parse(yaml, "fuzz.yaml");
  } catch (const vkvit::Error& e) {
    broken("to_yaml() of an accepted config does not parse back", std::string(e.what()) + "\n" + yaml);
  }
  if (back != c)
    broken("parse(to_yaml()) differs from the config", back.model.differences(c.model) + "\n" + yaml);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string yaml = input.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string::npos) {
    size_t at = nul + 1;
    while (at <= input.size()) {
      const size_t end = std::min(input.find('\0', at), input.size());
      if (end > at) overrides.push_back(input.substr(at, end - at));
      at = end + 1;
    }
  }

  RunConfig c;
  try {
    c = RunConfig::parse(yaml, "fuzz.yaml");
  } catch (const vkvit::Error&) {
    return 0;  // rejected with a message: the expected outcome for bad input
  }
  check_round_trip(c);
  if (overrides.empty()) return 0;

  const RunConfig before = c;
  try {
    c.apply_overrides(overrides);
  } catch (const vkvit::Error&) {
    if (c != before) broken("a failed override changed the config", c.model.differences(before.model));
    return 0;
  }
  check_round_trip(c);
  return 0;
}
