// Stochastic depth (drop path) on a residual branch, per sample: timm's drop_path as a ViT block
// applies it, x = x + scale_b * branch(x) with scale_b = mask_b / keep (mask_b ~ Bernoulli(keep),
// one draw per sample shared by all its tokens). The scales are drawn on the host
// (train::draw_drop_path) and sit in one device array; each call reads `samples` of them from
// `first_scale` on. Sample b owns the `per_sample` consecutive elements from b * per_sample.
// The branch's backward is the same scaling of the output gradient: a dropped sample's branch
// gets an exact zero, and the residual path passes the gradient on unchanged.
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

struct DropPathShape {
  uint32_t samples = 0;     // B
  uint64_t per_sample = 0;  // elements of one sample (N tokens x D)
  uint64_t first_scale = 0;  // index into the scale array of sample 0's scale
  uint64_t elements() const { return samples * per_sample; }
};

// out = residual + scale[sample] * branch. out must not overlap branch; it may be residual.
void drop_path_add(vk::Recorder& rec, const vk::View& out, const vk::View& residual, const vk::View& branch,
                   const vk::View& scales, const DropPathShape& s);
// out = scale[sample] * in: the gradient that reaches the branch's output. out may be in.
void drop_path_scale(vk::Recorder& rec, const vk::View& out, const vk::View& in, const vk::View& scales,
                     const DropPathShape& s);

namespace ref {
void drop_path_add(double* out, const double* residual, const double* branch, const double* scales,
                   const DropPathShape& s);
void drop_path_scale(double* out, const double* in, const double* scales, const DropPathShape& s);
}  // namespace ref

}  // namespace vkvit::ops
