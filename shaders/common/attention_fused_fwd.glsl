#version 450
// Fused attention forward (see common/attention_fused.glsl): per query row i of head (b, h),
//   o_i = sum_j softmax_j(scale * q_i . k_j) v_j,   lse_i = log sum_j exp(scale * q_i . k_j).
// Keys arrive in chunks of 8; per chunk the running max m and sum l are rescaled once.
// Compiled once per head width: shaders/variants.cmake defines HEAD_DIM (16u, 32u, 64u).
#extension GL_GOOGLE_include_directive : require
#include "attention_fused.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { vec4 out_[]; };  // (B, N, D)
layout(set = 0, binding = 1) writeonly buffer Lse { float lse_[]; };  // (B, H, N)
layout(set = 0, binding = 2) readonly buffer Qkv { vec4 qkv_[]; };    // (B, N, 3D)
layout(set = 0, binding = 0) writeonly buffer Out8 { wide4 out8[]; };  // the same memory, 64-bit pairs
layout(set = 0, binding = 2) readonly buffer Qkv8 { wide4 qkv8[]; };

void head(uint b, uint h, uint z, uint row_first, uint row_last) {
  const uint lane = gl_SubgroupInvocationID;
  for (uint i0 = row_first; i0 < row_last; i0 += LANES) {
    const uint i = min(i0 + lane, p.N - 1u);  // lanes past N repeat the last row, never stored
    vec4 q[HV], o[HV];
    const uint qrow = qkv_row(b, h, i, 0u);
    [[unroll]] for (uint c = 0; c < HV; ++c) {
      q[c] = LOAD4(qkv, qrow + c) * p.scale;
      o[c] = vec4(0.0);
    }
    float m = kMasked, l = 0.0;
    for (uint j0 = 0; j0 < p.N; j0 += LANES) {
      const uint j = min(j0 + lane, p.N - 1u);
      vec4 k[HV], v[HV];
      const uint krow = qkv_row(b, h, j, 1u), vrow = qkv_row(b, h, j, 2u);
      [[unroll]] for (uint c = 0; c < HV; ++c) {
        k[c] = LOAD4(qkv, krow + c);
        v[c] = LOAD4(qkv, vrow + c);
      }
      float s[LANES];
      float chunk_max = kMasked;
      [[unroll]] for (uint t = 0; t < LANES; ++t) {
        if (t < CHUNK_ROWS) {
          float acc = 0.0;
          [[unroll]] for (uint c = 0; c < HV; ++c) acc += dot(q[c], subgroupShuffle(k[c], t));
          s[t] = j0 + t < p.N ? acc : kMasked;
          chunk_max = max(chunk_max, s[t]);
        }
      }
      const float m_new = max(m, chunk_max);
      const float rescale = exp(m - m_new);
      l *= rescale;
      [[unroll]] for (uint c = 0; c < HV; ++c) o[c] *= rescale;
      [[unroll]] for (uint t = 0; t < LANES; ++t) {
        if (t < CHUNK_ROWS) {
          const float pt = exp(s[t] - m_new);
          l += pt;
          [[unroll]] for (uint c = 0; c < HV; ++c) o[c] += pt * subgroupShuffle(v[c], t);
        }
      }
      m = m_new;
    }
    if (i0 + lane < p.N) {
      const float inv_l = 1.0 / l;
      const uint orow = out_row(b, h, i);
      [[unroll]] for (uint c = 0; c < HV; ++c) STORE4(out, orow + c, o[c] * inv_l);
      lse_[z * p.N + i] = m + log(l);
    }
  }
}

FOR_EACH_HEAD(head)
