// Fully connected layer as PyTorch nn.Linear / timm: weight (N, K) row-major (out features by in
// features), bias (N). Built on ops::matmul and ops::bias_grad; no shader of its own. Where the
// matmul kernel has epilogues (register_blocked, tiled), the bias gradient rides along the weight
// gradient's product and the forward's GELU / residual add along the forward's (see below).
//   forward:  y = x W^T + b
//   backward: dx += dy W,  dW += dy^T x,  db += sum_rows dy   (all accumulate)
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// b may be an empty View (no bias).
void linear_forward(vk::Recorder& rec, const vk::View& y /* (M, N) */, const vk::View& x /* (M, K) */,
                    const vk::View& w /* (N, K) */, const vk::View& b /* (N) or empty */, uint32_t M, uint32_t N,
                    uint32_t K);

// Forward with the layer's successor fused into the matmul's stores where the kernel allows it
// (ops::matmul_epilogue_supported: the register-blocked and tiled kernels), else run as the separate op:
//   gelu:     pre = x W^T + b, y = gelu(pre)  (fc1 + nn.GELU; pre is kept for the backward, or
//             not computed apart where pre is an empty View: inference)
//   residual: y = x W^T + b + residual        (proj / fc2 + the block's skip connection)
// y must not overlap pre or residual.
void linear_gelu_forward(vk::Recorder& rec, const vk::View& y /* (M, N) */, const vk::View& pre /* (M, N) */,
                         const vk::View& x /* (M, K) */, const vk::View& w /* (N, K) */, const vk::View& b,
                         uint32_t M, uint32_t N, uint32_t K);
void linear_residual_forward(vk::Recorder& rec, const vk::View& y /* (M, N) */, const vk::View& x /* (M, K) */,
                             const vk::View& w /* (N, K) */, const vk::View& b, const vk::View& residual /* (M, N) */,
                             uint32_t M, uint32_t N, uint32_t K);

// The backward of linear_gelu_forward's successor: fc2 = linear(hidden) with hidden = gelu(pre).
// dpre = (dy W) * gelu'(pre), overwritten (fused into the input-gradient matmul where the kernel
// allows it, else through dhidden, an (M, K) scratch); dW += dy^T hidden; db += column sums of dy.
void linear_gelu_backward(vk::Recorder& rec, const vk::View& dpre /* (M, K) */, const vk::View& dw /* (N, K) or empty */,
                          const vk::View& db /* (N) or empty */, const vk::View& dy /* (M, N) */,
                          const vk::View& hidden /* (M, K) */, const vk::View& w /* (N, K) */,
                          const vk::View& pre /* (M, K) */, const vk::View& dhidden /* (M, K) scratch */, uint32_t M,
                          uint32_t N, uint32_t K);

// dx may be an empty View when the input needs no gradient (the patch-embedding input), dw when
// the weight is frozen (model::Linear::set_frozen);
// db may be empty for a layer without bias.
void linear_backward(vk::Recorder& rec, const vk::View& dx /* (M, K) or empty */, const vk::View& dw /* (N, K) or empty */,
                     const vk::View& db /* (N) or empty */, const vk::View& dy /* (M, N) */,
                     const vk::View& x /* (M, K) */, const vk::View& w /* (N, K) */, uint32_t M, uint32_t N,
                     uint32_t K);

// Mixed precision (train.amp), as PyTorch's autocast runs nn.Linear: both products on fp16 copies
// (ops::matmul_f16) with fp32 accumulation and fp32 outputs; the bias and its gradient stay fp32.
// x16 (M, K) fp16 receives the cast of x and is kept for the weight gradient; w16 (N, K) is the
// weight's fp16 copy (the model casts all weights once per step).
void linear_forward_f16(vk::Recorder& rec, const vk::View& y /* (M, N) */, const vk::View& x16 /* (M, K) fp16 */,
                        const vk::View& x /* (M, K) */, const vk::View& w16 /* (N, K) fp16 */,
                        const vk::View& b /* (N) or empty */, uint32_t M, uint32_t N, uint32_t K);
// dy16 (M, N) fp16 is scratch that receives the cast of dy. dx = dx_beta * dx + dy W (dx_beta 0
// overwrites, 1 accumulates; dx may be empty), dW += dy^T x, db += column sums of dy (fp32).
void linear_backward_f16(vk::Recorder& rec, const vk::View& dx /* (M, K) or empty */, float dx_beta,
                         const vk::View& dw /* (N, K) or empty */, const vk::View& db /* (N) or empty */,
                         const vk::View& dy /* (M, N) */, const vk::View& dy16 /* (M, N) fp16 scratch */,
                         const vk::View& x16 /* (M, K) fp16 */, const vk::View& w16 /* (N, K) fp16 */, uint32_t M,
                         uint32_t N, uint32_t K);

// The fp16 forms of linear_gelu_forward, linear_residual_forward and linear_gelu_backward: the
// fp16 matmul with the successor in its stores where matmul_f16_epilogue_supported (the GPU
// kernel), else the separate ops. x16 / dy16 are scratch for the casts, dhidden is scratch for the
// separate path; db is summed from the fp32 dy either way.
void linear_gelu_forward_f16(vk::Recorder& rec, const vk::View& y /* (M, N) */, const vk::View& pre /* (M, N) */,
                             const vk::View& x16 /* (M, K) fp16 */, const vk::View& x /* (M, K) */,
                             const vk::View& w16 /* (N, K) fp16 */, const vk::View& b, uint32_t M, uint32_t N,
                             uint32_t K);
void linear_residual_forward_f16(vk::Recorder& rec, const vk::View& y /* (M, N) */, const vk::View& x16 /* (M, K) fp16 */,
                                 const vk::View& x /* (M, K) */, const vk::View& w16 /* (N, K) fp16 */,
                                 const vk::View& b, const vk::View& residual /* (M, N) */, uint32_t M, uint32_t N,
                                 uint32_t K);
void linear_gelu_backward_f16(vk::Recorder& rec, const vk::View& dpre /* (M, K), overwritten */, const vk::View& dw,
                              const vk::View& db, const vk::View& dy /* (M, N) */, const vk::View& dy16,
                              const vk::View& hidden16 /* (M, K) fp16 */, const vk::View& w16 /* (N, K) fp16 */,
                              const vk::View& pre /* (M, K) */, const vk::View& dhidden /* (M, K) scratch */,
                              uint32_t M, uint32_t N, uint32_t K);

namespace ref {
// b, dx and db may be null, with the same meaning as the empty Views above.
void linear_forward(double* y, const double* x, const double* w, const double* b, uint64_t M, uint64_t N,
                    uint64_t K);
void linear_backward(double* dx, double* dw, double* db, const double* dy, const double* x, const double* w,
                     uint64_t M, uint64_t N, uint64_t K);
}  // namespace ref

}  // namespace vkvit::ops
