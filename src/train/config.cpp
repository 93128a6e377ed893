// Strict YAML config loading: every key is looked up in its section's key table
// (config_keys.cpp), which reads and checks the value; the rules between fields run once the
// whole file (or all overrides) is applied. Errors carry "<file>:<line>: <key.path>: <reason>" so
// a user can go straight to the line.
#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "base/error.h"
#include "model/safetensors.h"
#include "train/config_keys.h"

namespace vkvit::train {

namespace {

// "model, data, train, output"
std::string section_names() {
  std::string list;
  for_each_section([&](const auto& section) { list += (list.empty() ? "" : ", ") + std::string(section.name); });
  return list;
}

bool is_section(const std::string& name) {
  bool found = false;
  for_each_section([&](const auto& section) { found = found || name == section.name; });
  return found;
}

// Reads one key into its section and notes where it was set.
template <class S>
void read_key(const Key<S>& key, S& section, Reading& r, const YAML::Node& n, const Where& w) {
  key.read(section, r, n, w);
  r.where[w.key] = w;
}

// After the model section: mlp_ratio becomes mlp_dim (int(ratio * dim), as timm computes it).
void finish_model(ModelFields& m, const Reading& r) {
  if (r.mlp_ratio <= 0) return;
  const Where& ratio_where = r.where.at("model.mlp_ratio");
  if (r.where.count("model.mlp_dim")) ratio_where.fail("give mlp_dim or mlp_ratio, not both");
  const double d = r.mlp_ratio * m.dim;
  if (d < 1 || d > double(std::numeric_limits<int>::max()))
    ratio_where.fail("mlp_ratio * dim = " + yaml_number(d) + " is not a usable MLP width");
  m.mlp_dim = int(d);
}

// Rules between fields. `where` maps a key path to where it was set; keys not set there are named
// with `fallback` as their origin.
void check_cross(const RunConfig& c, const std::map<std::string, Where>& where, const std::string& fallback) {
  auto at = [&](const std::string& key) {
    auto it = where.find(key);
    return it != where.end() ? it->second : Where{fallback, key};
  };
  const ModelFields& m = c.model;
  if (m.dim % m.heads != 0)
    at("model.dim").fail("dim " + std::to_string(m.dim) + " must be a multiple of heads " + std::to_string(m.heads));
  if (m.image_size % m.patch_size != 0)
    at("model.image_size")
        .fail("image_size " + std::to_string(m.image_size) + " must be a multiple of patch_size " +
              std::to_string(m.patch_size));
  if (c.data.mean.size() != size_t(m.in_chans))
    at("data.mean").fail("has " + std::to_string(c.data.mean.size()) + " values, model.in_chans is " +
                         std::to_string(m.in_chans));
  if (c.data.std.size() != size_t(m.in_chans))
    at("data.std").fail("has " + std::to_string(c.data.std.size()) + " values, model.in_chans is " +
                        std::to_string(m.in_chans));
  if (c.data.random_crop_padding > 0 && c.data.random_resized_crop)
    at("data.random_crop_padding")
        .fail("needs data.random_resized_crop: false (the padded crop replaces RandomResizedCrop)");
  if (c.train.min_lr > c.train.lr)
    at("train.min_lr")
        .fail("must be <= train.lr (" + yaml_number(c.train.min_lr) + " > " + yaml_number(c.train.lr) + ")");
  // warmup_epochs > epochs is allowed: `--epochs 2` on a 300-epoch config is a smoke run, and the
  // schedule then warms up for the whole run (LrSchedule clamps the warmup to the run).
  // The model's own rules (e.g. which token mixers exist) are the final word.
  try {
    to_vit_config(m).validate();
  } catch (const Error& e) {
    Where{fallback, "model"}.fail(e.what());
  }
}

std::string line_of(const std::string& source, const YAML::Mark& mark) {
  return mark.is_null() ? source : source + ":" + std::to_string(mark.line + 1);
}

std::string stem_of(const std::string& source) { return std::filesystem::path(source).stem().string(); }

// One section's mapping: unknown and repeated keys are refused first, then the keys are applied
// in table order (so a preset comes before the fields that override it).
template <class S>
void read_section(const Section<S>& section, const YAML::Node& keys, const std::string& source, RunConfig& c,
                  Reading& r) {
  std::map<const Key<S>*, std::pair<YAML::Node, Where>> given;
  for (const auto& kv : keys) {
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : describe(kv.first);
    const Where w{line_of(source, kv.first.Mark()), section.name + ("." + name)};
    const Key<S>* key = section.find(name);
    if (!key) w.fail("unknown key; the keys of " + std::string(section.name) + " are " + section.key_names());
    if (given.count(key)) w.fail("key given twice");
    given.emplace(key, std::make_pair(kv.second, w));
  }
  for (const Key<S>& key : section.keys) {
    auto it = given.find(&key);
    if (it != given.end()) read_key(key, c.*section.member, r, it->second.first, it->second.second);
  }
}

// Applies one "section.key=value" to `c`, noting where the key was set in `where`.
void apply_one(RunConfig& c, const std::string& assignment, std::map<std::string, Where>& where) {
  const std::string origin = "override '" + assignment + "'";
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos) throw Error(origin + ": expected section.key=value (e.g. train.lr=0.001)");
  const std::string path = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  const size_t dot = path.find('.');
  const Where w{origin, path};
  if (dot == std::string::npos) w.fail("expected section.key (e.g. train.lr)");
  const std::string section_name = path.substr(0, dot), name = path.substr(dot + 1);
  if (!is_section(section_name)) w.fail("unknown section; the sections are " + section_names());
  for_each_section([&](const auto& section) {
    if (section_name != section.name) return;
    const auto* key = section.find(name);
    if (!key) w.fail("unknown key; the keys of " + section_name + " are " + section.key_names());
    YAML::Node node;
    try {
      node = YAML::Load(value);
    } catch (const YAML::ParserException& e) {
      w.fail("malformed value: " + e.msg);
    }
    if (node.IsNull() && !key->null_is_empty) w.fail("missing value after '='");
    Reading r;
    read_key(*key, c.*section.member, r, node, w);
    finish_model(c.model, r);
  });
  where[path] = w;
}

}  // namespace

