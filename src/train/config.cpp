// Strict YAML config loading: every key is looked up in one table of fields, each field reads its
// own type and range, and cross-field rules run once the whole file (or an override) is applied.
// Errors carry "<file>:<line>: <key.path>: <reason>" so a user can go straight to the line.
#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "base/error.h"
#include "data/utf8.h"
#include "model/safetensors.h"

namespace vkvit::train {

namespace {

// Shortest text that reads back as the same double, with a '.' before any exponent so that YAML
// readers that follow YAML 1.1 (PyYAML) also see a float, not a string.
std::string fmt(double v) {
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

// The decimal a float was written as (1e-6f -> 1e-6, not 9.99999997e-07), so that a preset's
// float LayerNorm epsilon reads as the number its author typed.
double decimal_of(float f) {
  char buf[64];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, double(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

// Where a value came from: "<file>:<line>" or "override '<text>'", and the key path.
struct Where {
  std::string origin;
  std::string key;
  [[noreturn]] void fail(const std::string& reason) const { throw Error(origin + ": " + key + ": " + reason); }
};

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    default: return "an undefined value";
  }
}

// A quoted scalar ("1e-3") is a string to YAML; numbers and booleans must be written bare.
bool quoted(const YAML::Node& n) { return n.Tag() == "!"; }

double read_number(const YAML::Node& n, const Where& w) {
  double v = 0;
  if (!n.IsScalar() || quoted(n) || !YAML::convert<double>::decode(n, v))
    w.fail("expected a number, got " + describe(n));
  if (!std::isfinite(v)) w.fail("must be finite, got " + n.Scalar());
  return v;
}

long long read_int(const YAML::Node& n, const Where& w, long long lo, long long hi) {
  long long v = 0;
  if (!n.IsScalar() || quoted(n) || !YAML::convert<long long>::decode(n, v))
    w.fail("expected an integer, got " + describe(n));
  if (v < lo || v > hi)
    w.fail("must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
  return v;
}

bool read_bool(const YAML::Node& n, const Where& w) {
  bool v = false;
  if (!n.IsScalar() || quoted(n) || !YAML::convert<bool>::decode(n, v))
    w.fail("expected true or false, got " + describe(n));
  return v;
}

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

// A list of numbers; `count` 0 = any non-empty length.
std::vector<double> read_numbers(const YAML::Node& n, const Where& w, size_t count) {
  if (!n.IsSequence()) w.fail("expected a list of numbers, got " + describe(n));
  if (count ? n.size() != count : n.size() == 0)
    w.fail(count ? "expected a list of " + std::to_string(count) + " numbers, got " + std::to_string(n.size())
                 : std::string("expected a non-empty list of numbers"));
  std::vector<double> v;
  for (size_t i = 0; i < n.size(); ++i) v.push_back(read_number(n[i], Where{w.origin, w.key + "[" + std::to_string(i) + "]"}));
  return v;
}

void require(bool ok, const Where& w, const std::string& reason) {
  if (!ok) w.fail(reason);
}

// A number that must be >= 0 (or > 0 when `positive`), the common case of the optimizer keys.
double read_non_negative(const YAML::Node& n, const Where& w, bool positive, const std::string& note = "") {
  const double v = read_number(n, w);
  if (positive) require(v > 0, w, "must be > 0" + note + ", got " + fmt(v));
  else require(v >= 0, w, "must be >= 0" + note + ", got " + fmt(v));
  return v;
}

// A [min, max] range of positive numbers.
std::vector<double> read_range(const YAML::Node& n, const Where& w) {
  std::vector<double> v = read_numbers(n, w, 2);
  require(v[0] > 0 && v[1] > 0, w, "values must be > 0, got [" + fmt(v[0]) + ", " + fmt(v[1]) + "]");
  require(v[0] <= v[1], w, "min must be <= max, got [" + fmt(v[0]) + ", " + fmt(v[1]) + "]");
  return v;
}

constexpr long long kIntMax = std::numeric_limits<int>::max();

// State of one load or override: the config being built and what the model section asked for.
struct Ctx {
  RunConfig& c;
  bool mlp_dim_set = false;
  double mlp_ratio = 0;  // > 0 once given
  Where mlp_ratio_where;
};

using Setter = void (*)(Ctx&, const YAML::Node&, const Where&);
struct Field {
  const char* section;
  const char* key;
  Setter set;
};

#define SETTER [](Ctx & x, const YAML::Node& n, const Where& w)

void apply_preset(ModelFields& m, const std::string& name, const Where& w) {
  model::VitConfig v;
  try {
    v = model::VitConfig::preset(name);
  } catch (const Error& e) {
    w.fail(e.what());
  }
  m.preset = name;
  m.image_size = v.image_size;
  m.patch_size = v.patch_size;
  m.in_chans = v.in_chans;
  m.dim = v.dim;
  m.depth = v.depth;
  m.heads = v.heads;
  m.mlp_dim = v.mlp_dim;
  m.num_classes = v.num_classes;
  m.pool = v.pool;
  m.mixer = v.mixer;
  m.ln_eps = decimal_of(v.ln_eps);
}

// `preset` comes first in this table: a section applies its keys in table order, so explicit
// fields override the preset wherever they appear in the file.
const Field kFields[] = {
    {"model", "preset",
     SETTER {
       // "" (as written for a model without a preset) names no preset and changes no field.
       const std::string name = n.IsNull() ? std::string() : read_string(n, w);
       if (name.empty()) x.c.model.preset.clear();
       else apply_preset(x.c.model, name, w);
     }},
    {"model", "image_size", SETTER { x.c.model.image_size = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "patch_size", SETTER { x.c.model.patch_size = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "in_chans", SETTER { x.c.model.in_chans = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "dim", SETTER { x.c.model.dim = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "depth", SETTER { x.c.model.depth = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "heads", SETTER { x.c.model.heads = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "mlp_dim",
     SETTER {
       x.c.model.mlp_dim = int(read_int(n, w, 1, kIntMax));
       x.mlp_dim_set = true;
     }},
    {"model", "mlp_ratio",
     SETTER {
       const double r = read_number(n, w);
       require(r > 0, w, "must be > 0, got " + fmt(r));
       x.mlp_ratio = r;
       x.mlp_ratio_where = w;
     }},
    {"model", "num_classes", SETTER { x.c.model.num_classes = int(read_int(n, w, 1, kIntMax)); }},
    {"model", "pool", SETTER { x.c.model.pool = read_choice(n, w, {"cls", "mean"}); }},
    {"model", "mixer",
     SETTER {
       // One name for every block, or a list with one per block (kept as "a,b,c").
       const std::vector<std::string> choices{"attention", "global_filter"};
       if (n.IsSequence()) {
         require(n.size() > 0, w, "must not be an empty list");
         std::string list;
         for (size_t i = 0; i < n.size(); ++i) list += (i ? "," : "") + read_choice(n[i], w, choices);
         x.c.model.mixer = list;
       } else {
         x.c.model.mixer = read_string(n, w);
         require(!x.c.model.mixer.empty(), w, "must not be empty");
       }
     }},
    {"model", "ln_eps",
     SETTER {
       const double v = read_number(n, w);
       require(v > 0 && v < 1, w, "must be in (0, 1), got " + fmt(v));
       x.c.model.ln_eps = v;
     }},

    {"data", "dir", SETTER { x.c.data.dir = n.IsNull() ? std::string() : read_string(n, w); }},
    {"data", "train_split",
     SETTER {
       x.c.data.train_split = read_string(n, w);
       require(!x.c.data.train_split.empty(), w, "must not be empty");
     }},
    {"data", "val_split",
     SETTER {
       x.c.data.val_split = read_string(n, w);
       require(!x.c.data.val_split.empty(), w, "must not be empty");
     }},
    {"data", "workers", SETTER { x.c.data.workers = int(read_int(n, w, 1, 256)); }},
    {"data", "mean", SETTER { x.c.data.mean = read_numbers(n, w, 0); }},
    {"data", "std",
     SETTER {
       std::vector<double> v = read_numbers(n, w, 0);
       for (double s : v) require(s > 0, w, "every value must be > 0, got " + fmt(s));
       x.c.data.std = v;
     }},
    {"data", "crop_pct",
     SETTER {
       const double v = read_number(n, w);
       require(v > 0 && v <= 1, w, "must be in (0, 1], got " + fmt(v));
       x.c.data.crop_pct = v;
     }},
    {"data", "interpolation",
     SETTER { x.c.data.interpolation = read_choice(n, w, {"nearest", "bilinear", "bicubic", "area", "lanczos"}); }},
    {"data", "random_resized_crop", SETTER { x.c.data.random_resized_crop = read_bool(n, w); }},
    {"data", "scale",
     SETTER {
       std::vector<double> v = read_range(n, w);
       require(v[1] <= 1, w, "max must be <= 1 (a fraction of the image area), got " + fmt(v[1]));
       x.c.data.scale = v;
     }},
    {"data", "ratio", SETTER { x.c.data.ratio = read_range(n, w); }},
    {"data", "hflip",
     SETTER {
       const double v = read_number(n, w);
       require(v >= 0 && v <= 1, w, "is a probability in [0, 1], got " + fmt(v));
       x.c.data.hflip = v;
     }},
    {"data", "max_pixels",
     SETTER { x.c.data.max_pixels = uint64_t(read_int(n, w, 1, std::numeric_limits<long long>::max())); }},

    {"train", "epochs", SETTER { x.c.train.epochs = int(read_int(n, w, 1, 1000000)); }},
    {"train", "batch_size", SETTER { x.c.train.batch_size = int(read_int(n, w, 1, 1 << 20)); }},
    {"train", "lr", SETTER { x.c.train.lr = read_non_negative(n, w, true); }},
    {"train", "min_lr", SETTER { x.c.train.min_lr = read_non_negative(n, w, false); }},
    {"train", "warmup_epochs", SETTER { x.c.train.warmup_epochs = read_non_negative(n, w, false); }},
    {"train", "warmup_lr", SETTER { x.c.train.warmup_lr = read_non_negative(n, w, false); }},
    {"train", "weight_decay", SETTER { x.c.train.weight_decay = read_non_negative(n, w, false); }},
    {"train", "betas",
     SETTER {
       std::vector<double> v = read_numbers(n, w, 2);
       for (double b : v) require(b >= 0 && b < 1, w, "each beta must be in [0, 1), got " + fmt(b));
       x.c.train.betas = v;
     }},
    {"train", "eps", SETTER { x.c.train.eps = read_non_negative(n, w, true); }},
    {"train", "clip_grad", SETTER { x.c.train.clip_grad = read_non_negative(n, w, false, " (0 = off)"); }},
    {"train", "label_smoothing",
     SETTER {
       const double v = read_number(n, w);
       require(v >= 0 && v < 1, w, "must be in [0, 1), got " + fmt(v));
       x.c.train.label_smoothing = v;
     }},
    {"train", "seed",
     SETTER { x.c.train.seed = uint64_t(read_int(n, w, 0, std::numeric_limits<long long>::max())); }},
    {"train", "eval_every", SETTER { x.c.train.eval_every = int(read_int(n, w, 1, kIntMax)); }},
    {"train", "log_every", SETTER { x.c.train.log_every = int(read_int(n, w, 1, kIntMax)); }},
    {"train", "max_nonfinite_steps", SETTER { x.c.train.max_nonfinite_steps = int(read_int(n, w, 0, kIntMax)); }},
    {"train", "amp", SETTER { x.c.train.amp = read_bool(n, w); }},
    {"train", "lr_scaling", SETTER { x.c.train.lr_scaling = read_choice(n, w, {"none", "linear"}); }},

    {"output", "dir",
     SETTER {
       x.c.output.dir = read_string(n, w);
       require(!x.c.output.dir.empty(), w, "must not be empty");
     }},
};
#undef SETTER

const char* const kSections[] = {"model", "data", "train", "output"};

std::string keys_of(const std::string& section) {
  std::string list;
  for (const Field& f : kFields)
    if (section == f.section) list += (list.empty() ? "" : ", ") + std::string(f.key);
  return list;
}

const Field* find_field(const std::string& section, const std::string& key) {
  for (const Field& f : kFields)
    if (section == f.section && key == f.key) return &f;
  return nullptr;
}

// After the model section: mlp_ratio becomes mlp_dim (int(ratio * dim), as timm computes it).
void finish_model(Ctx& x) {
  if (x.mlp_ratio <= 0) return;
  if (x.mlp_dim_set) x.mlp_ratio_where.fail("give mlp_dim or mlp_ratio, not both");
  const double d = x.mlp_ratio * x.c.model.dim;
  if (d < 1 || d > double(kIntMax))
    x.mlp_ratio_where.fail("mlp_ratio * dim = " + fmt(d) + " is not a usable MLP width");
  x.c.model.mlp_dim = int(d);
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
  if (c.train.min_lr > c.train.lr)
    at("train.min_lr").fail("must be <= train.lr (" + fmt(c.train.min_lr) + " > " + fmt(c.train.lr) + ")");
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
    throw Error(line_of(source, root.Mark()) + ": the top level must be a mapping of sections (model, data, train, "
                                               "output), got " + describe(root));

  RunConfig c;
  c.source = source;
  c.name = stem_of(source);
  Ctx x{c};
  std::map<std::string, Where> where;
  std::set<std::string> seen_sections;
  for (const auto& sec : root) {
    const std::string origin = line_of(source, sec.first.Mark());
    const std::string section = sec.first.IsScalar() ? sec.first.Scalar() : describe(sec.first);
    if (std::find(std::begin(kSections), std::end(kSections), section) == std::end(kSections))
      throw Error(origin + ": " + section + ": unknown section; the sections are model, data, train, output");
    if (!seen_sections.insert(section).second) throw Error(origin + ": " + section + ": section given twice");
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap()) throw Error(origin + ": " + section + ": expected a mapping of keys, got " + describe(sec.second));

    // Collect first (duplicates, unknown keys), then apply in table order.
    std::map<const Field*, std::pair<YAML::Node, Where>> given;
    for (const auto& kv : sec.second) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : describe(kv.first);
      const Where w{line_of(source, kv.first.Mark()), section + "." + key};
      const Field* f = find_field(section, key);
      if (!f) w.fail("unknown key; the keys of " + section + " are " + keys_of(section));
      if (given.count(f)) w.fail("key given twice");
      given.emplace(f, std::make_pair(kv.second, w));
    }
    for (const Field& f : kFields) {
      auto it = given.find(&f);
      if (it == given.end()) continue;
      f.set(x, it->second.first, it->second.second);
      where[it->second.second.key] = it->second.second;
    }
    if (section == "model") finish_model(x);
  }
  check_cross(c, where, source);
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
    const std::string origin = "override '" + assignment + "'";
    all += (all.empty() ? "" : ", ") + ("'" + assignment + "'");
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos) throw Error(origin + ": expected section.key=value (e.g. train.lr=0.001)");
    const std::string path = assignment.substr(0, eq);
    const std::string value = assignment.substr(eq + 1);
    const size_t dot = path.find('.');
    const Where w{origin, path};
    if (dot == std::string::npos) w.fail("expected section.key (e.g. train.lr)");
    const std::string section = path.substr(0, dot), key = path.substr(dot + 1);
    if (std::find(std::begin(kSections), std::end(kSections), section) == std::end(kSections))
      w.fail("unknown section; the sections are model, data, train, output");
    const Field* f = find_field(section, key);
    if (!f) w.fail("unknown key; the keys of " + section + " are " + keys_of(section));

    YAML::Node node;
    try {
      node = YAML::Load(value);
    } catch (const YAML::ParserException& e) {
      w.fail("malformed value: " + e.msg);
    }
    if (node.IsNull() && path != "data.dir" && path != "model.preset") w.fail("missing value after '='");
    Ctx x{copy};
    f->set(x, node, w);
    finish_model(x);
    where[path] = w;
  }
  check_cross(copy, where, assignments.size() == 1 ? "override " + all : "overrides " + all);
  model = copy.model;
  data = copy.data;
  train = copy.train;
  output = copy.output;
}

std::string RunConfig::to_yaml() const {
  YAML::Emitter e;
  auto num = [&](double v) { e << fmt(v); };
  auto nums = [&](const std::vector<double>& v) {
    e << YAML::Flow << YAML::BeginSeq;
    for (double d : v) num(d);
    e << YAML::EndSeq;
  };
  auto str = [&](const std::string& s) {
    // Quote always: a path such as "1e5" or "true" must come back as a string.
    e << YAML::DoubleQuoted << s;
  };
  e << YAML::Comment("vkvit run config '" + name + "', fully resolved (every key, presets expanded)");
  e << YAML::BeginMap;
  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "preset" << YAML::Value;
  str(model.preset);
  e << YAML::Key << "image_size" << YAML::Value << model.image_size;
  e << YAML::Key << "patch_size" << YAML::Value << model.patch_size;
  e << YAML::Key << "in_chans" << YAML::Value << model.in_chans;
  e << YAML::Key << "dim" << YAML::Value << model.dim;
  e << YAML::Key << "depth" << YAML::Value << model.depth;
  e << YAML::Key << "heads" << YAML::Value << model.heads;
  e << YAML::Key << "mlp_dim" << YAML::Value << model.mlp_dim;
  e << YAML::Key << "num_classes" << YAML::Value << model.num_classes;
  e << YAML::Key << "pool" << YAML::Value << model.pool;
  e << YAML::Key << "mixer" << YAML::Value << model.mixer;
  e << YAML::Key << "ln_eps" << YAML::Value;
  num(model.ln_eps);
  e << YAML::EndMap;

  e << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "dir" << YAML::Value;
  str(data.dir);
  e << YAML::Key << "train_split" << YAML::Value;
  str(data.train_split);
  e << YAML::Key << "val_split" << YAML::Value;
  str(data.val_split);
  e << YAML::Key << "workers" << YAML::Value << data.workers;
  e << YAML::Key << "mean" << YAML::Value;
  nums(data.mean);
  e << YAML::Key << "std" << YAML::Value;
  nums(data.std);
  e << YAML::Key << "crop_pct" << YAML::Value;
  num(data.crop_pct);
  e << YAML::Key << "interpolation" << YAML::Value << data.interpolation;
  e << YAML::Key << "random_resized_crop" << YAML::Value << data.random_resized_crop;
  e << YAML::Key << "scale" << YAML::Value;
  nums(data.scale);
  e << YAML::Key << "ratio" << YAML::Value;
  nums(data.ratio);
  e << YAML::Key << "hflip" << YAML::Value;
  num(data.hflip);
  e << YAML::Key << "max_pixels" << YAML::Value << data.max_pixels;
  e << YAML::EndMap;

  e << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "epochs" << YAML::Value << train.epochs;
  e << YAML::Key << "batch_size" << YAML::Value << train.batch_size;
  e << YAML::Key << "lr" << YAML::Value;
  num(train.lr);
  e << YAML::Key << "min_lr" << YAML::Value;
  num(train.min_lr);
  e << YAML::Key << "warmup_epochs" << YAML::Value;
  num(train.warmup_epochs);
  e << YAML::Key << "warmup_lr" << YAML::Value;
  num(train.warmup_lr);
  e << YAML::Key << "weight_decay" << YAML::Value;
  num(train.weight_decay);
  e << YAML::Key << "betas" << YAML::Value;
  nums(train.betas);
  e << YAML::Key << "eps" << YAML::Value;
  num(train.eps);
  e << YAML::Key << "clip_grad" << YAML::Value;
  num(train.clip_grad);
  e << YAML::Key << "label_smoothing" << YAML::Value;
  num(train.label_smoothing);
  e << YAML::Key << "seed" << YAML::Value << train.seed;
  e << YAML::Key << "eval_every" << YAML::Value << train.eval_every;
  e << YAML::Key << "log_every" << YAML::Value << train.log_every;
  e << YAML::Key << "max_nonfinite_steps" << YAML::Value << train.max_nonfinite_steps;
  e << YAML::Key << "amp" << YAML::Value << train.amp;
  e << YAML::Key << "lr_scaling" << YAML::Value << train.lr_scaling;
  e << YAML::EndMap;

  e << YAML::Key << "output" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "dir" << YAML::Value;
  str(output.dir);
  e << YAML::EndMap;
  e << YAML::EndMap;
  if (!e.good()) throw Error("config '" + name + "': cannot write YAML: " + e.GetLastError());
  return std::string(e.c_str()) + "\n";
}

void RunConfig::save(const std::string& path) const {
  const std::string text = to_yaml();
  model::write_file_atomic(path, [&](std::FILE* f) { return std::fwrite(text.data(), 1, text.size(), f) == text.size(); });
}

std::string ModelFields::differences(const ModelFields& o) const {
  std::string out;
  auto field = [&](const char* name, const auto& a, const auto& b) {
    if (a == b) return;
    std::ostringstream line;
    line << (out.empty() ? "" : ", ") << name << " " << a << " vs " << b;
    out += line.str();
  };
  field("preset", preset, o.preset);
  field("image_size", image_size, o.image_size);
  field("patch_size", patch_size, o.patch_size);
  field("in_chans", in_chans, o.in_chans);
  field("dim", dim, o.dim);
  field("depth", depth, o.depth);
  field("heads", heads, o.heads);
  field("mlp_dim", mlp_dim, o.mlp_dim);
  field("num_classes", num_classes, o.num_classes);
  field("pool", pool, o.pool);
  field("mixer", mixer, o.mixer);
  field("ln_eps", ln_eps, o.ln_eps);
  return out;
}

// One field list: equality is "no field differs".
bool ModelFields::operator==(const ModelFields& o) const { return differences(o).empty(); }

bool DataConfig::operator==(const DataConfig& o) const {
  return dir == o.dir && train_split == o.train_split && val_split == o.val_split && workers == o.workers &&
         mean == o.mean && std == o.std && crop_pct == o.crop_pct && interpolation == o.interpolation &&
         random_resized_crop == o.random_resized_crop && scale == o.scale && ratio == o.ratio && hflip == o.hflip &&
         max_pixels == o.max_pixels;
}

bool TrainConfig::operator==(const TrainConfig& o) const {
  return epochs == o.epochs && batch_size == o.batch_size && lr == o.lr && min_lr == o.min_lr &&
         warmup_epochs == o.warmup_epochs && warmup_lr == o.warmup_lr && weight_decay == o.weight_decay &&
         betas == o.betas && eps == o.eps && clip_grad == o.clip_grad && label_smoothing == o.label_smoothing &&
         seed == o.seed && eval_every == o.eval_every && log_every == o.log_every &&
         max_nonfinite_steps == o.max_nonfinite_steps && amp == o.amp && lr_scaling == o.lr_scaling;
}

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
  return v;
}

}  // namespace vkvit::train
