#version 450
// Shared-memory tiled matmul for GPUs: a workgroup computes a BM x BN tile of C, staging BK-deep
// slices of op(A) and op(B) in shared memory so each global value is read once per tile instead
// of once per output; each invocation accumulates a TM x TN block in registers (fp32). Loads are
// arranged so consecutive invocations read consecutive addresses for every transpose.
// Tile sizes are specialization constants chosen per device (src/ops/matmul.cpp).
// C[z] = alpha * op(A[z]) op(B[z]) + beta * C[z] + bias; layout in src/ops/matmul.h.
// Variants (shaders/variants.cmake): matmul_tiled over fp32 operands (common/matmul_common.glsl);
// with MATMUL_F16, matmul_f16_tiled over packed halves (common/matmul_f16_common.glsl), fp32
// accumulation, and with OUT_F16 as well, matmul_f16_tiled_h storing fp16. The fp32-output builds
// fuse the epilogues of common/matmul_epilogue.glsl (TILED_EPILOGUE, spec constant 8).
#extension GL_GOOGLE_include_directive : require
#ifdef MATMUL_F16
#include "matmul_f16_common.glsl"
#define LOAD_A(i) half_a(i)
#define LOAD_B(i) half_b(i)
#else
#include "matmul_common.glsl"
#define LOAD_A(i) a[i]
#define LOAD_B(i) b[i]
#endif
#ifdef OUT_F16
#define STORE_RESULT store_c
#else
#include "matmul_epilogue.glsl"
#define STORE_RESULT store_result
#define TILED_EPILOGUE
#endif

// Never read gl_WorkGroupSize here: lavapipe evaluates a specialized one as 1 (common/index.glsl).
layout(constant_id = 0) const uint THREADS = 256;  // must equal (BM / TM) * (BN / TN)
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const bool TRANS_A = false;  // A stored (K, M)
layout(constant_id = 7) const bool TRANS_B = false;  // B stored (N, K)

// k-major tiles: an invocation's TM (TN) values for one k are a strided walk of one row.
shared float As[BK * BM];  // (BK, BM)
shared float Bs[BK * BN];  // (BK, BN)

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint z = gl_WorkGroupID.z, outer = z / p.batch_inner, inner = z - outer * p.batch_inner;
  const uint a0 = p.a_base + outer * p.a_outer + inner * p.a_inner;
  const uint b0 = p.b_base + outer * p.b_outer + inner * p.b_inner;
  const uint c0 = p.c_base + outer * p.c_outer + inner * p.c_inner;
  const uint m0 = gl_WorkGroupID.x * BM;
  const uint n0 = gl_WorkGroupID.y * BN;
  const uint cols = BN / TN;  // invocations along N
  const uint tx = tid % cols, ty = tid / cols;

  float acc[TM][TN];
  for (uint i = 0; i < TM; ++i)
    for (uint j = 0; j < TN; ++j) acc[i][j] = 0.0;
#ifdef TILED_EPILOGUE
  float row_sum[TM];  // EPILOGUE_ROW_SUMS: op(A)'s sums over k of this invocation's rows
  for (uint i = 0; i < TM; ++i) row_sum[i] = 0.0;
#endif

  for (uint k0 = 0; k0 < p.K; k0 += BK) {
    for (uint e = tid; e < BM * BK; e += THREADS) {
      // Consecutive e walk A's contiguous dimension: k when row-major, m when transposed.
      const uint mm = TRANS_A ? e % BM : e / BK;
      const uint kk = TRANS_A ? e / BM : e % BK;
      const uint m = m0 + mm, k = k0 + kk;
      float v = 0.0;
      if (m < p.M && k < p.K) v = LOAD_A(TRANS_A ? a0 + k * p.lda + m : a0 + m * p.lda + k);
      As[kk * BM + mm] = v;
    }
    for (uint e = tid; e < BN * BK; e += THREADS) {
      const uint nn = TRANS_B ? e / BK : e % BN;
      const uint kk = TRANS_B ? e % BK : e / BN;
      const uint n = n0 + nn, k = k0 + kk;
      float v = 0.0;
      if (n < p.N && k < p.K) v = LOAD_B(TRANS_B ? b0 + n * p.ldb + k : b0 + k * p.ldb + n);
      Bs[kk * BN + nn] = v;
    }
    barrier();
    for (uint kk = 0; kk < BK; ++kk) {
      float av[TM];
      float bv[TN];
      // Strided ownership (ty + i * rows) keeps neighbouring invocations on neighbouring banks.
      for (uint i = 0; i < TM; ++i) av[i] = As[kk * BM + ty + i * (BM / TM)];
      for (uint j = 0; j < TN; ++j) bv[j] = Bs[kk * BN + tx + j * cols];
      for (uint i = 0; i < TM; ++i)
        for (uint j = 0; j < TN; ++j) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
#ifdef TILED_EPILOGUE
      // The tile's A values past M or K are zero, so they add nothing.
      if (EPILOGUE == EPILOGUE_ROW_SUMS)
        for (uint i = 0; i < TM; ++i) row_sum[i] += av[i];
#endif
    }
    barrier();
  }

  for (uint i = 0; i < TM; ++i) {
    const uint m = m0 + ty + i * (BM / TM);
    if (m >= p.M) continue;
#ifdef TILED_EPILOGUE
    // Every invocation of a row holds its sums; the first column block's first one adds them.
    if (EPILOGUE == EPILOGUE_ROW_SUMS && gl_WorkGroupID.y == 0u && tx == 0u) aux[p.aux_base + m] += row_sum[i];
#endif
    for (uint j = 0; j < TN; ++j) {
      const uint n = n0 + tx + j * cols;
      if (n < p.N) STORE_RESULT(c0 + m * p.ldc + n, n, acc[i][j]);
    }
  }
}
