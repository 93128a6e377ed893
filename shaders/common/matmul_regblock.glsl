#version 450
// Register-blocked matmul for CPU Vulkan (lavapipe/llvmpipe, SwiftShader), following the recipe
// measured on lavapipe (BENCHMARKS.md "matmul (lavapipe)"): one 8-lane workgroup (= one subgroup
// = one 256-bit SIMD vector; 4 lanes in the _l4 variants), no shared memory, no barriers. Every lane of a workgroup computes the
// same TM rows of C, so all lanes need the same A values; the lanes split TN-wide column strips of
// B. A TM x TN accumulator block per lane turns each A value into TN and each B value into TM
// fused multiply-adds. Workgroup x walks M, so consecutive workgroups reuse the same B column
// strip while it is still in cache.
//
// Why the loads look the way they do: llvmpipe executes a storage-buffer load as a loop over the
// 8 lanes (a branch, a bounds check and a scalar load per lane and component), so the cost is
// per load *instruction* far more than per float. Hence (1) B is loaded as vec4 where the layout
// allows (one lane loop fetches 4 floats), or, in the texel variants (MATMUL_TEXEL_AB), fetched
// from a texel buffer, which llvmpipe gathers with eight 16-byte loads and a transpose and no
// branch; and (2) A is not loaded by every lane: the 8 lanes fetch 8 different A values (vec4
// where allowed) in one load and subgroupShuffle hands each value to all lanes. llvmpipe turns a
// shuffle into one cross-lane permute (vpermps); subgroupBroadcast, the obvious choice, costs a
// loop over the lanes' exec mask per call (looking for the first active lane) and made the kernel
// 1.5-1.6x slower (BENCHMARKS.md, "lavapipe: texel fetches, shuffles and fused epilogues").
// C[z] = alpha * op(A[z]) op(B[z]) + beta * C[z] + bias; layout in src/ops/matmul.h.
//
// Each variant in shaders/variants.cmake (matmul_regblock_<TM>x<TN>, and
// matmul_regblock_texel_<TM>x<TN> with MATMUL_TEXEL_AB) defines TM (rows of C per workgroup, shared
// by its lanes) and TN (columns of C per lane) as compile-time constants: glslc then unrolls every
// loop below.
// Spec-constant array sizes would leave the loops rolled and every array in memory, because
// lavapipe does not unroll after specialization. (Even unrolled, a 16 x 8 block's accumulators
// outnumber the 32 vector registers and live on the stack; block shapes from 8 x 4 to 32 x 4
// measured close to each other once the loads and shuffles above were cheap, BENCHMARKS.md.)
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

// Lanes per workgroup, fixed so the A distribution below unrolls at compile time; the workgroup
// must be one subgroup (true wherever the subgroup size is >= LANES). TM must be a multiple of
// LANES. 8 by default (lavapipe's 256-bit vectors); the _l4 variants define LANES=4u for devices
// whose subgroup is 4 lanes (SwiftShader, lavapipe at 128-bit vectors, some ARM Mali), where an
// 8-lane workgroup would be two subgroups and the shuffles below would cross them.
// (A fixed local_size also sidesteps lavapipe's specialized-gl_WorkGroupSize bug, common/index.glsl.)
//
// FEW_BLOCKS (the 4-lane variants): the same arithmetic in far fewer basic blocks. SwiftShader's
// pipeline compile walks paths between blocks at a cost that grows much faster than the block
// count; the unrolled kernel has one conditional per A shuffle past K and per stored element
// (over a thousand blocks at 4 x 8), and its 4 x 8 NN pipeline did not compile within a minute.
// So these variants zero A past K with a select before shuffling, and store C in a rolled loop.
#ifndef LANES
#define LANES 8u
#endif
layout(local_size_x = LANES) in;
// constant_id 0 is unused (kept so every variant shares the launcher's spec-constant layout).
layout(constant_id = 0) const uint UNUSED_LANES = 8;
layout(constant_id = 1) const bool TRANS_A = false;   // A stored (K, M)
layout(constant_id = 2) const bool TRANS_B = false;   // B stored (N, K)
layout(constant_id = 3) const bool VEC_A = false;     // A's contiguous dim, lda, strides, base % 4 == 0
layout(constant_id = 4) const bool VEC_B = false;     // same for B (TN % 4 == 0 when !TRANS_B)
// Batch entries per workgroup. Batched small products (attention over B * H heads of 17 x 17)
// give each workgroup only a few hundred FMAs per entry, and lavapipe's fixed cost per workgroup
// (task hand-out, this prologue) then outweighs the product; looping over several entries in one
// workgroup amortises it. The launcher sets it; 1 for single products.
layout(constant_id = 5) const uint BATCH_PER_GROUP = 1;
// Load four floats as two 64-bit components instead of four 32-bit ones. llvmpipe's load is a
// loop over the lanes with a bounds check, branch and scalar load per lane *and component*, so
// this halves the work per float (needs shaderInt64; the launcher sets it where enabled).
#ifdef WIDE_MODULE
layout(constant_id = 6) const bool WIDE_LOADS = false;
#else
const bool WIDE_LOADS = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif
// Store C four floats at a time as two 64-bit components, for the same reason (the store is a
// lane loop per component too). The launcher sets it where shaderInt64 is on, TN % 4 == 0 and N,
// ldc, C's base and batch strides are multiples of 4, so a group of four is wholly in or out.
#ifdef WIDE_MODULE
layout(constant_id = 7) const bool WIDE_STORES = false;
#else
const bool WIDE_STORES = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif
#include "matmul_common.glsl"
#include "matmul_epilogue.glsl"
#include "wide.glsl"
layout(set = 0, binding = 0) buffer C8 { wide4 c8[]; };
layout(set = 0, binding = 4) buffer Aux8 { wide4 aux8[]; };

