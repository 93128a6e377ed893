// The keys of a run config: one table per section (config_keys.cpp), one line per key giving its
// name, its member, how it is read and checked, and what it means. Reading a file or an override,
// writing to_yaml(), equality and differences() all walk these tables, so a plain key is added
// with its member (config.h) and its table line.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "train/config.h"
#include "train/config_read.h"

namespace YAML {
class Emitter;
}

namespace vkvit::train {

// The state of reading one file or one override, beyond the config itself.
struct Reading {
  std::map<std::string, Where> where;  // key path -> where it was set (for the rules between fields)
  double mlp_ratio = 0;                // > 0 once model.mlp_ratio is read; it becomes mlp_dim
};

// One key of section S.
template <class S>
struct Key {
  const char* name;
  const char* doc;  // its meaning; its default is the member's initializer in config.h
  bool null_is_empty = false;
  std::function<void(S&, Reading&, const YAML::Node&, const Where&)> read;
  // Both empty for a key that is read but not kept (model.mlp_ratio, resolved into mlp_dim).
  std::function<void(YAML::Emitter&, const S&)> write;
  std::function<std::string(const S&, const S&)> difference;  // "dim 64 vs 128", "" when equal
};

template <class S>
struct Section {
  const char* name;
  S RunConfig::*member;
  std::vector<Key<S>> keys;  // in the order they are applied and written

  const Key<S>* find(const std::string& key) const {
    for (const Key<S>& k : keys)
      if (key == k.name) return &k;
    return nullptr;
  }
  // "dir, train_split, ...": for the error on an unknown key.
  std::string key_names() const {
    std::string list;
    for (const Key<S>& k : keys) list += (list.empty() ? "" : ", ") + std::string(k.name);
    return list;
  }
};

const Section<ModelFields>& model_keys();
const Section<DataConfig>& data_keys();
const Section<TrainConfig>& train_keys();
const Section<OutputConfig>& output_keys();

// Calls f(section) for the four sections in the order of the YAML file.
template <class F>
void for_each_section(F&& f) {
  f(model_keys());
  f(data_keys());
  f(train_keys());
  f(output_keys());
}

// The fields of `a` that differ from `b`, joined with ", " ("" when equal).
template <class S>
std::string differences_in(const Section<S>& section, const S& a, const S& b) {
  std::string out;
  for (const Key<S>& k : section.keys) {
    if (!k.difference) continue;
    const std::string d = k.difference(a, b);
    if (!d.empty()) out += (out.empty() ? "" : ", ") + d;
  }
  return out;
}

}  // namespace vkvit::train
