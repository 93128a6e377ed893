// Multi-head scaled dot-product attention (Vaswani et al. 2017, "Attention Is All You Need"),
// forward and backward, laid out as timm's / torchvision's ViT Attention block uses it:
//   qkv (B, N, 3D) is the output of the qkv Linear(D, 3D): each token's row is [q (D); k (D); v (D)]
//   and within each of q, k, v head h owns columns h*d .. h*d + d - 1 (d = D / H).
//   out (B, N, D) holds the heads concatenated in the same order, ready for the proj Linear.
// Per image b and head h, with scale = 1 / sqrt(d):
//   S = scale * Q K^T,  P = softmax(S) over keys,  O = P V.
// Backward (P saved by the forward):
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),  dQ = scale * dS K,  dK = scale * dS^T Q.
//
// Two paths compute this. The unfused one is the reference path: the matmuls read Q, K, V straight
// out of qkv and write O straight into out through leading dimensions and two-level (image, head)
// batch strides (no copies), and softmax runs in place on the scores. Its memory cost is quadratic
// in N: probs holds B*H*N*N floats saved for backward, and backward needs a scratch of the same
// B*H*N*N floats for dP / dS (ViT-B/16 at N = 197, H = 12: 1.8 MiB per image each).
// The fused path (attention_fused_*, shaders/common/attention_fused*.glsl) runs the whole forward
// in one kernel with an online softmax and saves only the row log-sum-exp (B*H*N floats); its
// backward recomputes P from it in two kernels (dQ per query row, then dK and dV per key row),
// with delta_i = dO_i . O_i in place of rowsum(dP * P). It exists for head widths
// attention_fused_supported() accepts; the model uses it there and the unfused path elsewhere.
//
// K and V start D and 2D floats into each qkv row, which for widths like D = 21 is not a multiple
// of minStorageBufferOffsetAlignment; ops::matmul takes views at any float offset (it binds the
// aligned-down range and passes the remainder to the shader), so every width works.
#pragma once
#include <cstdint>
#include <string>

#include "ops/matmul.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// out = attention(qkv); probs = softmax(scale * Q K^T), saved for backward.
void attention_forward(vk::Recorder& rec, const vk::View& out /* (B, N, D) */, const vk::View& probs /* (B, H, N, N) */,
                       const vk::View& qkv /* (B, N, 3D) */, uint32_t B, uint32_t N, uint32_t D, uint32_t H);

// dqkv += gradient of sum(out * dout) with respect to qkv (the caller zeroes dqkv once per step).
// scratch is overwritten (dP, then dS in place); probs and qkv are the forward's.
void attention_backward(vk::Recorder& rec, const vk::View& dqkv /* (B, N, 3D) */,
                        const vk::View& scratch /* (B, H, N, N) */, const vk::View& probs /* (B, H, N, N) */,
                        const vk::View& qkv /* (B, N, 3D) */, const vk::View& dout /* (B, N, D) */, uint32_t B,
                        uint32_t N, uint32_t D, uint32_t H);

// Images the unfused path processes per chunk so that each image's qkv, probabilities and output
// fit one storage binding; 0 when one image does not fit (callers report the shape). Chunks may
// start at any image: ops::matmul and ops::softmax bind from aligned-down offsets.
uint64_t attention_images_per_chunk(const vk::Context& ctx, uint32_t N, uint32_t D, uint32_t H);

// The six batched products of the unfused path over `images` images (batch index z = image * H
// + head), with the operand layouts and alpha/beta the path passes to ops::matmul: Q, K, V read
// from qkv (B, N, 3D), P / dP dense (B, H, N, N), O / dO in (B, N, D). The views they apply to
// are slices of those tensors (K and V start D and 2D floats in). Bench and tests reuse them.
struct AttentionProducts {
  MatmulShape scores;  // S = scale Q K^T     (into the probs buffer)
  MatmulShape pv;      // O = P V
  MatmulShape dv;      // dV += P^T dO
  MatmulShape dp;      // dP = dO V^T
  MatmulShape dq;      // dQ += scale dS K
  MatmulShape dk;      // dK += scale dS^T Q
};
AttentionProducts attention_products(uint32_t images, uint32_t N, uint32_t D, uint32_t H);

// True when the fused kernels exist for this shape: head width d = D / H in {16, 32, 64}.
bool attention_fused_supported(uint32_t D, uint32_t H);
// Why the fused kernels cannot run on this device, or empty: they shuffle across 8-lane
// workgroups that must each be one subgroup (eight_lane_unsupported, matmul.h), so a device of
// 4-lane subgroups runs the unfused path. The message names the device's subgroup size.
std::string attention_fused_unsupported(const vk::DeviceInfo& info);

// out = attention(qkv); lse (B, H, N) = log sum_j exp(scale q_i . k_j), saved for backward.
// Every view must start 16-byte aligned (the kernels load vec4s).
void attention_fused_forward(vk::Recorder& rec, const vk::View& out /* (B, N, D) */, const vk::View& lse /* (B, H, N) */,
                             const vk::View& qkv /* (B, N, 3D) */, uint32_t B, uint32_t N, uint32_t D, uint32_t H);

// dqkv = gradient of sum(out * dout) with respect to qkv (overwritten, not accumulated); out and
// lse are the forward's; delta (B, H, N) is scratch.
void attention_fused_backward(vk::Recorder& rec, const vk::View& dqkv /* (B, N, 3D) */,
                              const vk::View& delta /* (B, H, N) */, const vk::View& lse /* (B, H, N) */,
                              const vk::View& qkv /* (B, N, 3D) */, const vk::View& out /* (B, N, D) */,
                              const vk::View& dout /* (B, N, D) */, uint32_t B, uint32_t N, uint32_t D, uint32_t H);

namespace ref {
// Same semantics on host arrays, written as plain loops (no matmul), in double precision.
// Row log-sum-exp of the scores, what the fused forward saves: lse (B, H, N).
void attention_lse(double* lse, const double* qkv /* (B, N, 3D) */, uint32_t B, uint32_t N, uint32_t D, uint32_t H);
void attention_forward(double* out /* (B, N, D) */, double* probs /* (B, H, N, N) */, const double* qkv /* (B, N, 3D) */,
                       uint32_t B, uint32_t N, uint32_t D, uint32_t H);
// dqkv += ...; needs no scratch from the caller.
void attention_backward(double* dqkv /* (B, N, 3D) */, const double* probs /* (B, H, N, N) */,
                        const double* qkv /* (B, N, 3D) */, const double* dout /* (B, N, D) */, uint32_t B, uint32_t N,
                        uint32_t D, uint32_t H);
}  // namespace ref

}  // namespace vkvit::ops