#ifdef MATMUL_TEXEL_AB
// Texel fetches: llvmpipe gathers the 8 lanes' texels with plain vector loads and shuffles, no
// per-lane branches (the storage-buffer path below loops over the lanes); WIDE_LOADS is moot.
vec4 load_a4(uint i) { return texelFetch(a_texels, int(i)); }
vec4 load_b4(uint i) { return texelFetch(b_texels, int(i)); }
float load_a1(uint i) { return texelFetch(a_texels, int(i >> 2))[i & 3u]; }
float load_b1(uint i) { return texelFetch(b_texels, int(i >> 2))[i & 3u]; }
#else
layout(set = 0, binding = 1) readonly buffer A8 { wide4 a8[]; };
layout(set = 0, binding = 2) readonly buffer B8 { wide4 b8[]; };

vec4 load_a4(uint i) {
  if (WIDE_LOADS) return unpack4(a8[i]);
  return a4[i];
}
vec4 load_b4(uint i) {
  if (WIDE_LOADS) return unpack4(b8[i]);
  return b4[i];
}
float load_a1(uint i) { return a[i]; }
float load_b1(uint i) { return b[i]; }
#endif

// A values for row i of the block, from the per-lane loads: row i was fetched by lane i % LANES
// into its register (i / LANES).
#define A_ROWS (TM / LANES)

#ifdef FEW_BLOCKS
// The block's stores as one rolled loop (one bounds test and the epilogue's blocks, not TM x TN
// of them); WIDE_STORES is not used here (the launcher leaves it off for these variants).
void store_rolled(uint c0, uint m0, uint n0, float acc[TM][TN]) {
  [[dont_unroll]] for (uint i = 0; i < TM; ++i) {
    [[dont_unroll]] for (uint j = 0; j < TN; ++j) {
      const uint m = m0 + i, n = n0 + j;
      if (m < p.M && n < p.N) store_result(c0 + m * p.ldc + n, n, acc[i][j]);
    }
  }
}
#endif

