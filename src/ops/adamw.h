// AdamW over the flat parameter buffer, one dispatch per bindable chunk, in place on params, m, v.
// Semantics of torch.optim.AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay
// Regularization"; https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html), step t >= 1:
//   g  = grad * clip_coef                                   (clip_grad_norm_, coefficient from grad_norm)
//   p *= 1 - lr * weight_decay                              (only elements of decayed tensors)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The bias corrections are computed on the host in double and passed as floats, as PyTorch's
// Python-side scalars are. No amsgrad, no maximize.
//
// Weight-decay mask: timm decays weights but not biases, norm parameters, cls_token or pos_embed
// (adamw_decays). The flat buffer interleaves such tensors, so the shader reads a device bit mask,
// one bit per element (n / 32 words, 1/32 of the parameters' size), uploaded once. An earlier
// table of decayed [start, end) ranges, binary-searched per workgroup, cost a barrier and several
// table reads per invocation: a third of the update on lavapipe; one dispatch per tensor would be
// ~150 tiny dispatches per step.
//
// Per-tensor lr scales (layer-wise lr decay, frozen tensors: train/param_groups.h): an optional
// device table of one float per 64-float block (tensors start at multiples of 64 floats, so each
// block is one tensor's; 1/64 of the parameters' size, read once per four elements). A tensor's
// elements then use lr * scale, in the step and in the decay 1 - lr * scale * wd, as timm's
// param groups with an lr_scale do; scale 0 leaves params, m and v untouched (frozen). Without
// the table (the default) the shader is built without that read (spec constant SCALED off) and
// its results are the unscaled step's bits.
//
// Non-finite clip coefficient (grad_norm saw NaN/Inf gradients): the step is skipped, params, m and
// v are left as they were, as torch.cuda.amp.GradScaler skips such steps. The caller sees the NaN/Inf
// norm when it reads grad_norm's result and decides whether t advances.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.05;
};

// A tensor's place in the flat parameter buffer, in floats, and whether it is decayed.
struct ParamRange {
  uint64_t first = 0;
  uint64_t count = 0;
  bool decay = false;
  double lr_scale = 1.0;  // 0: frozen
};

// timm's rule (timm.optim.param_groups_weight_decay with ViT's no_weight_decay()): no decay for
// tensors with ndim <= 1 (biases, norm weights), names ending in ".bias", and cls_token,
// pos_embed, dist_token.
bool adamw_decays(std::string_view name, size_t ndim);

// The decay mask for a flat buffer of n floats holding these tensors: bit (i % 32) of word i / 32
// is set when element i decays. Throws when tensors overlap or run past n.
std::vector<uint32_t> adamw_decay_mask(const std::vector<ParamRange>& tensors, uint64_t n);

// The lr-scale table for a flat buffer of n floats holding these tensors: one float per 64-float
// block (n / 64 rounded up), the scale of the tensor that block holds (1 for padding-only blocks).
// Throws when a tensor does not start at a multiple of 64 floats.
std::vector<float> adamw_lr_scale_blocks(const std::vector<ParamRange>& tensors, uint64_t n);

// clip: grad_norm's result (its coefficient is applied to every gradient), or an empty View for
// none. decay_mask: adamw_decay_mask's output for the n elements, on the device. t: the 1-based
// step; the caller owns it (and may hold it back after a skipped step). first_float: update the n
// floats from there on only (a multiple of 64; params, m, v, grads, the mask and the table still
// describe the whole flat buffer): trainable runs between frozen tensors need no other dispatch.
void adamw_step(vk::Recorder& rec, const vk::View& params /* (n) */, const vk::View& m /* (n) */,
                const vk::View& v /* (n) */, const vk::View& grads /* (n) */, const vk::View& clip /* (2) or {} */,
                const vk::View& decay_mask /* (n / 32 rounded up) uint32 */, uint64_t n, const AdamWHyper& h,
                uint64_t t, const vk::View& lr_scale_blocks = {} /* (n / 64 rounded up) or {} */,
                uint64_t first_float = 0);

namespace ref {
// Same update on host arrays; decay[i] != 0 marks decayed elements; a non-finite clip_coef skips.
void adamw_step(double* params /* (n) */, double* m /* (n) */, double* v /* (n) */, const double* grads /* (n) */,
                double clip_coef, const uint8_t* decay /* (n) */, uint64_t n, const AdamWHyper& h, uint64_t t);
// With a per-element lr scale (null: all 1); an element with scale 0 is left untouched.
void adamw_step(double* params, double* m, double* v, const double* grads, double clip_coef, const uint8_t* decay,
                const double* lr_scale /* (n) or null */, uint64_t n, const AdamWHyper& h, uint64_t t);
}  // namespace ref

}  // namespace vkvit::ops
