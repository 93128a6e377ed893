#version 450
// LayerNorm forward over the last dimension (PyTorch nn.LayerNorm, biased variance):
//   mean = sum(x) / D,  var = sum((x - mean)^2) / D,  rstd = 1 / sqrt(var + eps)
//   out = (x - mean) * rstd * gamma + beta
// One subgroup per row (WORKGROUP_SIZE / gl_SubgroupSize rows per workgroup): the row sums are
// subgroupAdd alone, with no shared memory and no barriers, which keeps lavapipe's per-workgroup
// cost low and is the usual warp-per-row layout on GPUs. VEC (constant_id 1) floats per access:
// 4 (vec4, needs D % 4 == 0; a quarter of the gathers on lavapipe) or 1 (any D; the .yzw of each
// load are zero). The variance is two-pass (subtract the mean first) so rows with a large mean do
// not lose their variance to cancellation, as E[x^2] - E[x]^2 would in fp32.
// mean and rstd are saved for the backward pass.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(constant_id = 1) const uint VEC = 1;
layout(constant_id = 2) const uint CACHED = 0;
// The cache holds the whole row (CACHED * gl_SubgroupSize >= D / VEC), so the loops over the
// columns past it are left out: llvmpipe runs a loop body once even when no lane enters it, and
// an `if` does not branch there, so a loop that does not iterate still costs its masked loads.
// The launcher promises it only where the subgroup is the size the device reports (CPU drivers);
// a GPU may run smaller subgroups than it reports.
layout(constant_id = 3) const bool WHOLE_ROW = false;

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
layout(push_constant) uniform Push { uint M; uint D; float eps; } p;

vec4 load_in(uint i) { return VEC == 4u ? in4[i] : vec4(in_[i], 0.0, 0.0, 0.0); }
void store_out(uint i, uint c, vec4 x, float mean, float rstd) {
  if (VEC == 4u) out4[i] = (x - mean) * rstd * gamma4[c] + beta4[c];
  else out_[i] = (x.x - mean) * rstd * gamma[c] + beta[c];
}

void main() {
  uint row = linear_group_id() * (WORKGROUP_SIZE / gl_SubgroupSize) + gl_SubgroupID;
  if (row >= p.M) return;  // uniform over the subgroup, so the subgroup sums below stay complete
  uint tid = gl_SubgroupInvocationID;
  uint n = p.D / VEC;  // accesses per row
  uint base = row * n;

  // The row is read once into xs (CACHED accesses per lane: the launcher makes that cover the row
  // when it fits, CACHED = 0 otherwise); columns beyond the cache are read again in each pass.
  vec4 xs[CACHED > 0u ? CACHED : 1u];
  vec4 s = vec4(0.0);
  for (uint i = 0u; i < CACHED; ++i) {
    uint c = tid + i * gl_SubgroupSize;
    xs[i] = c < n ? load_in(base + c) : vec4(0.0);
    s += xs[i];
  }
  if (!WHOLE_ROW)
    for (uint c = tid + CACHED * gl_SubgroupSize; c < n; c += gl_SubgroupSize) s += load_in(base + c);
  float mean = subgroupAdd(dot(s, vec4(1.0))) / float(p.D);

  // Zero-padded components of scalar loads and columns past the row must not add (0 - mean)^2 to
  // the variance. (A spec-constant select between two vec4 constants here read as the scalar mask
  // on lavapipe.)
  vec4 q = vec4(0.0);
  for (uint i = 0u; i < CACHED; ++i) {
    vec4 d = xs[i] - mean;
    if (VEC != 4u) d = vec4(d.x, 0.0, 0.0, 0.0);
    if (tid + i * gl_SubgroupSize >= n) d = vec4(0.0);
    q += d * d;
  }
  if (!WHOLE_ROW) {
    for (uint c = tid + CACHED * gl_SubgroupSize; c < n; c += gl_SubgroupSize) {
      vec4 d = load_in(base + c) - mean;
      if (VEC != 4u) d = vec4(d.x, 0.0, 0.0, 0.0);
      q += d * d;
    }
  }
  float rstd = inversesqrt(subgroupAdd(dot(q, vec4(1.0))) / float(p.D) + p.eps);

  for (uint i = 0u; i < CACHED; ++i) {
    uint c = tid + i * gl_SubgroupSize;
    if (c < n) store_out(base + c, c, xs[i], mean, rstd);
  }
  if (!WHOLE_ROW)
    for (uint c = tid + CACHED * gl_SubgroupSize; c < n; c += gl_SubgroupSize) store_out(base + c, c, load_in(base + c), mean, rstd);
  if (tid == 0u) {  // the subgroup is whole (row is uniform); subgroupElect is a loop on llvmpipe
    mean_[row] = mean;
    rstd_[row] = rstd;
  }
}