// One TM x (LANES * TN) block of C for batch entry z.
void block(uint z) {
  const uint lane = gl_SubgroupInvocationID;
  uint a0, b0, c0;
  batch_bases(z, a0, b0, c0);
  const uint m0 = gl_WorkGroupID.x * TM;
  const uint n0 = (gl_WorkGroupID.y * LANES + lane) * TN;

  // Rows past M and columns past N re-read the last valid one instead of branching inside the
  // k loop; their results are never stored.
  // Scalar A path: this lane fetches rows r * LANES + lane of the block.
  uint arow[A_ROWS];
  [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
    const uint m = min(m0 + r * LANES + lane, p.M - 1u);
    arow[r] = TRANS_A ? a0 + m : a0 + m * p.lda;
  }
  // Transposed vec4 A path: the 4 x TM slice of A for four k is TM vec4s along M; this lane
  // fetches vec4 number r * LANES + lane, i.e. k offset q and column group j below.
  uint atcol[A_ROWS], atq[A_ROWS];
  [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
    const uint idx = r * LANES + lane;
    atq[r] = idx / (TM / 4u);
    atcol[r] = a0 + min(m0 + 4u * (idx % (TM / 4u)), p.M - min(p.M, 4u));
  }
  uint bcol[TN];
  [[unroll]] for (uint j = 0; j < TN; ++j) {
    const uint n = min(n0 + j, p.N - 1u);
    bcol[j] = TRANS_B ? b0 + n * p.ldb : b0 + n;
  }
  const uint a_step = TRANS_A ? p.lda : 1u;  // floats from k to k + 1
  const uint b_step = TRANS_B ? 1u : p.ldb;

  float acc[TM][TN];
  [[unroll]] for (uint i = 0; i < TM; ++i)
    [[unroll]] for (uint j = 0; j < TN; ++j) acc[i][j] = 0.0;
  float row_sum[TM];  // EPILOGUE_ROW_SUMS: every lane holds the same sums (A is shared)
  [[unroll]] for (uint i = 0; i < TM; ++i) row_sum[i] = 0.0;

  // Four k per iteration so loads along k can be vec4. One loop body only (llvmpipe compiles
  // this unrolled block for seconds, so there is no separate remainder loop): when K is not a
  // multiple of 4, the last iteration zeroes A for k >= K (vec4 loads along k are only used
  // when K % 4 == 0) and reads B at a clamped, valid k.
  for (uint k = 0; k < p.K; k += 4u) {
    float av[4][TM];
    float bv[4][TN];
    if (VEC_A && !TRANS_A) {
      [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
        const vec4 v = load_a4((arow[r] + k) >> 2);
        [[unroll]] for (uint l = 0; l < LANES; ++l)
          [[unroll]] for (uint kk = 0; kk < 4u; ++kk) av[kk][r * LANES + l] = subgroupShuffle(v[kk], l);
      }
    } else if (VEC_A && TRANS_A) {
      [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
        const vec4 v = load_a4((atcol[r] + min(k + atq[r], p.K - 1u) * p.lda) >> 2);
#ifdef FEW_BLOCKS
        const vec4 vk = mix(vec4(0.0), v, bvec4(k + atq[r] < p.K));  // this lane's k is atq[r]
        [[unroll]] for (uint l = 0; l < LANES; ++l) {
          const uint idx = r * LANES + l, q = idx / (TM / 4u), j = idx % (TM / 4u);
          [[unroll]] for (uint c = 0; c < 4u; ++c) av[q][4u * j + c] = subgroupShuffle(vk[c], l);
        }
#else
        [[unroll]] for (uint l = 0; l < LANES; ++l) {
          const uint idx = r * LANES + l, q = idx / (TM / 4u), j = idx % (TM / 4u);
          [[unroll]] for (uint c = 0; c < 4u; ++c)
            av[q][4u * j + c] = k + q < p.K ? subgroupShuffle(v[c], l) : 0.0;
        }
#endif
      }
    } else {
      [[unroll]] for (uint kk = 0; kk < 4u; ++kk) {
        const uint kc = min(k + kk, p.K - 1u);
        [[unroll]] for (uint r = 0; r < A_ROWS; ++r) {
          const float v = load_a1(arow[r] + kc * a_step);
#ifdef FEW_BLOCKS
          const float vk = mix(0.0, v, k + kk < p.K);
          [[unroll]] for (uint l = 0; l < LANES; ++l) av[kk][r * LANES + l] = subgroupShuffle(vk, l);
#else
          [[unroll]] for (uint l = 0; l < LANES; ++l)
            av[kk][r * LANES + l] = k + kk < p.K ? subgroupShuffle(v, l) : 0.0;
#endif
        }
      }
    }
    if (VEC_B && TRANS_B) {
      [[unroll]] for (uint j = 0; j < TN; ++j) {
        const vec4 v = load_b4((bcol[j] + k) >> 2);
        [[unroll]] for (uint kk = 0; kk < 4u; ++kk) bv[kk][j] = v[kk];
      }
    } else if (VEC_B && !TRANS_B) {
      [[unroll]] for (uint kk = 0; kk < 4u; ++kk) {
        const uint kc = min(k + kk, p.K - 1u);
        [[unroll]] for (uint j = 0; j < TN; j += 4u) {
          const vec4 v = load_b4((b0 + kc * p.ldb + min(n0 + j, p.N - min(p.N, 4u))) >> 2);
          [[unroll]] for (uint c = 0; c < 4u; ++c) bv[kk][j + c] = v[c];
        }
      }
    } else {
      [[unroll]] for (uint kk = 0; kk < 4u; ++kk) {
        const uint kc = min(k + kk, p.K - 1u);
        [[unroll]] for (uint j = 0; j < TN; ++j) bv[kk][j] = load_b1(bcol[j] + kc * b_step);
      }
    }
    // Each accumulator takes its four products in a row. llvmpipe runs a loop under an execution
    // mask, so each iteration ends with a masked write of every accumulator (load the old value
    // and the mask, blend, store); with k innermost an accumulator past the registers is loaded
    // and stored once per iteration, not once per k (BENCHMARKS.md, "the loop mask and the
    // accumulators").
    [[unroll]] for (uint i = 0; i < TM; ++i)
      [[unroll]] for (uint j = 0; j < TN; ++j)
        [[unroll]] for (uint kk = 0; kk < 4u; ++kk) acc[i][j] = fma(av[kk][i], bv[kk][j], acc[i][j]);
    // A values past K are zero in every load path, so they add nothing here.
    if (EPILOGUE == EPILOGUE_ROW_SUMS)
      [[unroll]] for (uint i = 0; i < TM; ++i) row_sum[i] += (av[0][i] + av[1][i]) + (av[2][i] + av[3][i]);
  }
  if (EPILOGUE == EPILOGUE_ROW_SUMS && gl_WorkGroupID.y == 0u) {  // one column block adds the sums
    [[unroll]] for (uint i = 0; i < TM; ++i)
      if (i % LANES == lane && m0 + i < p.M) aux[p.aux_base + m0 + i] += row_sum[i];
  }

#ifdef FEW_BLOCKS
  store_rolled(c0, m0, n0, acc);
#else
  // The bias of this lane's columns, read once for all TM rows (clamped: the columns past N are
  // never stored).
  vec4 bias_cols[(TN + 3u) / 4u];
  if (WIDE_STORES && TN % 4u == 0u && HAS_BIAS && (p.flags & 4u) != 0u) {
    [[unroll]] for (uint j = 0; j < TN; j += 4u) {
      const uint bi = p.bias_base + min(n0 + j, p.N - 4u);
      bias_cols[j / 4u] = vec4(bias[bi], bias[bi + 1u], bias[bi + 2u], bias[bi + 3u]);
    }
  }
  [[unroll]] for (uint i = 0; i < TM; ++i) {
    const uint m = m0 + i;
    if (WIDE_STORES && TN % 4u == 0u) {
      [[unroll]] for (uint j = 0; j < TN; j += 4u) {
        const uint n = n0 + j, ci = c0 + m * p.ldc + n;
        if (m >= p.M || n >= p.N) continue;
        vec4 r = p.alpha * vec4(acc[i][j], acc[i][j + 1u], acc[i][j + 2u], acc[i][j + 3u]);
        if (READS_C && p.beta != 0.0) r += p.beta * vec4(c[ci], c[ci + 1u], c[ci + 2u], c[ci + 3u]);
        if (HAS_BIAS && (p.flags & 4u) != 0u) r += bias_cols[j / 4u];
        const uint xq = (ci - p.c_base + p.aux_base) >> 2;
        if (EPILOGUE == EPILOGUE_GELU || EPILOGUE == EPILOGUE_GELU_ONLY) {
          if (EPILOGUE == EPILOGUE_GELU) aux8[xq] = pack4(r);
          r = vec4(gelu(r.x), gelu(r.y), gelu(r.z), gelu(r.w));
        } else if (EPILOGUE == EPILOGUE_ADD) {
          r += unpack4(aux8[xq]);
        } else if (EPILOGUE == EPILOGUE_GELU_GRAD) {
          const vec4 x = unpack4(aux8[xq]);
          r *= vec4(gelu_grad(x.x), gelu_grad(x.y), gelu_grad(x.z), gelu_grad(x.w));
        }
        c8[ci >> 2] = pack4(r);
      }
    } else {
      [[unroll]] for (uint j = 0; j < TN; ++j) {
        const uint n = n0 + j;
        if (m < p.M && n < p.N) store_result(c0 + m * p.ldc + n, n, acc[i][j]);
      }
    }
  }
#endif
}

void main() {
  const uint first = gl_WorkGroupID.z * BATCH_PER_GROUP;
  const uint last = min(first + BATCH_PER_GROUP, p.batch);
  for (uint z = first; z < last; ++z) block(z);  // z is uniform: no lane leaves the loop alone
}
