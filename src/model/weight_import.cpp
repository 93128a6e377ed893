// Name maps, shape checks and pos_embed resampling for imported ViT weights; see weight_import.h.
#include "model/weight_import.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "base/error.h"
#include "model/vit_params.h"

namespace vkvit::model {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string shape_text(const std::vector<uint64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + ")";
}

// Suffixes of one encoder block: torchvision's (two spellings of the MLP) -> timm's.
const std::vector<std::pair<std::string, std::string>>& block_suffixes() {
  static const std::vector<std::pair<std::string, std::string>> map = {
      {"ln_1.weight", "norm1.weight"},
      {"ln_1.bias", "norm1.bias"},
      {"self_attention.in_proj_weight", "attn.qkv.weight"},
      {"self_attention.in_proj_bias", "attn.qkv.bias"},
      {"self_attention.out_proj.weight", "attn.proj.weight"},
      {"self_attention.out_proj.bias", "attn.proj.bias"},
      {"ln_2.weight", "norm2.weight"},
      {"ln_2.bias", "norm2.bias"},
      {"mlp.0.weight", "mlp.fc1.weight"},
      {"mlp.0.bias", "mlp.fc1.bias"},
      {"mlp.3.weight", "mlp.fc2.weight"},
      {"mlp.3.bias", "mlp.fc2.bias"},
      {"mlp.linear_1.weight", "mlp.fc1.weight"},  // torchvision before 0.13
      {"mlp.linear_1.bias", "mlp.fc1.bias"},
      {"mlp.linear_2.weight", "mlp.fc2.weight"},
      {"mlp.linear_2.bias", "mlp.fc2.bias"},
  };
  return map;
}

const std::vector<std::pair<std::string, std::string>>& top_level() {
  static const std::vector<std::pair<std::string, std::string>> map = {
      {"class_token", "cls_token"},
      {"conv_proj.weight", "patch_embed.proj.weight"},
      {"conv_proj.bias", "patch_embed.proj.bias"},
      {"encoder.pos_embedding", "pos_embed"},
      {"encoder.ln.weight", "norm.weight"},
      {"encoder.ln.bias", "norm.bias"},
      {"heads.head.weight", "head.weight"},
      {"heads.head.bias", "head.bias"},
  };
  return map;
}

// "<prefix><digits>.<rest>" -> (index, rest); false when `name` does not have that form.
bool split_block(const std::string& name, const std::string& prefix, std::string& index, std::string& rest) {
  if (!starts_with(name, prefix)) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  index = name.substr(prefix.size(), dot - prefix.size());
  if (!std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  rest = name.substr(dot + 1);
  return true;
}

// The timm name of a torchvision tensor name ("" when it is not one of the ViT's).
std::string torchvision_to_timm_name(const std::string& name) {
  for (const auto& [tv, timm] : top_level())
    if (name == tv) return timm;
  std::string index, rest;
  if (!split_block(name, "encoder.layers.encoder_layer_", index, rest)) return "";
  for (const auto& [tv, timm] : block_suffixes())
    if (rest == tv) return "blocks." + index + "." + timm;
  return "";
}

// Cubic convolution kernel (Keys 1981) with parameter a: PyTorch uses a = -0.75 for plain bicubic
// (aten/src/ATen/native/UpSample.h) and a = -0.5, PIL's, for antialiased bicubic.
double cubic(double x, double a) {
  x = std::abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

struct Taps {
  std::vector<int> index;
  std::vector<double> weight;
};

// The input samples and weights behind each of `out` outputs resampled from `in` inputs, as
// torch.nn.functional.interpolate(mode="bicubic", align_corners=False) computes them.
std::vector<Taps> resample_taps(int in, int out, bool antialias) {
  std::vector<Taps> taps(out);
  const double scale = double(in) / double(out);
  for (int i = 0; i < out; ++i) {
    Taps& t = taps[i];
    if (!antialias) {
      // Four neighbours of the source position, indices clamped at the borders.
      const double real = scale * (i + 0.5) - 0.5, base = std::floor(real), frac = real - base;
      for (int k = -1; k <= 2; ++k) {
        t.index.push_back(std::clamp(static_cast<int>(base) + k, 0, in - 1));
        t.weight.push_back(cubic(k - frac, -0.75));
      }
      continue;
    }
    // Antialiased (PIL-style, aten's _upsample_bicubic2d_aa): the kernel widens by the shrink
    // factor, covers only inputs inside the image, and its weights are normalized to sum to 1.
    const double support = scale >= 1 ? 2.0 * scale : 2.0, invscale = scale >= 1 ? 1.0 / scale : 1.0;
    const double center = scale * (i + 0.5);
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in);
    double total = 0;
    for (int j = lo; j < hi; ++j) {
      t.index.push_back(j);
      t.weight.push_back(cubic((j - center + 0.5) * invscale, -0.5));
      total += t.weight.back();
    }
    for (double& w : t.weight) w /= total;
  }
  return taps;
}

}  // namespace

WeightNames parse_weight_names(const std::string& text) {
  if (text == "timm") return WeightNames::timm;
  if (text == "torchvision") return WeightNames::torchvision;
  throw Error("unknown weight naming '" + text + "': use timm or torchvision");
}

const char* weight_names_name(WeightNames names) { return names == WeightNames::timm ? "timm" : "torchvision"; }

std::string timm_to_torchvision_name(const std::string& timm_name) {
  for (const auto& [tv, timm] : top_level())
    if (timm_name == timm) return tv;
  std::string index, rest;
  if (!split_block(timm_name, "blocks.", index, rest)) return "";
  for (const auto& [tv, timm] : block_suffixes())  // the first spelling (mlp.0 / mlp.3) wins
    if (rest == timm) return "encoder.layers.encoder_layer_" + index + "." + tv;
  return "";
}

std::vector<float> resample_pos_embed(const std::vector<float>& pos, int dim, int prefix, int old_h, int old_w,
                                      int new_h, int new_w, bool antialias) {
  if (dim <= 0 || prefix < 0 || old_h <= 0 || old_w <= 0 || new_h <= 0 || new_w <= 0 ||
      pos.size() != size_t(prefix + old_h * old_w) * dim)
    throw Error("internal: resample_pos_embed: sizes do not match the tensor");
  std::vector<float> out(size_t(prefix + new_h * new_w) * dim);
  std::copy(pos.begin(), pos.begin() + std::ptrdiff_t(prefix) * dim, out.begin());
  const float* grid = pos.data() + size_t(prefix) * dim;
  float* dst = out.data() + size_t(prefix) * dim;
  const std::vector<Taps> ty = resample_taps(old_h, new_h, antialias), tx = resample_taps(old_w, new_w, antialias);
  for (int y = 0; y < new_h; ++y)
    for (int x = 0; x < new_w; ++x)
      for (int d = 0; d < dim; ++d) {
        double v = 0;
        for (size_t a = 0; a < ty[y].index.size(); ++a) {
          double row = 0;
          for (size_t b = 0; b < tx[x].index.size(); ++b)
            row += tx[x].weight[b] * grid[size_t(ty[y].index[a] * old_w + tx[x].index[b]) * dim + d];
          v += ty[y].weight[a] * row;
        }
        dst[size_t(y * new_w + x) * dim + d] = static_cast<float>(v);
      }
  return out;
}

std::vector<Tensor> import_weights(const SafeTensors& src, WeightNames from, const VitConfig& cfg,
                                   const std::string& path) {
  cfg.validate();

  const ParamLayout layout = vit_param_layout(cfg);
  std::vector<std::string> problems;
  std::map<std::string, const Tensor*> by_timm_name;
  std::map<std::string, std::string> source_name;  // timm name -> the file's name (for messages)
  for (const Tensor& t : src.tensors) {
    const std::string timm = from == WeightNames::timm ? t.name : torchvision_to_timm_name(t.name);
    if (timm.empty()) {
      problems.push_back("unexpected " + t.name);
      continue;
    }
    if (by_timm_name.count(timm)) {
      problems.push_back(t.name + " and " + source_name[timm] + " are the same tensor (" + timm + ")");
      continue;
    }
    by_timm_name[timm] = &t;
    source_name[timm] = t.name;
  }

  std::set<std::string> expected;
  std::vector<Tensor> out;
  for (const ParamInfo& p : layout.params()) {
    expected.insert(p.name);
    auto it = by_timm_name.find(p.name);
    const std::string shown = from == WeightNames::timm ? p.name : timm_to_torchvision_name(p.name);
    if (it == by_timm_name.end()) {
      problems.push_back("missing " + shown);
      continue;
    }
    const Tensor& t = *it->second;
    const std::vector<uint64_t> want(p.shape.begin(), p.shape.end());
    Tensor converted{p.name, DType::F32, want, t.data};
    if (t.shape != want && p.name == "pos_embed" && t.shape.size() == 3 && t.shape[0] == 1 && t.shape[2] == want[2] &&
        t.shape[1] > 1) {
      // Another image size: resample the source's square patch grid to the model's.
      const uint64_t cells = t.shape[1] - 1;
      const int side = static_cast<int>(std::llround(std::sqrt(double(cells))));
      if (uint64_t(side) * side != cells) {
        problems.push_back(shown + " has " + std::to_string(t.shape[1]) +
                           " rows, not a cls row plus a square patch grid, so it cannot be resampled");
        continue;
      }
      const int grid = cfg.image_size / cfg.patch_size;
      converted.data = resample_pos_embed(t.data, static_cast<int>(want[2]), 1, side, side, grid, grid, true);
    } else if (t.shape != want) {
      problems.push_back(shown + " has shape " + shape_text(t.shape) + ", the model expects " + shape_text(want));
      continue;
    }
    out.push_back(std::move(converted));
  }
  for (const auto& [timm, tensor] : by_timm_name) {
    if (expected.count(timm)) continue;
    if (timm == "pos_embed")  // only a sincos model lacks it
      problems.push_back(tensor->name + " is a learned position embedding, but the config's model.pos_embed is sincos "
                         "(fixed, not a parameter); set model.pos_embed: learned to load these weights");
    else
      problems.push_back("unexpected " + tensor->name);
  }
  if (!problems.empty()) {
    std::string msg = path + ": " + weight_names_name(from) + " weights do not fit the model (" +
                      std::to_string(problems.size()) + "): ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(msg);
  }
  return out;
}

std::string without_timm_equivalent(const VitConfig& cfg) {
  // Post-norm weights under timm's names would load into timm's pre-norm blocks and compute
  // another function.
  if (cfg.post_norm()) return "model.norm is post, and timm's and torchvision's ViTs have pre-norm blocks only";
  return "";
}

std::vector<Tensor> export_weights(const std::vector<Tensor>& timm_tensors, WeightNames to) {
  std::vector<Tensor> out = timm_tensors;
  if (to == WeightNames::timm) return out;
  for (Tensor& t : out) {
    const std::string name = timm_to_torchvision_name(t.name);
    if (name.empty()) throw Error("internal: no torchvision name for tensor " + t.name);
    t.name = name;
  }
  return out;
}

}  // namespace vkvit::model
