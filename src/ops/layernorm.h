// LayerNorm over the last dimension, as PyTorch nn.LayerNorm (biased variance, elementwise affine);
// timm/torchvision ViTs use eps = 1e-6. Forward saves mean and rstd per row for the backward pass.
#pragma once
#include <cstdint>

#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// out = (in - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps), per row.
void layernorm_forward(vk::Recorder& rec, const vk::View& out /* (M, D) */, const vk::View& mean /* (M) */,
                       const vk::View& rstd /* (M) */, const vk::View& in /* (M, D) */,
                       const vk::View& gamma /* (D) */, const vk::View& beta /* (D) */, uint64_t M, uint32_t D,
                       float eps);

// Accumulates din, dgamma and dbeta from dout, using the mean and rstd saved by the forward pass.
// dgamma/dbeta are column sums over rows, reduced in a fixed order (deterministic run to run).
// scratch: at least layernorm_backward_scratch_floats(M, D) floats (partial column sums; may be
// empty when that is 0).
void layernorm_backward(vk::Recorder& rec, const vk::View& din /* (M, D) */, const vk::View& dgamma /* (D) */,
                        const vk::View& dbeta /* (D) */, const vk::View& mean /* (M) */,
                        const vk::View& rstd /* (M) */, const vk::View& in /* (M, D) */,
                        const vk::View& dout /* (M, D) */, const vk::View& gamma /* (D) */,
                        const vk::View& scratch, uint64_t M, uint32_t D);
uint64_t layernorm_backward_scratch_floats(const vk::Context& ctx, uint64_t M, uint32_t D);

namespace ref {
void layernorm_forward(double* out, double* mean, double* rstd, const double* in, const double* gamma,
                       const double* beta, uint64_t M, uint64_t D, double eps);
void layernorm_backward(double* din, double* dgamma, double* dbeta, const double* mean, const double* rstd,
                        const double* in, const double* dout, const double* gamma, uint64_t M, uint64_t D);
}  // namespace ref

}  // namespace vkvit::ops
