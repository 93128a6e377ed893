// ViT presets and config validation. The ImageNet presets are timm's vit_{tiny,small,base}_patch16_224;
// the small-image presets are sized for lavapipe (FLOPs per image are in the comments).
#include "model/vit_config.h"

#include "vk/error.h"

namespace vkvit::model {

namespace {

VitConfig make(const std::string& name, int image, int patch, int chans, int dim, int depth, int heads, int mlp,
               int classes, const std::string& pool = "cls") {
  VitConfig c;
  c.pool = pool;
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
const std::vector<VitConfig>& presets() {
  static const std::vector<VitConfig> all = {
      make("vit_tiny_patch16_224", 224, 16, 3, 192, 12, 3, 768, 1000),
      make("vit_small_patch16_224", 224, 16, 3, 384, 12, 6, 1536, 1000),
      make("vit_base_patch16_224", 224, 16, 3, 768, 12, 12, 3072, 1000),
      make("vit_fmnist_tiny", 28, 14, 1, 128, 2, 4, 256, 10, "mean"),
      make("vit_fmnist_small", 28, 7, 1, 128, 4, 4, 256, 10, "mean"),
      make("vit_cifar_small", 32, 4, 3, 192, 6, 3, 384, 10),
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
  if (pool != "cls" && pool != "mean")
    throw Error("model config: pool must be cls or mean (got '" + pool + "')");
  if (mixer != "attention") throw Error("model config: mixer must be attention (got '" + mixer + "')");
  if (!(ln_eps > 0.0f)) throw Error("model config: ln_eps must be > 0 (got " + std::to_string(ln_eps) + ")");
}

uint64_t VitConfig::flops_per_image() const {
  const uint64_t T = tokens(), Np = num_patches(), D = dim, F = mlp_dim, K = num_classes, CPP = patch_dim();
  const uint64_t block = 2 * T * D * 3 * D  // qkv
                         + 2 * 2 * T * T * D  // Q K^T and P V over all heads
                         + 2 * T * D * D      // proj
                         + 2 * 2 * T * D * F; // fc1 and fc2
  return 2 * Np * CPP * D + uint64_t(depth) * block + 2 * D * K;
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
