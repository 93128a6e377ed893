// Bindings, push constants, half loads and the store shared by the fp16-storage matmul kernels
// (common/matmul_f16.glsl for CPU Vulkan, common/matmul_tiled.glsl's fp16 build for GPUs): A and B
// hold binary16 values packed two to a word (common/half.glsl), C is fp32 or, with OUT_F16, fp16;
// the bias is fp32; accumulation is fp32.
#ifdef OUT_F16
#extension GL_EXT_shader_16bit_storage : require
#endif

#ifdef OUT_F16
layout(set = 0, binding = 0) buffer C { float16_t c[]; };             // (batch, M, ldc) fp16
#else
layout(set = 0, binding = 0) buffer C { float c[]; };                 // (batch, M, ldc) fp32
#endif
layout(set = 0, binding = 1) readonly buffer A { uint a[]; };         // (batch, M, lda) or (batch, K, lda), packed halves
layout(set = 0, binding = 1) readonly buffer A8 { uvec4 a8[]; };
layout(set = 0, binding = 2) readonly buffer B { uint b[]; };         // (batch, K, ldb) or (batch, N, ldb), packed halves
layout(set = 0, binding = 2) readonly buffer B8 { uvec4 b8[]; };
layout(set = 0, binding = 3) readonly buffer Bias { float bias[]; };  // (N) fp32 when has_bias

// Mirrored by MatmulPush in src/ops/matmul_launch.h, the same block as the fp32 kernels';
// offsets, leading dimensions and strides count elements of each operand's own type.
layout(push_constant) uniform Push {
  uint M, N, K;
  uint lda, ldb, ldc;
  uint batch_inner;
  uint a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  float alpha, beta;
  uint flags;  // bit 2: has_bias
  uint a_base, b_base, c_base, bias_base;
  uint batch;
  uint aux_base;  // the epilogue operand's start in its binding (matmul_f16_tiled with fp32 output)
} p;
#include "matmul_result_spec.glsl"

float half_a(uint i) {
  const vec2 v = unpackHalf2x16(a[i >> 1]);
  return (i & 1u) != 0u ? v.y : v.x;
}
float half_b(uint i) {
  const vec2 v = unpackHalf2x16(b[i >> 1]);
  return (i & 1u) != 0u ? v.y : v.x;
}
void unpack8(uvec4 w, out float v[8]) {
  const vec2 p0 = unpackHalf2x16(w.x), p1 = unpackHalf2x16(w.y), p2 = unpackHalf2x16(w.z), p3 = unpackHalf2x16(w.w);
  v[0] = p0.x, v[1] = p0.y, v[2] = p1.x, v[3] = p1.y, v[4] = p2.x, v[5] = p2.y, v[6] = p3.x, v[7] = p3.y;
}

// The result for C[ci], in fp32: alpha * acc + beta * C[ci] + bias[n] (beta == 0 never reads C,
// which may hold NaN); store_c writes it in C's type.
float result_at(uint ci, uint n, float acc) {
  float r = p.alpha * acc;
  if (READS_C && p.beta != 0.0) r += p.beta * float(c[ci]);
  if (HAS_BIAS && (p.flags & 4u) != 0u) r += bias[p.bias_base + n];
  return r;
}
void store_c(uint ci, uint n, float acc) {
#ifdef OUT_F16
  c[ci] = float16_t(result_at(ci, n, acc));
#else
  c[ci] = result_at(ci, n, acc);
#endif
}
