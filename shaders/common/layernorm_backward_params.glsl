#version 450
// LayerNorm backward, dgamma and dbeta (the math and the shared bindings:
// common/layernorm_backward.glsl). Two variants (shaders/variants.cmake):
// layernorm_backward_params_partials (FROM_PARTIALS) adds up the partial rows that
// layernorm_backward_rows.glsl wrote (push M = the partial rows); layernorm_backward_params, for rows
// that do not fit the registers, computes the sums from dout, the input, mean and rstd directly.
// One workgroup per TILE_N column groups; its WORKGROUP_SIZE / TILE_N row lanes each walk a strided
// subset of the rows, then the lanes' sums are added in a fixed order: deterministic, no float
// atomics.
#extension GL_GOOGLE_include_directive : require
#include "layernorm_backward.glsl"

layout(constant_id = 2) const uint TILE_N = 32;

// (row lanes, TILE_N) partials of dgamma and dbeta; the launcher keeps WORKGROUP_SIZE <= 256.
shared vec4 lane_dgamma[256];
shared vec4 lane_dbeta[256];

#ifdef FROM_PARTIALS
// Partial row r's access c: c < D / VEC is dgamma's sums, D / VEC + c dbeta's.
vec4 load_part(uint r, uint c) {
  const uint i = r * 2u * (p.D / VEC) + c;
  if (VEC == 4u) return WIDE ? unpack4(part8[i]) : part4[i];
  return vec4(part[i], 0.0, 0.0, 0.0);
}
#endif

void main() {
  uint tid = gl_LocalInvocationID.x;
  uint lanes = WORKGROUP_SIZE / TILE_N;
  uint cols = p.D / VEC;  // column groups
  uint col = linear_group_id() * TILE_N + tid % TILE_N;
  uint lane = tid / TILE_N;
  vec4 acc_g = vec4(0.0), acc_b = vec4(0.0);  // this lane's partial dgamma, dbeta
  if (col < cols) {
    for (uint r = lane; r < p.M; r += lanes) {
#ifdef FROM_PARTIALS
      acc_g += load_part(r, col);
      acc_b += load_part(r, cols + col);
#else
      vec4 dy = load_dout(r, col);
      acc_g += dy * (load_in(r, col) - mean_[r]) * rstd_[r];
      acc_b += dy;
#endif
    }
  }
  lane_dgamma[tid] = acc_g;
  lane_dbeta[tid] = acc_b;
  memoryBarrierShared();
  barrier();
  if (lane == 0u && col < cols) {
    vec4 total_g = vec4(0.0), total_b = vec4(0.0);
    for (uint l = 0u; l < lanes; ++l) {
      total_g += lane_dgamma[l * TILE_N + tid];
      total_b += lane_dbeta[l * TILE_N + tid];
    }
    for (uint v = 0u; v < VEC; ++v) {
      dgamma[col * VEC + v] += total_g[v];
      dbeta[col * VEC + v] += total_b[v];
    }
  }
}

