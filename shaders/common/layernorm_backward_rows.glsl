#version 450
// LayerNorm backward, din (the math and the shared bindings: common/layernorm_backward.glsl).
// One subgroup per ROWS consecutive rows (WORKGROUP_SIZE / gl_SubgroupSize subgroups per
// workgroup) computes din with one subgroupAdd of (sum g, sum g * xhat) per row: no shared memory,
// no barriers. When the row fits the lanes' registers (CACHED > 0) it also sums dout * xhat and
// dout over its rows per column and writes them as one partial row (binding 8), so that the
// parameter gradients (the layernorm_backward_params_partials variant) need no second pass over
// dout and the input.
#extension GL_GOOGLE_include_directive : require
#include "layernorm_backward.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

// Accesses per lane kept in registers, covering the whole row, or 0 (then the row is read again
// in each loop); the uncached loops are compiled only for CACHED = 0 (layernorm.glsl says why).
layout(constant_id = 2) const uint CACHED = 0;
layout(constant_id = 3) const uint ROWS = 1;  // rows per subgroup

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

void main() {
  uint block = linear_group_id() * (WORKGROUP_SIZE / gl_SubgroupSize) + gl_SubgroupID;  // the partial row
  uint first = block * ROWS;
  if (first >= p.M) return;  // uniform over the subgroup
  uint tid = gl_SubgroupInvocationID;
  uint n = p.D / VEC;  // accesses per row
  vec4 pg[CACHED > 0u ? CACHED : 1u], pb[CACHED > 0u ? CACHED : 1u];  // this lane's columns' sums
  vec4 gammas[CACHED > 0u ? CACHED : 1u];  // gamma of those columns, read once for all ROWS rows
  for (uint i = 0u; i < CACHED; ++i) {
    pg[i] = pb[i] = vec4(0.0);
    gammas[i] = load_gamma(min(tid + i * gl_SubgroupSize, n - 1u));
  }

  for (uint row = first; row < min(first + ROWS, p.M); ++row) {
    float mean = mean_[row], rstd = rstd_[row];
    // dout and xhat of the first CACHED accesses per lane stay in registers for the second loop
    // and the partial sums (the launcher makes that the whole row when it fits); columns beyond
    // are read again.
    vec4 dys[CACHED > 0u ? CACHED : 1u], xhats[CACHED > 0u ? CACHED : 1u];
    vec4 sg = vec4(0.0), sgx = vec4(0.0);  // sum g, sum g * xhat
    for (uint i = 0u; i < CACHED; ++i) {
      uint c = tid + i * gl_SubgroupSize;
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
    if (CACHED == 0u) {
      for (uint c = tid; c < n; c += gl_SubgroupSize) {
        vec4 g = load_dout(row, c) * load_gamma(c);
        vec4 xhat = (load_in(row, c) - mean) * rstd;
        sg += g;
        sgx += g * xhat;
      }
    }
    vec2 s = subgroupAdd(vec2(dot(sg, vec4(1.0)), dot(sgx, vec4(1.0)))) / float(p.D);

    for (uint i = 0u; i < CACHED; ++i) {
      uint c = tid + i * gl_SubgroupSize;
      if (c < n) add_din(row * n + c, rstd * (dys[i] * gammas[i] - s.x - xhats[i] * s.y));
    }
    if (CACHED == 0u) {
      for (uint c = tid; c < n; c += gl_SubgroupSize) {
        vec4 g = load_dout(row, c) * load_gamma(c);
        vec4 xhat = (load_in(row, c) - mean) * rstd;
        add_din(row * n + c, rstd * (g - s.x - xhat * s.y));
      }
    }
  }

  for (uint i = 0u; i < CACHED; ++i) {
    uint c = tid + i * gl_SubgroupSize;
    if (c < n) {
      store_part(block, c, pg[i]);
      store_part(block, n + c, pb[i]);
    }
  }
}
