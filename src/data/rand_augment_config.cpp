// Parsing timm's RandAugment string (timm/data/auto_augment.py, rand_augment_transform): see
// rand_augment_config.h.
#include "data/rand_augment_config.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "base/error.h"

namespace vkvit::data {
namespace {

constexpr int kDefaultMagnitudeMax = 10;  // timm's _LEVEL_DENOM, which `mmax0` falls back to

[[noreturn]] void bad_spec(const std::string& spec, const std::string& why) {
  throw Error("RandAugment string '" + spec + "': " + why +
              "; accepted: rand[-m<int>][-n<int>][-p<float>][-mstd<float>][-mmax<int>][-inc<int>], "
              "e.g. rand-m9-mstd0.5-inc1 (timm's RandAugment string)");
}

// Python's int(text) for a run of decimal digits that fits an int.
int parse_int(const std::string& spec, const std::string& section, const std::string& text) {
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) bad_spec(spec, "section '" + section + "' needs an integer");
  errno = 0;
  const long v = std::strtol(text.c_str(), nullptr, 10);
  if (errno == ERANGE || v > std::numeric_limits<int>::max()) bad_spec(spec, "section '" + section + "' is too large");
  return int(v);
}

// Python's float(text) for text that starts with a digit (the only kind timm's split yields).
double parse_float(const std::string& spec, const std::string& section, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v))
    bad_spec(spec, "section '" + section + "' needs a number");
  return v;
}

}  // namespace

RandAugmentConfig parse_rand_augment(const std::string& spec) {
  std::vector<std::string> sections;
  size_t start = 0;
  for (size_t dash; (dash = spec.find('-', start)) != std::string::npos; start = dash + 1)
    sections.push_back(spec.substr(start, dash - start));
  sections.push_back(spec.substr(start));
  if (sections[0] != "rand") bad_spec(spec, "must start with 'rand'");
  RandAugmentConfig c;
  for (size_t i = 1; i < sections.size(); ++i) {
    const std::string& s = sections[i];
    const size_t digit = s.find_first_of("0123456789");  // timm splits each section at its first digit
    if (digit == std::string::npos) bad_spec(spec, "section '" + s + "' has no number");
    const std::string key = s.substr(0, digit), value = s.substr(digit);
    if (key == "m") c.magnitude = parse_int(spec, s, value);
    else if (key == "n") c.num_ops = parse_int(spec, s, value);
    else if (key == "p") c.prob = parse_float(spec, s, value);
    else if (key == "mmax") c.magnitude_max = parse_int(spec, s, value);
    else if (key == "inc") c.increasing = true;  // timm: bool(value) of a non-empty string
    else if (key == "mstd") {
      c.magnitude_std = parse_float(spec, s, value);
      if (c.magnitude_std > 100) c.magnitude_std = std::numeric_limits<double>::infinity();
    } else {
      bad_spec(spec, "unknown section '" + s + "'");
    }
  }
  if (c.magnitude_max == 0) c.magnitude_max = kDefaultMagnitudeMax;  // timm: `magnitude_max or _LEVEL_DENOM`
  return c;
}

}  // namespace vkvit::data
