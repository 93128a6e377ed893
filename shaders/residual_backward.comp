#version 450
// Gradient accumulation dst += src: the residual add's backward (d(a + b)/da = d(a + b)/db = 1,
// so the output gradient is added to both branches' gradients), and any other "+=" of gradients.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer Dst { float dst[]; };             // (n)
layout(set = 0, binding = 1) readonly buffer Src { float src[]; };    // (n)
layout(push_constant) uniform Push { uint n; } p;

void main() {
  uint i = global_index();
  if (i >= p.n) return;
  dst[i] += src[i];
}
