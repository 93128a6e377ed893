// Model EMA: an exponential moving average of the weights, kept beside the model and evaluated
// with it (timm's ModelEmaV3 as timm's train.py uses it, timm/utils/model_ema.py and train.py in
// huggingface/pytorch-image-models). After every applied optimizer step:
//   ema = decay * ema + (1 - decay) * param
// over the flat parameter buffer, one pass (split where a binding would pass
// maxStorageBufferRange, as adamw_step is). The EMA starts as a copy of the model's weights. A ViT
// has no buffers (running statistics), so there is nothing to copy besides the parameters.
//
// The decay for the update that makes `step` applied updates in all (timm passes its num_updates,
// counted after the optimizer step, so the first update has step 1):
//   step 1                       0: the EMA becomes the weights after the first step
//   later, fixed decay           decay
//   later, with warmup           min(decay, 1 - (1 + (step - 1))^(-2/3))
// (ModelEmaV3.get_decay with timm's defaults: warmup_gamma 1, warmup_power 2/3, no
// update_after_step, min_decay 0.) Computed in double on the host and rounded once, as PyTorch's
// Python scalars are.
//
// Skipped steps: timm's train.py updates the EMA after every optimizer call; vkvit leaves it as it
// was when the step's update was skipped (an amp overflow or non-finite gradients), as it leaves
// the weights: the shader reads grad_norm's clip coefficient, whose NaN makes adamw_step skip, and
// skips on the same condition. The step count of the decay counts applied updates only.
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// The decay of the update that brings the applied updates to `step` (>= 1); see above.
double ema_decay(double decay, bool warmup, uint64_t step);

// ema = decay * ema + (1 - decay) * params over n floats. clip: grad_norm's result, whose
// non-finite coefficient skips the update, or an empty View to update unconditionally.
void ema_update(vk::Recorder& rec, const vk::View& ema /* (n) */, const vk::View& params /* (n) */,
                const vk::View& clip /* (2) or {} */, uint64_t n, double decay);

namespace ref {
// The same update on host arrays; a non-finite clip_coef skips it.
void ema_update(double* ema, const double* params, uint64_t n, double decay, double clip_coef = 1.0);
}  // namespace ref

}  // namespace vkvit::ops
