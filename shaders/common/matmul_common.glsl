// Bindings, push constants and the epilogue shared by every matmul kernel (matmul_naive,
// matmul_regblock, matmul_tiled). The push block is mirrored by MatmulPush in src/ops/matmul_launch.h.
// Every offset is in floats from the start of its binding: the launcher binds the smallest range
// that covers an operand (aligned down), and *_base is where the operand starts inside it.
// A and B are also visible as vec4 arrays; kernels read those only when the launcher has checked
// that leading dimensions, batch strides and bases are multiples of 4 (VEC4 variants).

layout(set = 0, binding = 0) buffer C { float c[]; };                   // (batch, M, ldc)
#ifdef MATMUL_TEXEL_AB
// A and B as RGBA32F uniform texel buffers: texel i holds floats 4i .. 4i + 3 (the launcher uses
// these variants only where every vector load is aligned, VEC_A and VEC_B).
layout(set = 0, binding = 1) uniform samplerBuffer a_texels;
layout(set = 0, binding = 2) uniform samplerBuffer b_texels;
#else
layout(set = 0, binding = 1) readonly buffer A { float a[]; };          // (batch, M, lda) or (batch, K, lda)
layout(set = 0, binding = 1) readonly buffer A4 { vec4 a4[]; };
layout(set = 0, binding = 2) readonly buffer B { float b[]; };          // (batch, K, ldb) or (batch, N, ldb)
layout(set = 0, binding = 2) readonly buffer B4 { vec4 b4[]; };
#endif
layout(set = 0, binding = 3) readonly buffer Bias { float bias[]; };    // (N) when has_bias

layout(push_constant) uniform Push {
  uint M, N, K;
  uint lda, ldb, ldc;
  uint batch_inner;
  uint a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;  // batch strides in floats
  float alpha, beta;
  uint flags;  // bit 0: trans_a, bit 1: trans_b (read by matmul_naive only), bit 2: has_bias
  uint a_base, b_base, c_base, bias_base;
  uint batch;  // batch entries of this dispatch (kernels that loop over several per workgroup)
  uint aux_base;  // the epilogue operand's start in its binding (kernels with an epilogue)
} p;
#include "matmul_result_spec.glsl"

// Element offsets of batch entry z's A, B and C inside their bindings.
void batch_bases(uint z, out uint a0, out uint b0, out uint c0) {
  uint outer = z / p.batch_inner, inner = z - outer * p.batch_inner;
  a0 = p.a_base + outer * p.a_outer + inner * p.a_inner;
  b0 = p.b_base + outer * p.b_outer + inner * p.b_inner;
  c0 = p.c_base + outer * p.c_outer + inner * p.c_inner;
}

// The result for C[ci]: alpha * acc + beta * C[ci] + bias[n]; store_c writes it. beta == 0 never
// reads C, so C may hold garbage (NaN).
float result_at(uint ci, uint n, float acc) {
  float r = p.alpha * acc;
  if (READS_C && p.beta != 0.0) r += p.beta * c[ci];
  if (HAS_BIAS && (p.flags & 4u) != 0u) r += bias[p.bias_base + n];
  return r;
}
void store_c(uint ci, uint n, float acc) { c[ci] = result_at(ci, n, acc); }
