#version 450
// Gradient-norm pass 1: the sum of squares of one tile of WORKGROUP_SIZE * ITEMS consecutive floats
// per workgroup, written to partials[offset + group]. Lanes read coalesced strides, sum ITEMS
// squares serially in fp32, then a shared-memory tree (WORKGROUP_SIZE a power of two) in a fixed
// order, so the partials are reproducible bit for bit. See src/ops/grad_norm.h.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(constant_id = 1) const uint ITEMS = 16;

layout(set = 0, binding = 0) buffer Partials { float partials[]; };     // (partials)
layout(set = 0, binding = 1) readonly buffer Grads { float grads[]; };  // (n)
layout(push_constant) uniform Push {
  uint n;
  uint offset;  // this range's first partial
} p;

shared float s_acc[WORKGROUP_SIZE];

void main() {
  uint group = linear_group_id();
  uint tile = WORKGROUP_SIZE * ITEMS;
  if (group * tile >= p.n) return;  // padding groups of a 2D dispatch, uniform over the workgroup
  uint t = gl_LocalInvocationID.x;
  uint base = group * tile + t;
  float acc = 0.0;
  for (uint j = 0; j < ITEMS; ++j) {
    uint i = base + j * WORKGROUP_SIZE;
    if (i < p.n) {
      float g = grads[i];
      acc += g * g;
    }
  }
  s_acc[t] = acc;
  barrier();
  for (uint h = WORKGROUP_SIZE / 2; h > 0; h >>= 1) {
    if (t < h) s_acc[t] += s_acc[t + h];
    barrier();
  }
  if (t == 0) partials[p.offset + group] = s_acc[0];
}
