// Per-tensor optimizer settings beyond weight decay: layer-wise lr decay (train.layer_decay) and
// freezing (train.freeze). Both end up as one lr scale per tensor, which AdamW reads (ops/adamw.h):
// a frozen tensor has scale 0 and is left exactly as it is, as a PyTorch parameter with
// requires_grad=False is left out of the optimizer.
//
// Layer ids follow timm's param_groups_layer_decay over VisionTransformer.group_matcher
// (timm/optim/_param_groups.py, timm/models/_manipulate.py group_with_matcher,
// timm/models/vision_transformer.py):
//   cls_token, pos_embed, patch_embed.*   0
//   blocks.i.*                            i + 1
//   norm.* (the final norm)               depth, "with the last block": the matcher's 99999 suffix
//                                         puts it in the last block's group instead of a new one
//   anything else (head.*)                depth + 1, the largest id
//   scale = layer_decay ^ (depth + 1 - id)
//
// Freeze patterns are shell globs as Python's fnmatch reads them (timm matches its parameter-name
// lists with fnmatch): `*` any run of characters, dots included; `?` one character; `[0-5]` one of
// a set, `[!0-5]` one outside it. Patterns apply in order and a leading `!` unfreezes what it
// matches, so ["*", "!head.*"] freezes everything but the classifier (a linear probe).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "model/vit_params.h"

namespace vkvit::train {

// timm's layer id of the tensor `name` in a ViT of `depth` blocks (see above).
int vit_layer_id(std::string_view name, int depth);

// layer_decay ^ (depth + 1 - id) for every tensor of `layout`, in its order; all 1 when
// layer_decay is 0 (off).
std::vector<double> layer_decay_scales(const model::ParamLayout& layout, int depth, double layer_decay);

// Python fnmatch.fnmatchcase: `*`, `?`, `[...]`, `[!...]`; a '[' without its ']' is a literal.
bool glob_match(std::string_view pattern, std::string_view name);

// Whether each tensor of `layout` is frozen by `patterns` (in order; `!pattern` unfreezes). Throws
// Error "train.freeze: pattern '<p>' matches no parameter ..." for a pattern that matches nothing,
// and for a list that freezes every tensor (nothing would train).
std::vector<bool> frozen_tensors(const model::ParamLayout& layout, const std::vector<std::string>& patterns);

// What train.layer_decay and train.freeze give each tensor of a model, in layout order.
struct ParamGroups {
  std::vector<double> lr_scale;  // 0 for frozen tensors
  std::vector<bool> frozen;
  bool active() const;  // some scale is not 1: AdamW needs the per-tensor scales
};
ParamGroups param_groups(const model::ParamLayout& layout, int depth, double layer_decay,
                         const std::vector<std::string>& freeze);

}  // namespace vkvit::train
