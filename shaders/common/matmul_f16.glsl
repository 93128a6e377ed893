#version 450
// fp16-storage matmul for CPU Vulkan (lavapipe/llvmpipe), fp32 accumulation:
//   C[z] = alpha * op(A[z]) op(B[z]) + beta * C[z] + bias
// with the layout, batching and alpha/beta/bias semantics of ops::matmul (src/ops/matmul.h); A and B
// hold binary16 values packed two to a word (common/half.glsl), C is fp32 or, with OUT_F16, fp16.
//
// The same recipe as the fp32 kernel (common/matmul_regblock.glsl, reasons there and in
// BENCHMARKS.md): one 8-lane workgroup = one subgroup, no shared memory, TM rows of C shared by the
// lanes (each lane fetches different A values, subgroupShuffle hands them out), TN columns per
// lane, a TM x TN accumulator block in registers, workgroup x walking M. What differs is the load:
// llvmpipe runs a storage-buffer load as a loop over lanes and components, and a uvec4 of packed
// halves is 8 values for the 4 components a vec4 load costs. So k advances 8 per iteration, and A
// and B are read as uvec4 (8 consecutive k, or 8 consecutive n for B in NN) where the launcher has
// checked that the operand's base, leading dimension, batch strides and contiguous dimension are
// multiples of 8 (VEC_A / VEC_B), else as single halves out of their words.
//
// Each variant in shaders/variants.cmake (matmul_f16_<TM>x<TN>, and matmul_f16_<TM>x<TN>_h with
// OUT_F16) defines TM (a multiple of 8) and TN as compile-time constants so that glslc unrolls
// every loop (lavapipe does not unroll after specialization); VEC_B with !TRANS_B needs TN % 8 == 0.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

#define LANES 8u
#define KSTEP 8u
layout(local_size_x = 8) in;
// The spec-constant layout of the fp32 register-blocked kernel, so both launchers build it the same way.
layout(constant_id = 0) const uint UNUSED_LANES = 8;
layout(constant_id = 1) const bool TRANS_A = false;  // A stored (K, M)
layout(constant_id = 2) const bool TRANS_B = false;  // B stored (N, K)
layout(constant_id = 3) const bool VEC_A = false;    // uvec4 loads of A along its contiguous dim
layout(constant_id = 4) const bool VEC_B = false;    // uvec4 loads of B along its contiguous dim
layout(constant_id = 5) const uint BATCH_PER_GROUP = 1;

#include "matmul_f16_common.glsl"

#define A_ROWS (TM / LANES)

