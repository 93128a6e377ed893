// The shape of a Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"),
// named and sized as timm's VisionTransformer so that checkpoints and presets carry over, plus
// small presets for 28-32 px data sets that a CPU Vulkan driver (lavapipe) can train.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vkvit::model {

struct VitConfig {
  std::string name;
  int image_size = 224, patch_size = 16, in_chans = 3, dim = 192, depth = 12, heads = 3, mlp_dim = 768,
      num_classes = 1000;
  std::string pool = "cls";        // cls | mean (mean over patch tokens, as timm global_pool='avg')
  // Token mixer: one name for every block, or one per block separated by commas
  // ("global_filter,global_filter,attention,attention"); attention | global_filter
  // (model/token_mixer.h, model/global_filter.h).
  std::string mixer = "attention";
  float ln_eps = 1e-6f;
  // Position embedding: learned (a parameter, as timm) | sincos (fixed 2D sine-cosine,
  // model/sincos_pos_embed.h; not a parameter, so the checkpoint has no pos_embed).
  std::string pos_embed = "learned";
  // Where each block's LayerNorms sit: pre (on the branch inputs, as timm's ViT) | post (on the
  // residual stream after each add, as the original Transformer; model/vit.h).
  std::string norm = "pre";

  bool learned_pos_embed() const { return pos_embed == "learned"; }
  bool post_norm() const { return norm == "post"; }

  int grid() const { return patch_size > 0 ? image_size / patch_size : 0; }  // patches per side
  int num_patches() const { return grid() * grid(); }
  int tokens() const { return num_patches() + 1; }  // the cls token is always present
  int patch_dim() const { return in_chans * patch_size * patch_size; }
  // The mixer of block `layer` (0-based); the list is checked by validate().
  std::string mixer_at(int layer) const;
  bool uses_mixer(const std::string& name) const;  // some block has this mixer

  // Throws vkvit::Error naming the field: sizes > 0, dim % heads == 0, image_size % patch_size == 0,
  // pool and mixer known, ln_eps > 0, token and largest-weight counts within 2^31 - 1.
  void validate() const;

  // Forward FLOPs per image (2 per multiply-add) of the matmuls: patch projection, qkv, scores,
  // P V, proj, fc1, fc2, head; for global-filter blocks the FFTs (counted as 2.5 n log2 n per real
  // transform of n points) and the complex product instead of attention. A training step costs
  // about 3x this.
  uint64_t flops_per_image() const;

  // Throws Error listing the valid names.
  static VitConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
};

}  // namespace vkvit::model
