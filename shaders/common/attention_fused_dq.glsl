#version 450
// Fused attention backward, part 1 of 2 (see common/attention_fused.glsl): per query row i,
//   delta_i = dO_i . O_i                      (= sum_j P_ij dP_ij, the softmax backward's row sum)
//   dQ_i    = scale * sum_j P_ij (dO_i . v_j - delta_i) k_j,   P_ij = exp(scale q_i . k_j - lse_i).
// Writes the q part of dqkv (overwrite) and delta for part 2 (attention_fused_dkv).
// Compiled once per head width: shaders/variants.cmake defines HEAD_DIM (16u, 32u, 64u).
#extension GL_GOOGLE_include_directive : require
#include "attention_fused.glsl"

layout(set = 0, binding = 0) writeonly buffer Dqkv { vec4 dqkv_[]; };  // (B, N, 3D), q part
layout(set = 0, binding = 1) writeonly buffer Delta { float delta_[]; };  // (B, H, N)
layout(set = 0, binding = 2) readonly buffer Qkv { vec4 qkv_[]; };       // (B, N, 3D)
layout(set = 0, binding = 3) readonly buffer Out { vec4 out_[]; };       // (B, N, D) forward output
layout(set = 0, binding = 4) readonly buffer Dout { vec4 dout_[]; };     // (B, N, D)
layout(set = 0, binding = 5) readonly buffer Lse { float lse_[]; };      // (B, H, N)
layout(set = 0, binding = 0) writeonly buffer Dqkv8 { wide4 dqkv8[]; };  // the same memory, 64-bit pairs
layout(set = 0, binding = 2) readonly buffer Qkv8 { wide4 qkv8[]; };
layout(set = 0, binding = 3) readonly buffer Out8 { wide4 out8[]; };
layout(set = 0, binding = 4) readonly buffer Dout8 { wide4 dout8[]; };

void head(uint b, uint h, uint z, uint row_first, uint row_last) {
  const uint lane = gl_SubgroupInvocationID;
  for (uint i0 = row_first; i0 < row_last; i0 += LANES) {
    const uint i = min(i0 + lane, p.N - 1u);
    vec4 q[HV], dout[HV], dq[HV];
    const uint qrow = qkv_row(b, h, i, 0u), orow = out_row(b, h, i);
    float delta = 0.0;
    [[unroll]] for (uint c = 0; c < HV; ++c) {
      q[c] = LOAD4(qkv, qrow + c) * p.scale;
      dout[c] = LOAD4(dout, orow + c);
      delta += dot(dout[c], LOAD4(out, orow + c));
      dq[c] = vec4(0.0);
    }
    const float lse = lse_[z * p.N + i];
    for (uint j0 = 0; j0 < p.N; j0 += LANES) {
      const uint j = min(j0 + lane, p.N - 1u);
      vec4 k[HV], v[HV];
      const uint krow = qkv_row(b, h, j, 1u), vrow = qkv_row(b, h, j, 2u);
      [[unroll]] for (uint c = 0; c < HV; ++c) {
        k[c] = LOAD4(qkv, krow + c);
        v[c] = LOAD4(qkv, vrow + c);
      }
      [[unroll]] for (uint t = 0; t < LANES; ++t) {
        if (t < CHUNK_ROWS) {
          float s = 0.0, dp = 0.0;
          vec4 kt[HV];
          [[unroll]] for (uint c = 0; c < HV; ++c) {
            kt[c] = subgroupShuffle(k[c], t);
            s += dot(q[c], kt[c]);
            dp += dot(dout[c], subgroupShuffle(v[c], t));
          }
          const float prob = j0 + t < p.N ? exp(s - lse) : 0.0;
          const float ds = prob * (dp - delta);
          [[unroll]] for (uint c = 0; c < HV; ++c) dq[c] += ds * kt[c];
        }
      }
    }
    if (i0 + lane < p.N) {
      [[unroll]] for (uint c = 0; c < HV; ++c) STORE4(dqkv, qrow + c, dq[c] * p.scale);
      delta_[z * p.N + i] = delta;
    }
  }
}

FOR_EACH_HEAD(head)