void block(uint z) {
  const uint lane = gl_SubgroupInvocationID;
  const uint outer = z / p.batch_inner, inner = z - outer * p.batch_inner;
  const uint a0 = p.a_base + outer * p.a_outer + inner * p.a_inner;
  const uint b0 = p.b_base + outer * p.b_outer + inner * p.b_inner;
  const uint c0 = p.c_base + outer * p.c_outer + inner * p.c_inner;
  const uint m0 = gl_WorkGroupID.x * TM;
  const uint n0 = (gl_WorkGroupID.y * LANES + lane) * TN;

  // Rows past M and columns past N re-read the last valid one; their results are never stored.
  uint arow[A_ROWS];  // this lane's rows r * LANES + lane of the block (scalar and NN/NT vec paths)
  [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
    const uint m = min(m0 + r * LANES + lane, p.M - 1u);
    arow[r] = TRANS_A ? a0 + m : a0 + m * p.lda;
  }
  // Transposed vec A: the 8 x TM slice of A for eight k is TM uvec4s along M; this lane fetches
  // uvec4 number r * LANES + lane: k offset atq, columns from atcol (M % 8 == 0, so a group of 8
  // columns is all valid or all past M).
  uint atcol[A_ROWS], atq[A_ROWS];
  [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
    const uint idx = r * LANES + lane;
    atq[r] = idx / (TM / 8u);
    atcol[r] = a0 + min(m0 + 8u * (idx % (TM / 8u)), p.M - min(p.M, 8u));
  }
  uint bcol[TN];
  [[unroll]] for (uint j = 0; j < TN; ++j) {
    const uint n = min(n0 + j, p.N - 1u);
    bcol[j] = TRANS_B ? b0 + n * p.ldb : b0 + n;
  }
  const uint a_step = TRANS_A ? p.lda : 1u;
  const uint b_step = TRANS_B ? 1u : p.ldb;

  float acc[TM][TN];
  [[unroll]] for (uint i = 0; i < TM; ++i)
    [[unroll]] for (uint j = 0; j < TN; ++j) acc[i][j] = 0.0;

  // Eight k per iteration, one loop body (no remainder loop; see the fp32 kernel): past K, A is
  // zeroed (vec loads along k are only used when K % 8 == 0) and B is read at a clamped valid k.
  for (uint k = 0; k < p.K; k += KSTEP) {
    float av[KSTEP][TM];
    float bv[KSTEP][TN];
    if (VEC_A && !TRANS_A) {
      [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
        float v[8];
        unpack8(a8[(arow[r] + k) >> 3], v);
        [[unroll]] for (uint l = 0; l < LANES; ++l)
          [[unroll]] for (uint kk = 0; kk < KSTEP; ++kk) av[kk][r * LANES + l] = subgroupShuffle(v[kk], l);
      }
    } else if (VEC_A && TRANS_A) {
      [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
        float v[8];
        unpack8(a8[(atcol[r] + min(k + atq[r], p.K - 1u) * p.lda) >> 3], v);
        [[unroll]] for (uint l = 0; l < LANES; ++l) {
          const uint idx = r * LANES + l, q = idx / (TM / 8u), j = idx % (TM / 8u);
          [[unroll]] for (uint e = 0; e < 8u; ++e) av[q][8u * j + e] = k + q < p.K ? subgroupShuffle(v[e], l) : 0.0;
        }
      }
    } else {
      [[unroll]] for (uint kk = 0; kk < KSTEP; ++kk) {
        const uint kc = min(k + kk, p.K - 1u);
        [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
          const float v = half_a(arow[r] + kc * a_step);
          [[unroll]] for (uint l = 0; l < LANES; ++l)
            av[kk][r * LANES + l] = k + kk < p.K ? subgroupShuffle(v, l) : 0.0;
        }
      }
    }
    if (VEC_B && TRANS_B) {
      [[unroll]] for (uint j = 0; j < TN; ++j) {
        float v[8];
        unpack8(b8[(bcol[j] + k) >> 3], v);
        [[unroll]] for (uint kk = 0; kk < KSTEP; ++kk) bv[kk][j] = v[kk];
      }
    } else if (VEC_B && !TRANS_B) {
      [[unroll]] for (uint kk = 0; kk < KSTEP; ++kk) {
        const uint kc = min(k + kk, p.K - 1u);
        [[unroll]] for (uint j = 0; j < TN; j += 8u) {
          float v[8];
          unpack8(b8[(b0 + kc * p.ldb + min(n0 + j, p.N - min(p.N, 8u))) >> 3], v);
          [[unroll]] for (uint e = 0; e < 8u; ++e) bv[kk][j + e] = v[e];
        }
      }
    } else {
      [[unroll]] for (uint kk = 0; kk < KSTEP; ++kk) {
        const uint kc = min(k + kk, p.K - 1u);
        [[unroll]] for (uint j = 0; j < TN; ++j) bv[kk][j] = half_b(bcol[j] + kc * b_step);
      }
    }
    // k innermost: an accumulator past the registers is loaded and stored once per iteration
    // (see the fp32 kernel).
    [[unroll]] for (uint i = 0; i < TM; ++i)
      [[unroll]] for (uint j = 0; j < TN; ++j)
        [[unroll]] for (uint kk = 0; kk < KSTEP; ++kk) acc[i][j] = fma(av[kk][i], bv[kk][j], acc[i][j]);
  }

  [[unroll]] for (uint i = 0; i < TM; ++i) {
    const uint m = m0 + i;
    [[unroll]] for (uint j = 0; j < TN; ++j) {
      const uint n = n0 + j;
      if (m < p.M && n < p.N) store_c(c0 + m * p.ldc + n, n, acc[i][j]);
    }
  }
}

void main() {
  const uint first = gl_WorkGroupID.z * BATCH_PER_GROUP;
  const uint last = min(first + BATCH_PER_GROUP, p.batch);
  for (uint z = first; z < last; ++z) block(z);
}
