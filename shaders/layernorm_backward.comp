#version 450
// LayerNorm backward (accumulates). With xhat = (x - mean) * rstd and g = dout * gamma:
//   din    += rstd * (g - mean_D(g) - xhat * mean_D(g * xhat))        (per row)
//   dgamma += sum_rows dout * xhat,   dbeta += sum_rows dout           (per column)
// (derivation: PyTorch's native_layer_norm_backward; llm.c layernorm_backward).
// PASS (constant_id 1) picks the kernel:
//   0: one subgroup per ROWS consecutive rows (constant_id 5; WORKGROUP_SIZE / gl_SubgroupSize
//      subgroups per workgroup) computes din with one subgroupAdd of (sum g, sum g * xhat) per
//      row: no shared memory, no barriers. When the row fits the lanes' registers (CACHED > 0,
//      constant_id 4) it also sums dout * xhat and dout over its rows per column and writes them
//      as one partial row (binding 8: (rows / ROWS, 2, D), dgamma's then dbeta's), so that the
//      parameter gradients need no second pass over dout and the input;
//   2: adds the partial rows' column sums to dgamma and dbeta (push M = the partial rows);
//   1: (rows that do not fit the registers) computes dgamma and dbeta from dout, the input, mean
//      and rstd directly.
//   Passes 1 and 2: one workgroup per TILE_N column groups (constant_id 2); its WORKGROUP_SIZE /
//   TILE_N row lanes each walk a strided subset of the rows, then the lanes' sums are added in a
//   fixed order: deterministic, no float atomics.
// VEC (constant_id 3) columns per access: 4 reads vec4 (needs D % 4 == 0, fewer gathers on
// lavapipe), or 1; scalar loads come back as vec4(x, 0, 0, 0), and a zero dout component
// contributes nothing to any sum.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "wide.glsl"

layout(constant_id = 1) const uint PASS = 0;
layout(constant_id = 2) const uint TILE_N = 32;
layout(constant_id = 3) const uint VEC = 1;
// Pass 0: accesses per lane kept in registers, covering the whole row, or 0 (then the row is read
// again in each loop); the uncached loops are compiled only for CACHED = 0 (layernorm.comp says why).
layout(constant_id = 4) const uint CACHED = 0;
layout(constant_id = 5) const uint ROWS = 1;    // pass 0: rows per subgroup
// VEC = 4 accesses of din, the input, dout and the partial rows as two 64-bit components
// (wide.glsl); set where shaderInt64 is on and those views are 16-byte aligned.
layout(constant_id = 6) const bool WIDE = false;

layout(set = 0, binding = 0) buffer DIn { float din[]; };               // (M, D)
layout(set = 0, binding = 1) buffer DGamma { float dgamma[]; };         // (D)
layout(set = 0, binding = 2) buffer DBeta { float dbeta[]; };           // (D)
layout(set = 0, binding = 3) readonly buffer Mean { float mean_[]; };   // (M)
layout(set = 0, binding = 4) readonly buffer Rstd { float rstd_[]; };   // (M)
layout(set = 0, binding = 5) readonly buffer In { float in_[]; };       // (M, D)
layout(set = 0, binding = 6) readonly buffer DOut { float dout[]; };    // (M, D)
layout(set = 0, binding = 7) readonly buffer Gamma { float gamma[]; };  // (D)
layout(set = 0, binding = 0) buffer DIn4 { vec4 din4[]; };              // (M, D / 4), the same memory
layout(set = 0, binding = 7) readonly buffer Gamma4 { vec4 gamma4[]; }; // (D / 4)
layout(set = 0, binding = 5) readonly buffer In4 { vec4 in4[]; };       // (M, D / 4), the same memory
layout(set = 0, binding = 6) readonly buffer DOut4 { vec4 dout4[]; };   // (M, D / 4), the same memory
layout(set = 0, binding = 8) buffer Partials { float part[]; };        // (rows / ROWS, 2, D)
layout(set = 0, binding = 8) buffer Partials4 { vec4 part4[]; };       // the same memory
layout(set = 0, binding = 0) buffer DIn8 { u64vec2 din8[]; };              // the same memory, 64-bit pairs
layout(set = 0, binding = 5) readonly buffer In8 { u64vec2 in8[]; };
layout(set = 0, binding = 6) readonly buffer DOut8 { u64vec2 dout8[]; };
layout(set = 0, binding = 8) buffer Partials8 { u64vec2 part8[]; };
layout(push_constant) uniform Push { uint M; uint D; } p;

// (row lanes, TILE_N) partials of dgamma and dbeta; the launcher keeps WORKGROUP_SIZE <= 256.
shared vec4 lane_dgamma[256];
shared vec4 lane_dbeta[256];

vec4 load_in(uint r, uint c) {
  const uint i = r * (p.D / 4u) + c;
  if (VEC == 4u) return WIDE ? unpack4(in8[i]) : in4[i];
  return vec4(in_[r * p.D + c], 0.0, 0.0, 0.0);
}
vec4 load_dout(uint r, uint c) {
  const uint i = r * (p.D / 4u) + c;
  if (VEC == 4u) return WIDE ? unpack4(dout8[i]) : dout4[i];
  return vec4(dout[r * p.D + c], 0.0, 0.0, 0.0);
}
vec4 load_gamma(uint c) { return VEC == 4u ? gamma4[c] : vec4(gamma[c], 0.0, 0.0, 0.0); }
// Partial row r's access c: c < D / VEC is dgamma's sums, D / VEC + c dbeta's.
vec4 load_part(uint r, uint c) {
  const uint i = r * 2u * (p.D / VEC) + c;
  if (VEC == 4u) return WIDE ? unpack4(part8[i]) : part4[i];
  return vec4(part[i], 0.0, 0.0, 0.0);
}
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

void rows_pass() {
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

void columns_pass() {
  uint tid = gl_LocalInvocationID.x;
  uint lanes = WORKGROUP_SIZE / TILE_N;
  uint cols = p.D / VEC;  // column groups
  uint col = linear_group_id() * TILE_N + tid % TILE_N;
  uint lane = tid / TILE_N;
  vec4 acc_g = vec4(0.0), acc_b = vec4(0.0);  // this lane's partial dgamma, dbeta
  if (col < cols) {
    for (uint r = lane; r < p.M; r += lanes) {
      if (PASS == 2u) {
        acc_g += load_part(r, col);
        acc_b += load_part(r, cols + col);
      } else {
        vec4 dy = load_dout(r, col);
        acc_g += dy * (load_in(r, col) - mean_[r]) * rstd_[r];
        acc_b += dy;
      }
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

void main() {
  if (PASS == 0u) rows_pass();
  else columns_pass();
}
