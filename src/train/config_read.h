// Reading one value of a YAML run config, with the one-line errors of RunConfig::parse
// ("<origin>: <key.path>: <reason>"). The readers here are the vocabulary of the key table
// (config_keys.cpp): each reads a value, checks it and says how it is written back.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace vkvit::train {

// Shortest text that reads back as the same double, with a '.' before any exponent so that YAML
// readers that follow YAML 1.1 (PyYAML) also see a float, not a string.
std::string yaml_number(double v);

// Where a value came from: "<file>:<line>" or "override '<text>'", and the key path.
struct Where {
  std::string origin;
  std::string key;
  [[noreturn]] void fail(const std::string& reason) const;
};

// A value as errors name it: "nothing", "a list", "a mapping" or the quoted scalar.
std::string describe(const YAML::Node& n);

// How one key's value is read and checked (throwing through Where::fail), and how it is written.
template <class T>
struct Reader {
  std::function<T(const YAML::Node&, const Where&)> read;
  bool quoted = false;         // strings: written double-quoted (a path, a name), not bare (a choice)
  bool null_is_empty = false;  // "key:" with nothing after it reads as "", so does the override "key="
};

// A condition on a number and the error that states it; ", got <value>" is appended.
struct Rule {
  bool (*holds)(double);
  const char* requirement;
};

Reader<long long> integer(long long lo, long long hi);  // "must be in [lo, hi]"
Reader<double> number(Rule rule);                       // finite, then the rule
// A list of `count` numbers (0: any non-empty length), each meeting `each` when given.
Reader<std::vector<double>> numbers(size_t count);
Reader<std::vector<double>> numbers(size_t count, Rule each);
Reader<std::vector<double>> range();  // [min, max]: both > 0, min <= max
Reader<bool> boolean();
Reader<std::string> text();           // a non-empty UTF-8 string
Reader<std::string> optional_text();  // any UTF-8 string, "" when the value is missing
Reader<std::string> choice(std::vector<std::string> choices);

// The plain readers behind them, for keys that read in their own way.
std::string read_string(const YAML::Node& n, const Where& w);
std::string read_choice(const YAML::Node& n, const Where& w, const std::vector<std::string>& choices);

}  // namespace vkvit::train
