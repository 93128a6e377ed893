#version 450
// GELU backward (accumulates): din += dout * d/dx[0.5 x (1 + erf(x/sqrt2))]
//   = dout * (0.5 (1 + erf(x/sqrt2)) + x * exp(-x^2/2) / sqrt(2 pi)).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "gelu.glsl"

layout(set = 0, binding = 0) buffer DIn { float din[]; };                 // (n)
layout(set = 0, binding = 1) readonly buffer In { float in_[]; };         // (n) forward input
layout(set = 0, binding = 2) readonly buffer DOut { float dout[]; };      // (n)
layout(push_constant) uniform Push { uint n; } p;

void main() {
  uint i = global_index();
  if (i >= p.n) return;
  din[i] += dout[i] * gelu_grad(in_[i]);
}
