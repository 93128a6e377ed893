// Matmul on fp16 storage with fp32 accumulation, the product of the mixed-precision path
// (train.amp): C[z] = alpha * op(A[z]) op(B[z]) + beta * C[z] (+ bias), with exactly the shape,
// transpose, batching, leading-dimension and alpha/beta/bias semantics of ops::matmul
// (ops/matmul.h, MatmulShape), except that every offset, ld and stride counts elements of the
// operand's own type: A and B are fp16 (packed, ops/cast.h), C is fp32 or fp16 (MatmulOut), the
// bias is fp32. Splits calls whose operands would not fit one binding as ops::matmul does.
//
// Kernels, chosen as ops::matmul chooses its own (matmul_kernel_for): on CPU drivers
// the matmul_f16_<TM>x<TN>[_h] variants of shaders/common/matmul_f16.glsl, the register-blocked
// recipe with uvec4 loads of 8 halves, which like the fp32 register-blocked kernel needs a subgroup
// of >= 8 lanes with shuffles; on GPUs the matmul_f16_tiled[_h] variants, the fp32 tiled kernel
// (common/matmul_tiled.glsl) reading halves. None needs fp16 arithmetic or, for fp32 output, 16-bit
// storage (packed words and unpackHalf2x16 are core GLSL); fp16 output stores float16_t and needs
// storageBuffer16BitAccess.
#pragma once
#include <cstdint>

#include "ops/matmul.h"
#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

enum class MatmulOut { f32, f16 };

// c: (batch, M, N) fp32 or fp16; a16: (batch, M, K) or (batch, K, M) fp16; b16: (batch, K, N) or
// (batch, N, K) fp16; bias: (N) fp32 or empty. fp16 views start at an even byte offset. Throws
// vkvit::Error when the device cannot run the kernels (matmul_f16_unsupported says why).
// shape.epilogue (with its fp32 operand aux, as ops::matmul takes them) only where
// matmul_f16_epilogue_supported: the tiled kernel with fp32 output.
void matmul_f16(vk::Recorder& rec, const vk::View& c, const vk::View& a16, const vk::View& b16, const MatmulShape& shape,
                const vk::View& bias = {}, MatmulOut out = MatmulOut::f32, const vk::View& aux = {});
bool matmul_f16_epilogue_supported(const vk::Context& ctx, MatmulOut out);

// Empty when ctx's device runs matmul_f16 with this output type; else the reason, one line.
std::string matmul_f16_unsupported(const vk::Context& ctx, MatmulOut out);

}  // namespace vkvit::ops
