// ViT parameter layout and timm-style initialisation (see vit_params.h).
#include "model/vit_params.h"

#include <cmath>

#include "base/error.h"
#include "model/token_mixer.h"
#include "ops/adamw.h"

namespace vkvit::model {

const ParamInfo& ParamLayout::add(const std::string& name, std::vector<int64_t> shape) {
  ParamInfo p;
  p.name = name;
  p.count = 1;
  for (int64_t s : shape) p.count *= static_cast<uint64_t>(s);
  p.decay = ops::adamw_decays(name, shape.size());
  p.shape = std::move(shape);
  p.offset = (total_ + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  total_ = p.offset + p.count;
  params_.push_back(std::move(p));
  return params_.back();
}

const ParamInfo& ParamLayout::at(const std::string& name) const {
  for (const ParamInfo& p : params_)
    if (p.name == name) return p;
  throw Error("internal: the model has no parameter tensor '" + name + "'");
}

bool ParamLayout::has(const std::string& name) const {
  for (const ParamInfo& p : params_)
    if (p.name == name) return true;
  return false;
}

uint64_t ParamLayout::param_count() const {
  uint64_t n = 0;
  for (const ParamInfo& p : params_) n += p.count;
  return n;
}

ParamLayout vit_param_layout(const VitConfig& cfg) {
  cfg.validate();
  const int64_t D = cfg.dim, F = cfg.mlp_dim;
  ParamLayout L;
  L.add("cls_token", {1, 1, D});
  if (cfg.learned_pos_embed()) L.add("pos_embed", {1, cfg.tokens(), D});
  L.add("patch_embed.proj.weight", {D, cfg.in_chans, cfg.patch_size, cfg.patch_size});
  L.add("patch_embed.proj.bias", {D});
  for (int l = 0; l < cfg.depth; ++l) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    L.add(b + "norm1.weight", {D});
    L.add(b + "norm1.bias", {D});
    declare_mixer_params(L, b, cfg, l);
    L.add(b + "norm2.weight", {D});
    L.add(b + "norm2.bias", {D});
    L.add(b + "mlp.fc1.weight", {F, D});
    L.add(b + "mlp.fc1.bias", {F});
    L.add(b + "mlp.fc2.weight", {D, F});
    L.add(b + "mlp.fc2.bias", {D});
  }
  L.add("norm.weight", {D});
  L.add("norm.bias", {D});
  L.add("head.weight", {cfg.num_classes, D});
  L.add("head.bias", {cfg.num_classes});
  return L;
}

namespace {

// splitmix64 (Steele et al. 2014): a fixed generator, so a seed means the same weights with any
// standard library (std::normal_distribution is implementation-defined).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::vector<float> vit_init_params(const VitConfig& cfg, const ParamLayout& layout, uint64_t seed) {
  std::vector<float> flat(layout.total_floats(), 0.0f);
  const double patch_bound = 1.0 / std::sqrt(static_cast<double>(cfg.patch_dim()));
  for (size_t t = 0; t < layout.params().size(); ++t) {
    const ParamInfo& p = layout.params()[t];
    Rng rng{seed * 0x100000001B3ull + t * 0x9E3779B97F4A7C15ull + 1};
    rng.next();
    float* w = flat.data() + p.offset;
    auto trunc_normal = [&](double std) {
      for (uint64_t i = 0; i < p.count; ++i) {
        double v;
        do v = rng.normal() * std; while (v < -2.0 || v > 2.0);
        w[i] = static_cast<float>(v);
      }
    };
    if (p.name == "cls_token") {
      for (uint64_t i = 0; i < p.count; ++i) w[i] = static_cast<float>(rng.normal() * 1e-6);
    } else if (p.name == "pos_embed") {
      trunc_normal(0.02);
    } else if (p.name.rfind("patch_embed.", 0) == 0) {
      for (uint64_t i = 0; i < p.count; ++i) w[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * patch_bound);
    } else if (ends_with(p.name, "norm1.weight") || ends_with(p.name, "norm2.weight") || p.name == "norm.weight") {
      for (uint64_t i = 0; i < p.count; ++i) w[i] = 1.0f;
    } else if (ends_with(p.name, "filter.complex_weight")) {
      for (uint64_t i = 0; i < p.count; ++i) w[i] = static_cast<float>(rng.normal() * 0.02);  // GFNet: randn * 0.02
    } else if (ends_with(p.name, ".weight") && p.shape.size() >= 2) {
      trunc_normal(0.02);  // every Linear: mixer, mlp, head
    }
    // Everything else (biases, LayerNorm biases) stays 0.
  }
  return flat;
}

}  // namespace vkvit::model
