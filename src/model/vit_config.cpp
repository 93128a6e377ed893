// ViT presets and config validation. The ImageNet presets are timm's vit_{tiny,small,base}_patch16_224;
// the small-image presets are sized for lavapipe (FLOPs per image are in the comments).
#include "model/vit_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/error.h"

namespace vkvit::model {

namespace {
// "a,b , c" -> {"a", "b", "c"}: names separated by commas, spaces around them dropped.
std::vector<std::string> split_mixers(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t end = list.find(',', start);
    std::string item = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    out.push_back(a == std::string::npos ? "" : item.substr(a, b - a + 1));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}
}  // namespace

namespace {

VitConfig make(const std::string& name, int image, int patch, int chans, int dim, int depth, int heads, int mlp,
               int classes, const std::string& pool = "cls", const std::string& mixer = "attention") {
  VitConfig c;
  c.pool = pool;
  c.mixer = mixer;
  c.name = name;
  c.image_size = image;
  c.patch_size = patch;
  c.in_chans = chans;
  c.dim = dim;
  c.depth = depth;
  c.heads = heads;
  c.mlp_dim = mlp;
  c.num_classes = classes;
  return c;
}

// Forward FLOPs per image (flops_per_image) and parameter counts (the counts of the ImageNet
// presets are timm's and are checked in tests/test_vit.cpp):
//   vit_tiny_patch16_224   2.51 GFLOP   5,717,416 params
//   vit_small_patch16_224  9.20 GFLOP  22,050,664 params
//   vit_base_patch16_224  35.13 GFLOP  86,567,656 params
//   vit_fmnist_tiny        2.85 MFLOP     292,490 params  (4 tokens of 14x14 patches, width 128, 2 blocks,
//                          mean pool): the lavapipe demo. Fewer, wider tokens reached a given accuracy
//                          with the least compute in a recipe search (BENCHMARKS.md); an epoch is about
//                          a minute on 2 CPU cores
//   vit_fmnist_small      18.6 MFLOP      540,170 params  (16 tokens of 7x7 patches, width 128, 4 blocks,
//                          mean pool): the longer Fashion-MNIST run
//   vit_cifar_small      251 MFLOP      1,806,538 params  (65 tokens of 4x4 RGB patches, width 192, 6 blocks)
// Global-filter presets (mixer global_filter in every block, mean pool; heads unused):
//   gfnet_ti_patch16_224   2.58 GFLOP   7,512,296 params  (GFNet-Ti's width, depth and MLP: 256, 12,
//                          1024, on a 14x14 grid, in vkvit's ViT block; model/global_filter.h)
//   gf_fmnist_small        9.32 MFLOP      288,266 params  (vit_fmnist_small with a global filter in every
//                          block: a 4x4 grid of 7 px patches)
const std::vector<VitConfig>& presets() {
  static const std::vector<VitConfig> all = {
      make("vit_tiny_patch16_224", 224, 16, 3, 192, 12, 3, 768, 1000),
      make("vit_small_patch16_224", 224, 16, 3, 384, 12, 6, 1536, 1000),
      make("vit_base_patch16_224", 224, 16, 3, 768, 12, 12, 3072, 1000),
      make("vit_fmnist_tiny", 28, 14, 1, 128, 2, 4, 256, 10, "mean"),
      make("vit_fmnist_small", 28, 7, 1, 128, 4, 4, 256, 10, "mean"),
      make("vit_cifar_small", 32, 4, 3, 192, 6, 3, 384, 10),
      make("gfnet_ti_patch16_224", 224, 16, 3, 256, 12, 4, 1024, 1000, "mean", "global_filter"),
      make("gf_fmnist_small", 28, 7, 1, 128, 4, 4, 256, 10, "mean", "global_filter"),
  };
  return all;
}

void require_positive(int v, const char* field) {
  if (v <= 0) throw Error("model config: " + std::string(field) + " must be > 0 (got " + std::to_string(v) + ")");
}

}  // namespace

void VitConfig::validate() const {
  require_positive(image_size, "image_size");
  require_positive(patch_size, "patch_size");
  require_positive(in_chans, "in_chans");
  require_positive(dim, "dim");
  require_positive(depth, "depth");
  require_positive(heads, "heads");
  require_positive(mlp_dim, "mlp_dim");
  require_positive(num_classes, "num_classes");
  if (dim % heads != 0)
    throw Error("model config: dim (" + std::to_string(dim) + ") must be a multiple of heads (" +
                std::to_string(heads) + ")");
  if (image_size % patch_size != 0)
    throw Error("model config: image_size (" + std::to_string(image_size) + ") must be a multiple of patch_size (" +
                std::to_string(patch_size) + ")");
  // Each size is an int, and so are the counts derived from them (tokens(), patch_dim()) and the
  // element counts of the largest weights: sizes that are each fine but whose products pass 2^31 - 1
  // would wrap around instead of failing.
  auto fits = [](int64_t v, const std::string& what) {
    if (v > int64_t(INT32_MAX))
      throw Error("model config: " + what + " = " + std::to_string(v) +
                  " is over 2147483647; use smaller sizes");
  };
  const int64_t g = image_size / patch_size, pd = int64_t(in_chans) * patch_size * patch_size;
  fits(g * g + 1, "tokens ((image_size / patch_size)^2 + 1)");
  fits(pd, "patch_dim (in_chans * patch_size^2)");
  fits(pd * dim, "patch_embed weight elements (patch_dim * dim)");
  fits(3 * int64_t(dim) * dim, "qkv weight elements (3 * dim^2)");
  fits(int64_t(dim) * mlp_dim, "fc1 weight elements (dim * mlp_dim)");
  fits(int64_t(dim) * num_classes, "head weight elements (dim * num_classes)");
  if (pool != "cls" && pool != "mean")
    throw Error("model config: pool must be cls or mean (got '" + pool + "')");
  const std::vector<std::string> mixers = split_mixers(mixer);
  if (mixers.size() != 1 && mixers.size() != size_t(depth))
    throw Error("model config: mixer lists " + std::to_string(mixers.size()) + " names for " + std::to_string(depth) +
                " blocks; give one name for all blocks or exactly one per block");
  for (const std::string& m : mixers)
    if (m != "attention" && m != "global_filter")
      throw Error("model config: mixer must be attention or global_filter (got '" + m + "')");
  if (uses_mixer("global_filter") && grid() < 2)
    throw Error("model config: the global_filter mixer needs a patch grid of at least 2x2 (image_size / patch_size = " +
                std::to_string(grid()) + ")");
  if (!uses_mixer("attention") && pool == "cls")
    throw Error("model config: pool cls reads the cls token, which global_filter blocks do not mix; with no "
                "attention block use pool: mean");
  if (norm != "pre" && norm != "post") throw Error("model config: norm must be pre or post (got '" + norm + "')");
  if (pos_embed != "learned" && pos_embed != "sincos")
    throw Error("model config: pos_embed must be learned or sincos (got '" + pos_embed + "')");
  if (pos_embed == "sincos" && dim % 4 != 0)
    throw Error("model config: pos_embed sincos needs dim to be a multiple of 4 (got " + std::to_string(dim) +
                "); use pos_embed: learned or another width");
  if (!(ln_eps > 0.0f)) throw Error("model config: ln_eps must be > 0 (got " + std::to_string(ln_eps) + ")");
}

uint64_t VitConfig::flops_per_image() const {
  const uint64_t T = tokens(), Np = num_patches(), D = dim, F = mlp_dim, K = num_classes, CPP = patch_dim();
  const uint64_t attention = 2 * T * D * 3 * D  // qkv
                             + 2 * 2 * T * T * D  // Q K^T and P V over all heads
                             + 2 * T * D * D;     // proj
  // Global filter: a real FFT of n points counted as 2.5 n log2 n (half of the complex 5 n log2 n),
  // forward and inverse per channel, plus the complex product over the half spectrum (6 per bin).
  const double fft = 2.5 * double(Np) * std::log2(double(std::max<uint64_t>(Np, 2)));
  const uint64_t global_filter = uint64_t(2 * fft * double(D)) + 6 * uint64_t(grid()) * (grid() / 2 + 1) * D;
  const uint64_t mlp = 2 * 2 * T * D * F;  // fc1 and fc2
  uint64_t blocks = 0;
  for (int l = 0; l < depth; ++l) blocks += mlp + (mixer_at(l) == "global_filter" ? global_filter : attention);
  return 2 * Np * CPP * D + blocks + 2 * D * K;
}

std::string VitConfig::mixer_at(int layer) const {
  const std::vector<std::string> mixers = split_mixers(mixer);
  if (mixers.size() == 1) return mixers[0];
  if (layer < 0 || size_t(layer) >= mixers.size())
    throw Error("model config: no mixer for block " + std::to_string(layer) + " in '" + mixer + "'");
  return mixers[layer];
}

bool VitConfig::uses_mixer(const std::string& name) const {
  for (const std::string& m : split_mixers(mixer))
    if (m == name) return true;
  return false;
}

VitConfig VitConfig::preset(const std::string& name) {
  for (const VitConfig& c : presets())
    if (c.name == name) return c;
  std::string list;
  for (const std::string& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
  throw Error("unknown model '" + name + "': use one of " + list);
}

std::vector<std::string> VitConfig::preset_names() {
  std::vector<std::string> names;
  for (const VitConfig& c : presets()) names.push_back(c.name);
  return names;
}

}  // namespace vkvit::model
