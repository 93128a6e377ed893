// Where every ViT tensor lives in the flat parameter buffer (the same layout serves the gradients,
// AdamW's m and v, the CPU reference and checkpoints), and timm's initialisation of them.
// Tensors start at multiples of 64 floats (256 bytes, the largest minStorageBufferOffsetAlignment
// Vulkan allows), so each can be bound on its own on every device and the layout, and with it
// read_params()/write_params(), does not depend on the device. Padding floats stay zero.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/vit_config.h"

namespace vkvit::model {

// offset and count in floats into the flat buffer; decay: AdamW decays it (timm's rule).
struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t offset = 0;
  uint64_t count = 0;
  bool decay = false;
};

class ParamLayout {
 public:
  static constexpr uint64_t kAlignFloats = 64;

  // Appends a tensor; decay follows ops::adamw_decays (timm's no-weight-decay rule).
  const ParamInfo& add(const std::string& name, std::vector<int64_t> shape);
  // Throws vkvit::Error naming a missing tensor (an internal error: names are fixed by the model).
  const ParamInfo& at(const std::string& name) const;
  bool has(const std::string& name) const;
  const std::vector<ParamInfo>& params() const { return params_; }
  uint64_t total_floats() const { return total_; }  // with padding: the flat buffer's length
  uint64_t param_count() const;                      // without padding

 private:
  std::vector<ParamInfo> params_;
  uint64_t total_ = 0;
};

// timm's order: cls_token, pos_embed, patch_embed.proj.{weight,bias}, blocks.N.*, norm.*, head.*.
ParamLayout vit_param_layout(const VitConfig& cfg);

// timm's VisionTransformer.init_weights (default mode ''), on the host, deterministic in seed:
//   pos_embed                      trunc_normal(std .02)
//   cls_token                      normal(std 1e-6)
//   Linear weights (qkv, proj, fc1, fc2, head)  trunc_normal(std .02), biases 0
//   LayerNorm                      weight 1, bias 0
//   patch_embed.proj (a Conv2d that timm's init leaves to PyTorch's default, kaiming_uniform(a=sqrt(5))):
//                                  weight and bias uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C*P*P
// timm's trunc_normal_ cuts at absolute +-2 (not +-2 std), which at std .02 never triggers; ours does the same.
// Each tensor draws from its own stream (seed, tensor index), so adding a tensor does not shift the others.
std::vector<float> vit_init_params(const VitConfig& cfg, const ParamLayout& layout, uint64_t seed);

}  // namespace vkvit::model
