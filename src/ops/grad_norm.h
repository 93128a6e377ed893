// Global L2 norm of all gradients and the clip coefficient of gradient-norm clipping, both left on
// the GPU so the optimizer reads them without a host round trip. Semantics of PyTorch's
// torch.nn.utils.clip_grad_norm_(params, max_norm) (norm_type 2): total_norm = sqrt(sum g^2) over
// every gradient element, clip_coef = min(1, max_norm / (total_norm + 1e-6)).
//
// The sum is fp32: each workgroup squares and sums a fixed tile into one partial, then one
// workgroup sums the partials; the order depends only on the range sizes and the device's
// maxStorageBufferRange, so the result is reproducible bit for bit (no atomics).
//
// The fp32 sum of squares overflows once the norm passes ~1.8e19; that reads as an Inf norm, which
// for training means the same thing (a diverged step).
//
// Non-finite gradients: a NaN or Inf anywhere makes result[0] (the norm) NaN or Inf, written
// through for the caller to detect when it reads the result back (the trainer counts and reports
// such steps), and makes result[1] (the coefficient) NaN whatever max_norm is. adamw_step treats a
// non-finite coefficient as "skip this step" (as torch.cuda.amp.GradScaler skips steps with
// Inf/NaN gradients), so one bad batch cannot poison the parameters and Adam moments.
#pragma once
#include <cstdint>
#include <vector>

#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// Layout of grad_norm's result buffer.
constexpr uint32_t kGradNormFloats = 2;
constexpr uint32_t kGradNormIndex = 0;  // total L2 norm (NaN/Inf when some gradient is)
constexpr uint32_t kClipCoefIndex = 1;  // min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0; NaN when the norm is not finite

// Floats of scratch that grad_norm needs for these gradient ranges (one per workgroup tile).
uint64_t grad_norm_scratch_floats(const vk::Context& ctx, const std::vector<vk::View>& grads);

// grads: any number of float ranges (the flat gradient buffer, or its chunks), each of any size:
// ranges over maxStorageBufferRange are split. max_norm <= 0 disables clipping (coefficient 1).
void grad_norm(vk::Recorder& rec, const vk::View& result /* (kGradNormFloats) */,
               const vk::View& scratch /* (grad_norm_scratch_floats) */, const std::vector<vk::View>& grads,
               float max_norm);

namespace ref {
struct Range {
  const double* data;
  uint64_t n;
};
// L2 norm over all ranges, accumulated with scaling (as LAPACK's dnrm2) so it cannot overflow.
double grad_norm(const std::vector<Range>& grads);
// The clip coefficient for that norm, with the same rules as the GPU result[1].
double clip_coefficient(double norm, double max_norm);
}  // namespace ref

}  // namespace vkvit::ops
