// Attention maps of a ViT for `vkvit explain`, computed on the host from the attention
// probabilities the model keeps (Vit::attention_probs): P = softmax(scale Q K^T), (H, N, N) per
// layer and image, each row summing to 1, token 0 the cls token and tokens 1..N-1 the patches in
// row-major grid order. Plain C++ so that it is tested without a GPU.
//
// Three maps, each the cls token's row over the patch tokens (N - 1 values, the patch grid
// row-major):
//   rollout     attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
//               Transformers", section 3): per attention layer l, A_l = the heads' mean of P_l
//               plus the identity (the residual connection), rows renormalised to sum 1; then
//               R = A_{L-1} ... A_1 A_0 (the last layer leftmost, as the flow runs input -> output);
//               the map is R[0][1..N-1]. It sums to 1 - R[0][0].
//   last-layer  the heads' mean of the last attention layer's P, row 0.
//   head=L:H    P of block L, head H (0-based), row 0.
// Global-filter blocks have no attention matrix: rollout multiplies the attention blocks only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/vit_config.h"

namespace vkvit::model {

// Which map to compute and from which blocks, checked against the model before any work.
struct AttentionMapPlan {
  enum class Kind { rollout, last_layer, head };
  Kind kind = Kind::rollout;
  std::vector<int> layers;        // blocks whose probabilities the map reads, in forward order
  std::vector<int> skipped;       // global-filter blocks a rollout leaves out (empty otherwise)
  int head = -1;                  // Kind::head only
  std::string name;               // as given: "rollout", "last-layer", "head=L:H"
  std::string file_tag;           // in output file names: "rollout", "last-layer", "head-L<L>-H<H>"
};

// Parses `method` (rollout | last-layer | head=L:H) for a model of `cfg`. Throws vkvit::Error with
// one line for an unknown method, a malformed head=L:H, a layer or head out of range, a layer that
// is a global filter, or a model with no attention block at all.
AttentionMapPlan plan_attention_map(const VitConfig& cfg, const std::string& method);

// The cls row over the patches of the rollout of `layers` (each one image's (H, N, N)
// probabilities, in forward order): (N - 1) values. Empty `layers` is an error.
std::vector<double> rollout_cls_map(const std::vector<const float*>& layers, uint32_t H, uint32_t N);
// The cls row over the patches of the heads' mean of one layer's (H, N, N) probabilities.
std::vector<double> mean_heads_cls_map(const float* probs, uint32_t H, uint32_t N);
// The cls row over the patches of head `head` of one layer's (H, N, N) probabilities.
std::vector<double> head_cls_map(const float* probs, uint32_t H, uint32_t N, uint32_t head);

// The map `plan` asks for, from one image's probabilities: probs[i] is the (H, N, N) block of
// plan.layers[i].
std::vector<double> attention_map(const AttentionMapPlan& plan, const std::vector<const float*>& probs, uint32_t H,
                                  uint32_t N);

}  // namespace vkvit::model
