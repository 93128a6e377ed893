#version 450
// LayerNorm backward, din (the math and the shared bindings: common/layernorm_backward.glsl).
// One subgroup per block of ROWS consecutive rows computes din with one subgroupAdd of
// (sum g, sum g * xhat) per row: no shared memory, no barriers. When the row fits the lanes'
// registers (CACHED > 0) it also sums dout * xhat and dout over its rows per column and writes
// them as one partial row per block (binding 8), so that the parameter gradients (the
// layernorm_backward_params_partials variant) need no second pass over dout and the input.
// Blocks, lanes and the cached form follow the subgroup size that runs, not the one the launcher
// assumed (SUBGROUP; common/layernorm.glsl says how); where fewer lanes run than CACHED was sized
// for, the partial row is summed by a pass over the block's columns instead.
#extension GL_GOOGLE_include_directive : require
#include "layernorm_backward.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// Accesses per lane kept in registers, covering the whole row, or 0 (then the row is read again
// in each loop); the uncached loops are compiled only for CACHED = 0 (layernorm.glsl says why).
layout(constant_id = 2) const uint CACHED = 0;
layout(constant_id = 3) const uint ROWS = 1;  // rows per block
layout(constant_id = 5) const uint SUBGROUP = 8;  // the subgroup size the launcher assumed
// The device honours the launcher's pin of SUBGROUP with full subgroups: the size that runs is
// known when the pipeline is compiled (and the loops of the other form are not compiled in).
layout(constant_id = 6) const bool PINNED = false;

vec4 load_gamma(uint c) { return VEC == 4u ? gamma4[c] : vec4(gamma[c], 0.0, 0.0, 0.0); }
// Partial row r's access c: c < D / VEC is dgamma's sums, D / VEC + c dbeta's.
void store_part(uint r, uint c, vec4 v) {
  const uint i = r * 2u * (p.D / VEC) + c;
  if (VEC != 4u) part[i] = v.x;
  else if (WIDE) part8[i] = pack4(v);
  else part4[i] = v;
}
void add_din(uint i, vec4 d) {
  if (VEC != 4u) din[i] += d.x;
  else if (WIDE) din8[i] = pack4(unpack4(din8[i]) + d);
  else din4[i] += d;
}

// This lane's cached columns' sums over the block's rows: dgamma's, dbeta's.
vec4 pg[CACHED > 0u ? CACHED : 1u], pb[CACHED > 0u ? CACHED : 1u];

// din of rows [first, last), this lane's accesses tid, tid + lanes, ...; cached: the first
// CACHED of them cover the row, and their columns' partial sums are added to pg and pb.
void rows_din(uint first, uint last, uint tid, uint lanes, bool cached, uint n) {
  vec4 gammas[CACHED > 0u ? CACHED : 1u];  // gamma of the cached columns, read once for all rows
  if (cached)
    for (uint i = 0u; i < CACHED; ++i) gammas[i] = load_gamma(min(tid + i * lanes, n - 1u));

  for (uint row = first; row < last; ++row) {
    float mean = mean_[row], rstd = rstd_[row];
    // dout and xhat of the cached accesses stay in registers for the second loop and the
    // partial sums.
    vec4 dys[CACHED > 0u ? CACHED : 1u], xhats[CACHED > 0u ? CACHED : 1u];
    vec4 sg = vec4(0.0), sgx = vec4(0.0);  // sum g, sum g * xhat
    if (cached) {
      for (uint i = 0u; i < CACHED; ++i) {
        uint c = tid + i * lanes;
        dys[i] = vec4(0.0);
        xhats[i] = vec4(0.0);
        if (c < n) {
          dys[i] = load_dout(row, c);
          xhats[i] = (load_in(row, c) - mean) * rstd;
        }
        vec4 g = dys[i] * gammas[i];
        sg += g;
        sgx += g * xhats[i];
        pg[i] += dys[i] * xhats[i];
        pb[i] += dys[i];
      }
    } else {
      for (uint c = tid; c < n; c += lanes) {
        vec4 g = load_dout(row, c) * load_gamma(c);
        vec4 xhat = (load_in(row, c) - mean) * rstd;
        sg += g;
        sgx += g * xhat;
      }
    }
    vec2 s = subgroupAdd(vec2(dot(sg, vec4(1.0)), dot(sgx, vec4(1.0)))) / float(p.D);

    if (cached) {
      for (uint i = 0u; i < CACHED; ++i) {
        uint c = tid + i * lanes;
        if (c < n) add_din(row * n + c, rstd * (dys[i] * gammas[i] - s.x - xhats[i] * s.y));
      }
    } else {
      for (uint c = tid; c < n; c += lanes) {
        vec4 g = load_dout(row, c) * load_gamma(c);
        vec4 xhat = (load_in(row, c) - mean) * rstd;
        add_din(row * n + c, rstd * (g - s.x - xhat * s.y));
      }
    }
  }
}

// The block's partial row where the lanes could not keep the row: per column, over the rows in
// the order the cached form adds them.
void partial_row_uncached(uint block, uint first, uint last, uint tid, uint lanes, uint n) {
  for (uint c = tid; c < n; c += lanes) {
    vec4 sg = vec4(0.0), sb = vec4(0.0);
    for (uint row = first; row < last; ++row) {
      vec4 dy = load_dout(row, c);
      sg += dy * ((load_in(row, c) - mean_[row]) * rstd_[row]);
      sb += dy;
    }
    store_part(block, c, sg);
    store_part(block, n + c, sb);
  }
}

void main() {
  // A workgroup smaller than the device's subgroup is one partly filled subgroup.
  uint lanes = PINNED ? SUBGROUP : min(gl_SubgroupSize, WORKGROUP_SIZE);
  bool cached = CACHED > 0u && lanes >= SUBGROUP;  // CACHED * SUBGROUP accesses cover the row
  uint tid = gl_SubgroupInvocationID;
  uint n = p.D / VEC;  // accesses per row
  uint blocks = WORKGROUP_SIZE / SUBGROUP, first_block = linear_group_id() * blocks;
  // Uniform over the subgroup. A block is one partial row.
  for (uint block = first_block + gl_SubgroupID; block < first_block + blocks; block += gl_NumSubgroups) {
    uint first = block * ROWS, last = min(first + ROWS, p.M);
    if (first >= p.M) return;
    for (uint i = 0u; i < CACHED; ++i) pg[i] = pb[i] = vec4(0.0);
    rows_din(first, last, tid, lanes, cached, n);
    if (cached) {
      for (uint i = 0u; i < CACHED; ++i) {
        uint c = tid + i * lanes;
        if (c < n) {
          store_part(block, c, pg[i]);
          store_part(block, n + c, pb[i]);
        }
      }
    } else if (CACHED > 0u) {
      partial_row_uncached(block, first, last, tid, lanes, n);
    }
  }
}
