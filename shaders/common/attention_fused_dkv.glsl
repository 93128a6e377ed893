#version 450
// Fused attention backward, part 2 of 2 (see common/attention_fused.glsl): per key row j,
//   dV_j = sum_i P_ij dO_i,   dK_j = scale * sum_i P_ij (dO_i . v_j - delta_i) q_i,
// with P_ij recomputed from lse_i and delta_i from part 1 (attention_fused_dq). Writes the k and
// v parts of dqkv (overwrite).
// Compiled once per head width: shaders/variants.cmake defines HEAD_DIM (16u, 32u, 64u).
#extension GL_GOOGLE_include_directive : require
#include "attention_fused.glsl"

layout(set = 0, binding = 0) writeonly buffer Dqkv { vec4 dqkv_[]; };  // (B, N, 3D), k and v parts
layout(set = 0, binding = 1) readonly buffer Qkv { vec4 qkv_[]; };     // (B, N, 3D)
layout(set = 0, binding = 2) readonly buffer Dout { vec4 dout_[]; };   // (B, N, D)
layout(set = 0, binding = 3) readonly buffer Lse { float lse_[]; };    // (B, H, N)
layout(set = 0, binding = 4) readonly buffer Delta { float delta_[]; };  // (B, H, N)
layout(set = 0, binding = 0) writeonly buffer Dqkv8 { wide4 dqkv8[]; };  // the same memory, 64-bit pairs
layout(set = 0, binding = 1) readonly buffer Qkv8 { wide4 qkv8[]; };
layout(set = 0, binding = 2) readonly buffer Dout8 { wide4 dout8[]; };

void head(uint b, uint h, uint z, uint row_first, uint row_last) {
  const uint lane = gl_SubgroupInvocationID;
  for (uint j0 = row_first; j0 < row_last; j0 += LANES) {
    const uint j = min(j0 + lane, p.N - 1u);
    vec4 k[HV], v[HV], dk[HV], dv[HV];
    const uint krow = qkv_row(b, h, j, 1u), vrow = qkv_row(b, h, j, 2u);
    [[unroll]] for (uint c = 0; c < HV; ++c) {
      k[c] = LOAD4(qkv, krow + c);
      v[c] = LOAD4(qkv, vrow + c);
      dk[c] = vec4(0.0);
      dv[c] = vec4(0.0);
    }
    for (uint i0 = 0; i0 < p.N; i0 += LANES) {
      const uint i = min(i0 + lane, p.N - 1u);
      vec4 q[HV], dout[HV];
      const uint qrow = qkv_row(b, h, i, 0u), orow = out_row(b, h, i);
      [[unroll]] for (uint c = 0; c < HV; ++c) {
        q[c] = LOAD4(qkv, qrow + c) * p.scale;
        dout[c] = LOAD4(dout, orow + c);
      }
      const float lse = lse_[z * p.N + i], delta = delta_[z * p.N + i];
      [[unroll]] for (uint t = 0; t < LANES; ++t) {
        if (t < CHUNK_ROWS) {
          float s = 0.0, dp = 0.0;
          vec4 qt[HV], dt[HV];
          [[unroll]] for (uint c = 0; c < HV; ++c) {
            qt[c] = subgroupShuffle(q[c], t);
            dt[c] = subgroupShuffle(dout[c], t);
            s += dot(qt[c], k[c]);
            dp += dot(dt[c], v[c]);
          }
          const float prob = i0 + t < p.N ? exp(s - subgroupShuffle(lse, t)) : 0.0;
          const float ds = prob * (dp - subgroupShuffle(delta, t));
          [[unroll]] for (uint c = 0; c < HV; ++c) {
            dv[c] += prob * dt[c];
            dk[c] += ds * qt[c];
          }
        }
      }
    }
    if (j0 + lane < p.N) {
      [[unroll]] for (uint c = 0; c < HV; ++c) {
        STORE4(dqkv, krow + c, dk[c]);
        STORE4(dqkv, vrow + c, dv[c]);
      }
    }
  }
}

FOR_EACH_HEAD(head)
