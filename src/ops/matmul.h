// Batched matrix multiply, the workhorse of linear layers and attention:
//   C[z] = alpha * op(A[z]) * op(B[z]) + beta * C[z] (+ bias broadcast over rows)
// op(A) is (M, K): A is stored (M, K) row-major, or (K, M) when trans_a.
// op(B) is (K, N): B is stored (K, N) row-major, or (N, K) when trans_b (a PyTorch Linear weight).
// Leading dimensions (row strides, in floats) let attention read Q, K, V straight out of the
// fused qkv activation. The batch index z = outer * batch_inner + inner maps to the element offset
// outer * stride_outer + inner * stride_inner of each operand, which covers (batch, head) pairs.
// fp32 in, fp32 out, fp32 accumulation.
#pragma once
#include <cstdint>
#include <string>

#include "vk/context.h"
#include "vk/memory.h"
#include "vk/pipeline.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// Which shader computes the product. `automatic` picks per device (matmul_kernel_for).
enum class MatmulKernel {
  automatic,
  naive,     // shaders/matmul_naive.comp: one output per invocation; the benchmark's baseline
  // Register-blocked, one subgroup per workgroup (8 or 4 lanes, register_blocked_lanes), no shared
  // memory, no barriers (CPU Vulkan): the matmul_regblock_* variants of
  // shaders/common/matmul_regblock.glsl.
  register_blocked,
  tiled,  // shared-memory tiles (GPUs): shaders/common/matmul_tiled.glsl
};

struct MatmulOperand {
  uint32_t ld = 0;             // row stride in floats; 0 = dense (K or M for A, N or K for B, N for C)
  uint64_t stride_outer = 0;   // floats between outer batch entries
  uint64_t stride_inner = 0;   // floats between inner batch entries
};

// What the store does with each result r = alpha * op(A) op(B) + beta * C + bias (the
// register-blocked and tiled kernels; see matmul_epilogue_supported): none; gelu: aux = r, C = gelu(r) (exact erf
// GELU; fc1 + activation, the pre-activation kept for the backward); add: C = r + aux (the
// residual connection after proj and fc2); gelu_grad: C = r * gelu'(aux) (fc2's input gradient
// through the GELU, aux = the pre-activation). aux has C's layout (ld, batch strides). row_sums:
// aux (M) += the row sums of op(A), C unchanged in meaning (the bias gradient of a linear layer
// rides along its weight gradient dW = dy^T x: the rows of dy^T are the output features; single
// products only). gelu_only: C = gelu(r), no operand (inference, where no backward needs the
// pre-activation: one store per result instead of two).
enum class MatmulEpilogue { none, gelu, add, gelu_grad, row_sums, gelu_only };

struct MatmulShape {
  uint32_t M = 0, N = 0, K = 0;
  bool trans_a = false;
  bool trans_b = false;
  uint32_t batch = 1;        // total batch count (outer * inner)
  uint32_t batch_inner = 1;  // inner batch count; batch must be a multiple of it
  MatmulOperand a, b, c;
  float alpha = 1.0f;
  float beta = 0.0f;  // 1 accumulates into C (backward passes)
  MatmulEpilogue epilogue = MatmulEpilogue::none;
};

// c: (batch, M, N); a: (batch, M, K) or (batch, K, M); b: (batch, K, N) or (batch, N, K);
// bias: (N) or an empty View for none. Calls whose operands would need a binding larger than
// maxStorageBufferRange are split along the batch, M, N or K (K with beta = 1 accumulation);
// a shape that cannot be split throws vkvit::Error naming it. `kernel` forces a shader (tests,
// benchmarks); automatic honours Tuning::matmul_kernel (VKVIT_MATMUL_KERNEL), else the device.
// aux: the epilogue's operand (shape.epilogue other than none and gelu_only), else empty; it must
// not overlap C.
void matmul(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const MatmulShape& shape,
            const vk::View& bias = {}, MatmulKernel kernel = MatmulKernel::automatic, const vk::View& aux = {});

// Whether `kernel` (automatic resolved for ctx's device and tuning) fuses epilogues; callers run the separate
// ops otherwise.
bool matmul_epilogue_supported(MatmulKernel kernel, const vk::Context& ctx);

// The 8-lane kernels (the register-blocked fp32 and fp16 matmuls, the fused attention) shuffle
// across the 8 invocations of a workgroup, so each workgroup must be one subgroup: the subgroup
// size their pipelines pin for that (a subgroup of 16 holds the 8 lanes as well; a CPU driver
// without size control runs its reported width), or size 0 where the device cannot promise it
// (a subgroup of 4 splits the workgroup in two). lane_pin and lanes_unsupported say the same for
// a workgroup of `lanes` (the fp32 register-blocked kernel also comes in 4 lanes).
constexpr uint32_t kSubgroupKernelLanes = 8;
vk::SubgroupPin lane_pin(const vk::DeviceInfo& info, uint32_t lanes);
vk::SubgroupPin eight_lane_pin(const vk::DeviceInfo& info);
// Why `kernel` (its name, for the message) cannot run on this device: no `lanes`-lane subgroup
// (the message names the device's subgroup size) or no subgroup shuffles; empty where it can.
std::string lanes_unsupported(const vk::DeviceInfo& info, const std::string& kernel, uint32_t lanes);
std::string eight_lane_unsupported(const vk::DeviceInfo& info, const std::string& kernel);

// The lanes of the fp32 register-blocked kernel's workgroup on `device`: 8 where a workgroup of 8
// is one subgroup (lavapipe at its default 256-bit vectors, GPUs), else 4 where a workgroup of 4
// is (SwiftShader, lavapipe at 128-bit vectors, ARM Mali at 4), else 0: the kernel cannot run.
uint32_t register_blocked_lanes(const vk::DeviceInfo& device);

// The kernel `automatic` resolves to: Tuning::matmul_kernel (VKVIT_MATMUL_KERNEL) unless auto,
// else register_blocked on CPU Vulkan drivers where it has 8 or 4 lanes in one subgroup
// (register_blocked_lanes) and tiled on GPUs.
MatmulKernel matmul_kernel_for(const vk::DeviceInfo& device, const vk::Tuning& tuning);
const char* matmul_kernel_name(MatmulKernel kernel);
// "naive" | "register_blocked" (or "lavapipe", its older name) | "tiled" | "auto"; throws
// vkvit::Error naming the bad value.
MatmulKernel parse_matmul_kernel(const std::string& name);

namespace ref {
// Same semantics as ops::matmul on host arrays (element offsets, not bytes).
// shape.epilogue must be none (the reference model applies GELU and residuals itself).
void matmul(double* c, const double* a, const double* b, const MatmulShape& shape, const double* bias = nullptr);
}  // namespace ref

}  // namespace vkvit::ops
