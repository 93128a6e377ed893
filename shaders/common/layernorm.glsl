#version 450
// LayerNorm forward over the last dimension (PyTorch nn.LayerNorm, biased variance):
//   mean = sum(x) / D,  var = sum((x - mean)^2) / D,  rstd = 1 / sqrt(var + eps)
//   out = (x - mean) * rstd * gamma + beta
// One subgroup per block of ROWS consecutive rows (constant_id 3): the row sums are subgroupAdd
// alone, with no shared memory and no barriers, which keeps lavapipe's per-workgroup cost low and
// is the usual warp-per-row layout on GPUs. When the row fits the lanes' registers (CACHED > 0)
// the launcher gives a block several rows and gamma and beta are read once for all of them.
// VEC (constant_id 1) floats per access: 4 (vec4, needs D % 4 == 0; a quarter of the gathers on
// lavapipe) or 1 (any D; the .yzw of each load are zero). The variance is two-pass (subtract the
// mean first) so rows with a large mean do not lose their variance to cancellation, as
// E[x^2] - E[x]^2 would in fp32.
// mean and rstd are saved for the backward pass.
// The launcher sizes the workgroup, the grid and CACHED from the subgroup size it assumed
// (SUBGROUP, constant_id 5) and pins it where the device can; a device that cannot may run
// another size (Intel reports 32 and may run 8 or 16). So the shader reads only the size that
// runs: a workgroup's WORKGROUP_SIZE / SUBGROUP blocks go round its gl_NumSubgroups subgroups,
// lanes stride by that size, and the cached form is used only when that size covers the row as
// the launcher planned (else the uncached loops). At the assumed size each subgroup takes one
// block; where the pin holds (PINNED) the size is a constant and only one form is compiled.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "wide.glsl"

layout(constant_id = 1) const uint VEC = 1;
// Accesses per lane kept in registers: the launcher makes them cover the whole row
// (CACHED * SUBGROUP >= D / VEC) or sets 0, and then every pass reads the row again. The loops
// of the uncached form are compiled only for CACHED = 0 or where the size that runs is not known
// (PINNED false): on llvmpipe an `if` does not branch, so loops that merely do not iterate would
// still cost their masked loads.
layout(constant_id = 2) const uint CACHED = 0;
layout(constant_id = 3) const uint ROWS = 1;  // rows per block
layout(constant_id = 5) const uint SUBGROUP = 8;  // the subgroup size the launcher assumed
// The device honours the launcher's pin of SUBGROUP with full subgroups: the size that runs is
// known when the pipeline is compiled (and the loops of the other form are not compiled in).
layout(constant_id = 6) const bool PINNED = false;
// VEC = 4 accesses of the input and output as two 64-bit components (wide.glsl: half the per-lane
// work on llvmpipe); the launcher sets it where shaderInt64 is on and both views are 16-byte aligned.
#ifdef WIDE_MODULE
layout(constant_id = 4) const bool WIDE = false;
#else
const bool WIDE = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };   // (M, D)
layout(set = 0, binding = 1) writeonly buffer Mean { float mean_[]; }; // (M)
layout(set = 0, binding = 2) writeonly buffer Rstd { float rstd_[]; }; // (M)
layout(set = 0, binding = 3) readonly buffer In { float in_[]; };      // (M, D)
layout(set = 0, binding = 4) readonly buffer Gamma { float gamma[]; }; // (D)
layout(set = 0, binding = 5) readonly buffer Beta { float beta[]; };   // (D)
layout(set = 0, binding = 0) writeonly buffer Out4 { vec4 out4[]; };  // (M, D / 4), the same memory
layout(set = 0, binding = 3) readonly buffer In4 { vec4 in4[]; };       // (M, D / 4)
layout(set = 0, binding = 4) readonly buffer Gamma4 { vec4 gamma4[]; }; // (D / 4)
layout(set = 0, binding = 5) readonly buffer Beta4 { vec4 beta4[]; };   // (D / 4)
layout(set = 0, binding = 0) writeonly buffer Out8 { wide4 out8[]; };  // (M, D / 4), the same memory
layout(set = 0, binding = 3) readonly buffer In8 { wide4 in8[]; };       // (M, D / 4)
layout(push_constant) uniform Push { uint M; uint D; float eps; } p;