RunConfig RunConfig::parse(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(line_of(source, e.mark) + ": malformed YAML: " + e.msg);
  }
  if (root.IsNull()) throw Error(source + ": the config is empty; it needs model, data, train and output sections");
  if (!root.IsMap())
    throw Error(line_of(source, root.Mark()) + ": the top level must be a mapping of sections (" + section_names() +
                "), got " + describe(root));

  RunConfig c;
  c.source = source;
  c.name = stem_of(source);
  Reading r;
  std::set<std::string> seen_sections;
  for (const auto& sec : root) {
    const std::string origin = line_of(source, sec.first.Mark());
    const std::string name = sec.first.IsScalar() ? sec.first.Scalar() : describe(sec.first);
    if (!is_section(name))
      throw Error(origin + ": " + name + ": unknown section; the sections are " + section_names());
    if (!seen_sections.insert(name).second) throw Error(origin + ": " + name + ": section given twice");
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap()) throw Error(origin + ": " + name + ": expected a mapping of keys, got " + describe(sec.second));
    for_each_section([&](const auto& section) {
      if (name == section.name) read_section(section, sec.second, source, c, r);
    });
    if (name == "model") finish_model(c.model, r);
  }
  check_cross(c, r.where, source);
  return c;
}

RunConfig RunConfig::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read the config: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": cannot read the config: " + std::strerror(errno));
  return parse(ss.str(), path);
}

void RunConfig::apply_override(const std::string& assignment) { apply_overrides({assignment}); }

void RunConfig::apply_overrides(const std::vector<std::string>& assignments) {
  RunConfig copy = *this;
  std::map<std::string, Where> where;
  std::string all;
  for (const std::string& assignment : assignments) {
    all += (all.empty() ? "" : ", ") + ("'" + assignment + "'");
    apply_one(copy, assignment, where);
  }
  check_cross(copy, where, assignments.size() == 1 ? "override " + all : "overrides " + all);
  model = copy.model;
  data = copy.data;
  train = copy.train;
  output = copy.output;
}

std::string RunConfig::to_yaml() const {
  YAML::Emitter e;
  e << YAML::Comment("vkvit run config '" + name + "', fully resolved (every key, presets expanded)");
  e << YAML::BeginMap;
  for_each_section([&](const auto& section) {
    e << YAML::Key << section.name << YAML::Value << YAML::BeginMap;
    for (const auto& key : section.keys) {
      if (!key.write) continue;
      e << YAML::Key << key.name << YAML::Value;
      key.write(e, this->*section.member);
    }
    e << YAML::EndMap;
  });
  e << YAML::EndMap;
  if (!e.good()) throw Error("config '" + name + "': cannot write YAML: " + e.GetLastError());
  return std::string(e.c_str()) + "\n";
}

void RunConfig::save(const std::string& path) const {
  const std::string text = to_yaml();
  model::write_file_atomic(path, [&](std::FILE* f) { return std::fwrite(text.data(), 1, text.size(), f) == text.size(); });
}

std::string ModelFields::differences(const ModelFields& o) const { return differences_in(model_keys(), *this, o); }

// Equal when no key differs.
bool ModelFields::operator==(const ModelFields& o) const { return differences(o).empty(); }
bool DataConfig::operator==(const DataConfig& o) const { return differences_in(data_keys(), *this, o).empty(); }
bool TrainConfig::operator==(const TrainConfig& o) const { return differences_in(train_keys(), *this, o).empty(); }
bool OutputConfig::operator==(const OutputConfig& o) const { return differences_in(output_keys(), *this, o).empty(); }

bool RunConfig::operator==(const RunConfig& o) const {
  return model == o.model && data == o.data && train == o.train && output == o.output;
}

model::VitConfig to_vit_config(const ModelFields& m) {
  model::VitConfig v;
  v.name = m.preset;
  v.image_size = m.image_size;
  v.patch_size = m.patch_size;
  v.in_chans = m.in_chans;
  v.dim = m.dim;
  v.depth = m.depth;
  v.heads = m.heads;
  v.mlp_dim = m.mlp_dim;
  v.num_classes = m.num_classes;
  v.pool = m.pool;
  v.mixer = m.mixer;
  v.ln_eps = float(m.ln_eps);
  v.pos_embed = m.pos_embed;
  v.norm = m.norm;
  return v;
}

}  // namespace vkvit::train
