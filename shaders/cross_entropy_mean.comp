#version 450
// Mean of the per-row cross-entropy losses in one workgroup: each lane sums a strided slice, then a
// shared-memory tree; the order depends only on n and WORKGROUP_SIZE (a power of two), so the loss
// is reproducible bit for bit, unlike an atomic sum.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Loss { float loss[]; };       // (1)
layout(set = 0, binding = 1) readonly buffer Losses { float losses[]; };    // (B)
layout(push_constant) uniform Push { uint n; } p;

shared float s_acc[WORKGROUP_SIZE];

void main() {
  uint t = gl_LocalInvocationID.x;
  float acc = 0.0;
  for (uint i = t; i < p.n; i += WORKGROUP_SIZE) acc += losses[i];
  s_acc[t] = acc;
  barrier();
  for (uint h = WORKGROUP_SIZE / 2; h > 0; h >>= 1) {
    if (t < h) s_acc[t] += s_acc[t + h];
    barrier();
  }
  if (t == 0) loss[0] = s_acc[0] / float(p.n);
}
