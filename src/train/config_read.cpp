#include "train/config_read.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/error.h"
#include "data/utf8.h"

namespace vkvit::train {

std::string yaml_number(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  const size_t e = s.find('e');
  if (e != std::string::npos && s.find('.') == std::string::npos) s.insert(e, ".0");
  return s;
}

void Where::fail(const std::string& reason) const { throw Error(origin + ": " + key + ": " + reason); }

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    default: return "an undefined value";
  }
}

namespace {

// A quoted scalar ("1e-3") is a string to YAML; numbers and booleans must be written bare.
bool quoted(const YAML::Node& n) { return n.Tag() == "!"; }

double read_number(const YAML::Node& n, const Where& w) {
  double v = 0;
  if (!n.IsScalar() || quoted(n) || !YAML::convert<double>::decode(n, v))
    w.fail("expected a number, got " + describe(n));
  if (!std::isfinite(v)) w.fail("must be finite, got " + n.Scalar());
  return v;
}

void check(Rule rule, double v, const Where& w) {
  if (!rule.holds(v)) w.fail(std::string(rule.requirement) + ", got " + yaml_number(v));
}

}  // namespace

std::string read_string(const YAML::Node& n, const Where& w) {
  if (!n.IsScalar()) w.fail("expected a string, got " + describe(n));
  // to_yaml() could not write other bytes back (the emitter replaces them), so the saved
  // config.yaml would name another folder than the run used.
  if (!data::valid_utf8(n.Scalar())) w.fail("is not valid UTF-8 text; YAML configs are UTF-8 (rename the folder or file)");
  return n.Scalar();
}

std::string read_choice(const YAML::Node& n, const Where& w, const std::vector<std::string>& choices) {
  const std::string s = read_string(n, w);
  if (std::find(choices.begin(), choices.end(), s) != choices.end()) return s;
  std::string list;
  for (const std::string& c : choices) list += (list.empty() ? "" : " | ") + c;
  w.fail("must be one of " + list + ", got '" + s + "'");
}

Reader<long long> integer(long long lo, long long hi) {
  return {[lo, hi](const YAML::Node& n, const Where& w) {
    long long v = 0;
    if (!n.IsScalar() || quoted(n) || !YAML::convert<long long>::decode(n, v))
      w.fail("expected an integer, got " + describe(n));
    if (v < lo || v > hi)
      w.fail("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
    return v;
  }};
}

Reader<double> number(Rule rule) {
  return {[rule](const YAML::Node& n, const Where& w) {
    const double v = read_number(n, w);
    check(rule, v, w);
    return v;
  }};
}

Reader<std::vector<double>> numbers(size_t count) {
  return {[count](const YAML::Node& n, const Where& w) {
    if (!n.IsSequence()) w.fail("expected a list of numbers, got " + describe(n));
    if (count ? n.size() != count : n.size() == 0)
      w.fail(count ? "expected a list of " + std::to_string(count) + " numbers, got " + std::to_string(n.size())
                   : std::string("expected a non-empty list of numbers"));
    std::vector<double> v;
    for (size_t i = 0; i < n.size(); ++i)
      v.push_back(read_number(n[i], Where{w.origin, w.key + "[" + std::to_string(i) + "]"}));
    return v;
  }};
}

Reader<std::vector<double>> numbers(size_t count, Rule each) {
  return {[read = numbers(count).read, each](const YAML::Node& n, const Where& w) {
    std::vector<double> v = read(n, w);
    for (double d : v) check(each, d, w);
    return v;
  }};
}

Reader<std::vector<double>> range() {
  return {[read = numbers(2).read](const YAML::Node& n, const Where& w) {
    std::vector<double> v = read(n, w);
    const std::string shown = "[" + yaml_number(v[0]) + ", " + yaml_number(v[1]) + "]";
    if (!(v[0] > 0 && v[1] > 0)) w.fail("values must be > 0, got " + shown);
    if (!(v[0] <= v[1])) w.fail("min must be <= max, got " + shown);
    return v;
  }};
}

Reader<bool> boolean() {
  return {[](const YAML::Node& n, const Where& w) {
    bool v = false;
    if (!n.IsScalar() || quoted(n) || !YAML::convert<bool>::decode(n, v))
      w.fail("expected true or false, got " + describe(n));
    return v;
  }};
}

Reader<std::string> text() {
  Reader<std::string> r{[](const YAML::Node& n, const Where& w) {
    std::string s = read_string(n, w);
    if (s.empty()) w.fail("must not be empty");
    return s;
  }};
  r.quoted = true;
  return r;
}

Reader<std::string> optional_text() {
  Reader<std::string> r{
      [](const YAML::Node& n, const Where& w) { return n.IsNull() ? std::string() : read_string(n, w); }};
  r.quoted = true;
  r.null_is_empty = true;
  return r;
}

Reader<std::string> choice(std::vector<std::string> choices) {
  return {[choices = std::move(choices)](const YAML::Node& n, const Where& w) { return read_choice(n, w, choices); }};
}

}  // namespace vkvit::train
