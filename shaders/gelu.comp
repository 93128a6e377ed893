#version 450
// GELU forward, exact (erf) form as in PyTorch's nn.GELU(approximate='none'):
//   out = 0.5 * x * (1 + erf(x / sqrt(2))).
// erf_approx: see common/erf.glsl.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "erf.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };  // (n)
layout(set = 0, binding = 1) readonly buffer In { float in_[]; };     // (n)
layout(push_constant) uniform Push { uint n; } p;

void main() {
  uint i = global_index();
  if (i >= p.n) return;
  float x = in_[i];
  out_[i] = 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}
