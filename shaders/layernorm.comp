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

void main() {
  uint row = linear_group_id() * (WORKGROUP_SIZE / gl_SubgroupSize) + gl_SubgroupID;
  if (row >= p.M) return;  // uniform over the subgroup, so the subgroup sums below stay complete
  uint tid = gl_SubgroupInvocationID;
  uint n = p.D / VEC;  // accesses per row
  uint base = row * n;

  vec4 s = vec4(0.0);
  for (uint c = tid; c < n; c += gl_SubgroupSize) s += load_in(base + c);
  float mean = subgroupAdd(dot(s, vec4(1.0))) / float(p.D);

  vec4 q = vec4(0.0);
  for (uint c = tid; c < n; c += gl_SubgroupSize) {
    vec4 d = load_in(base + c) - mean;
    // Zero-padded components of scalar loads must not add (0 - mean)^2 to the variance. (A
    // spec-constant select between two vec4 constants here read as the scalar mask on lavapipe.)
    if (VEC != 4u) d = vec4(d.x, 0.0, 0.0, 0.0);
    q += d * d;
  }
  float rstd = inversesqrt(subgroupAdd(dot(q, vec4(1.0))) / float(p.D) + p.eps);

  for (uint c = tid; c < n; c += gl_SubgroupSize) {
    if (VEC == 4u) {
      out4[base + c] = (in4[base + c] - mean) * rstd * gamma4[c] + beta4[c];
    } else {
      out_[base + c] = (in_[base + c] - mean) * rstd * gamma[c] + beta[c];
    }
  }
  if (subgroupElect()) {
    mean_[row] = mean;
    rstd_[row] = rstd;
  }
}
