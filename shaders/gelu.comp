#version 450
// GELU forward, exact (erf) form as in PyTorch's nn.GELU(approximate='none'): out = gelu(in)
// (common/gelu.glsl).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "gelu.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };  // (n)
layout(set = 0, binding = 1) readonly buffer In { float in_[]; };     // (n)
layout(push_constant) uniform Push { uint n; } p;

void main() {
  uint i = global_index();
  if (i >= p.n) return;
  out_[i] = gelu(in_[i]);
}
