// Weights from other ViT implementations: tensor-name maps between timm's names (vkvit's own) and
// torchvision's VisionTransformer state_dict, shape checks against a model config, and the
// positional-embedding resampling timm applies when weights meet another image size.
//
// torchvision (torchvision/models/vision_transformer.py) -> timm (timm/models/vision_transformer.py):
//   class_token                                    -> cls_token            (1, 1, D)
//   conv_proj.{weight,bias}                        -> patch_embed.proj.*   (D, C, P, P), (D)
//   encoder.pos_embedding                          -> pos_embed            (1, 1 + N, D), cls row first
//   encoder.layers.encoder_layer_<i>.ln_1.*        -> blocks.<i>.norm1.*
//     .self_attention.in_proj_{weight,bias}        -> blocks.<i>.attn.qkv.* (3D, D): rows [q; k; v] in
//                                                     both, heads contiguous inside each
//     .self_attention.out_proj.*                   -> blocks.<i>.attn.proj.*
//     .ln_2.*                                      -> blocks.<i>.norm2.*
//     .mlp.0.* (older: .mlp.linear_1.*)            -> blocks.<i>.mlp.fc1.*
//     .mlp.3.* (older: .mlp.linear_2.*)            -> blocks.<i>.mlp.fc2.*
//   encoder.ln.*                                   -> norm.*
//   heads.head.*                                   -> head.*
// Both compute the same function for pre-norm blocks with cls-token pooling (torchvision has no
// other pooling), so no tensor changes value, only its name.
#pragma once
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "model/vit_config.h"

namespace vkvit::model {

enum class WeightNames { timm, torchvision };
WeightNames parse_weight_names(const std::string& text);  // "timm" | "torchvision"; Error otherwise
const char* weight_names_name(WeightNames names);

// The torchvision name for a timm name of a ViT with `depth` blocks ("" when it has none).
std::string timm_to_torchvision_name(const std::string& timm_name);

// Tensors of `src` renamed to timm names, checked against `cfg` (every tensor the model has is
// present with its shape; nothing else is there) and converted to fp32. A pos_embed whose patch
// grid differs from cfg's is resampled (resample_pos_embed, antialiased like timm's loader).
// Throws one Error naming `path` and listing every missing, unexpected and mis-shaped tensor.
std::vector<Tensor> import_weights(const SafeTensors& src, WeightNames from, const VitConfig& cfg,
                                   const std::string& path);

// timm-named tensors renamed to `to`'s names (values untouched).
// Why a vkvit model has no timm/torchvision equivalent (empty when it has one): what convert and
// train --pretrained refuse to read or write timm/torchvision weights for.
std::string without_timm_equivalent(const VitConfig& cfg);

std::vector<Tensor> export_weights(const std::vector<Tensor>& timm_tensors, WeightNames to);

// timm's resample_abs_pos_embed: pos (1, prefix + old_h * old_w, D) -> (1, prefix + new_h * new_w, D).
// The prefix rows (cls) are kept; the grid is resized as a (D, old_h, old_w) image by bicubic
// interpolation exactly as torch.nn.functional.interpolate(mode="bicubic", align_corners=False,
// antialias=...) does it. antialias=false: cubic convolution with a = -0.75 on the four nearest
// inputs (indices clamped at the borders). antialias=true, timm's default and what import_weights
// uses: PIL's filter (a = -0.5), widened by the shrink factor when shrinking, over the inputs
// inside the image, normalized; it differs from the plain kernel even when growing a grid.
std::vector<float> resample_pos_embed(const std::vector<float>& pos, int dim, int prefix, int old_h, int old_w,
                                      int new_h, int new_w, bool antialias);

}  // namespace vkvit::model
