#version 450
// Residual add: out = a + b (the "+ res" of each transformer block).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };  // (n)
layout(set = 0, binding = 1) readonly buffer A { float a[]; };        // (n)
layout(set = 0, binding = 2) readonly buffer B { float b[]; };        // (n)
layout(push_constant) uniform Push { uint n; } p;

void main() {
  uint i = global_index();
  if (i >= p.n) return;
  out_[i] = a[i] + b[i];
}