vec4 load_in(uint i) {
  if (VEC == 4u) return WIDE ? unpack4(in8[i]) : in4[i];
  return vec4(in_[i], 0.0, 0.0, 0.0);
}
vec4 load_gamma(uint c) { return VEC == 4u ? gamma4[c] : vec4(gamma[c], 0.0, 0.0, 0.0); }
vec4 load_beta(uint c) { return VEC == 4u ? beta4[c] : vec4(beta[c], 0.0, 0.0, 0.0); }
void store_out(uint i, vec4 x, float mean, float rstd, vec4 g, vec4 b) {
  if (VEC != 4u) out_[i] = (x.x - mean) * rstd * g.x + b.x;
  else if (WIDE) out8[i] = pack4((x - mean) * rstd * g + b);
  else out4[i] = (x - mean) * rstd * g + b;
}

// Gamma and beta of this lane's cached columns, read once for the block's ROWS rows.
vec4 gs[CACHED > 0u ? CACHED : 1u], bs[CACHED > 0u ? CACHED : 1u];

// Row `row`, this lane's accesses: tid, tid + lanes, ... (cached: the first CACHED of them, which
// cover the row).
void normalize_row(uint row, uint tid, uint lanes, bool cached, uint n) {
  uint base = row * n;
  vec4 xs[CACHED > 0u ? CACHED : 1u];
  vec4 s = vec4(0.0);
  if (cached) {
    for (uint i = 0u; i < CACHED; ++i) {
      uint c = tid + i * lanes;
      xs[i] = c < n ? load_in(base + c) : vec4(0.0);
      s += xs[i];
    }
  } else {
    for (uint c = tid; c < n; c += lanes) s += load_in(base + c);
  }
  float mean = subgroupAdd(dot(s, vec4(1.0))) / float(p.D);

  // Zero-padded components of scalar loads and columns past the row must not add (0 - mean)^2 to
  // the variance. (A spec-constant select between two vec4 constants here read as the scalar mask
  // on lavapipe.)
  vec4 q = vec4(0.0);
  if (cached) {
    for (uint i = 0u; i < CACHED; ++i) {
      vec4 d = xs[i] - mean;
      if (VEC != 4u) d = vec4(d.x, 0.0, 0.0, 0.0);
      if (tid + i * lanes >= n) d = vec4(0.0);
      q += d * d;
    }
  } else {
    for (uint c = tid; c < n; c += lanes) {
      vec4 d = load_in(base + c) - mean;
      if (VEC != 4u) d = vec4(d.x, 0.0, 0.0, 0.0);
      q += d * d;
    }
  }
  float rstd = inversesqrt(subgroupAdd(dot(q, vec4(1.0))) / float(p.D) + p.eps);

  if (cached) {
    for (uint i = 0u; i < CACHED; ++i) {
      uint c = tid + i * lanes;
      if (c < n) store_out(base + c, xs[i], mean, rstd, gs[i], bs[i]);
    }
  } else {
    for (uint c = tid; c < n; c += lanes)
      store_out(base + c, load_in(base + c), mean, rstd, load_gamma(c), load_beta(c));
  }
  if (tid == 0u) {  // rows are uniform over the subgroup; subgroupElect is a loop on llvmpipe
    mean_[row] = mean;
    rstd_[row] = rstd;
  }
}

void main() {
  // A workgroup smaller than the device's subgroup is one partly filled subgroup.
  uint lanes = PINNED ? SUBGROUP : min(gl_SubgroupSize, WORKGROUP_SIZE);
  // CACHED * SUBGROUP accesses cover the row; fewer lanes would leave columns out.
  bool cached = CACHED > 0u && lanes >= SUBGROUP;
  uint tid = gl_SubgroupInvocationID;
  uint n = p.D / VEC;  // accesses per row
  uint blocks = WORKGROUP_SIZE / SUBGROUP, first_block = linear_group_id() * blocks;
  // Uniform over the subgroup, so the subgroup sums stay complete.
  for (uint block = first_block + gl_SubgroupID; block < first_block + blocks; block += gl_NumSubgroups) {
    uint first = block * ROWS;
    if (first >= p.M) return;
    if (cached) {
      for (uint i = 0u; i < CACHED; ++i) {
        uint c = min(tid + i * lanes, n - 1u);
        gs[i] = load_gamma(c);
        bs[i] = load_beta(c);
      }
    }
    for (uint row = first; row < min(first + ROWS, p.M); ++row) normalize_row(row, tid, lanes, cached, n);
  }
}
