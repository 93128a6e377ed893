#version 450
// Gradient-norm pass 1: the sum of squares of one tile per workgroup, written to
// partials[offset + group]. Lanes read coalesced strides, sum ITEMS squares serially in fp32,
// then a shared-memory tree (WORKGROUP_SIZE a power of two) in a fixed order, so the partials are
// reproducible bit for bit. See src/ops/grad_norm.h.
// GRAD_NORM_TEXEL (the grad_norm_texel variant, shaders/variants.cmake): the range's whole vec4s
// come through an RGBA32F uniform texel buffer, a tile being WORKGROUP_SIZE * ITEMS vec4s (on
// llvmpipe a texel fetch is a few vector loads with no branch, a storage-buffer read a loop over
// the lanes per float); the last n % 4 floats are read from the same range bound as a storage
// buffer, by group 0.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(constant_id = 1) const uint ITEMS = 16;

layout(set = 0, binding = 0) buffer Partials { float partials[]; };     // (partials)
#ifdef GRAD_NORM_TEXEL
layout(set = 0, binding = 1) uniform samplerBuffer grads4;               // (n / 4) vec4
layout(set = 0, binding = 2) readonly buffer Grads { float grads[]; };  // (n)
#else
layout(set = 0, binding = 1) readonly buffer Grads { float grads[]; };  // (n)
#endif
layout(push_constant) uniform Push {
  uint n;       // floats in the range
  uint offset;  // this range's first partial
} p;

shared float s_acc[WORKGROUP_SIZE];

void main() {
  uint group = linear_group_id();
  uint tile = WORKGROUP_SIZE * ITEMS;
  uint t = gl_LocalInvocationID.x;
  uint base = group * tile + t;
  float acc = 0.0;
#ifdef GRAD_NORM_TEXEL
  uint texels = p.n / 4u;
  if (group * tile >= max(texels, 1u)) return;  // padding groups of a 2D dispatch, uniform over the workgroup
  vec4 acc4 = vec4(0.0);
  for (uint j = 0; j < ITEMS; ++j) {
    uint i = base + j * WORKGROUP_SIZE;
    if (i < texels) {
      vec4 g = texelFetch(grads4, int(i));
      acc4 += g * g;
    }
  }
  acc = (acc4.x + acc4.y) + (acc4.z + acc4.w);
  if (group == 0u && t < p.n % 4u) {
    float g = grads[texels * 4u + t];
    acc += g * g;
  }
#else
  if (group * tile >= p.n) return;  // padding groups of a 2D dispatch, uniform over the workgroup
  for (uint j = 0; j < ITEMS; ++j) {
    uint i = base + j * WORKGROUP_SIZE;
    if (i < p.n) {
      float g = grads[i];
      acc += g * g;
    }
  }
#endif
  s_acc[t] = acc;
  barrier();
  for (uint h = WORKGROUP_SIZE / 2; h > 0; h >>= 1) {
    if (t < h) s_acc[t] += s_acc[t + h];
    barrier();
  }
  if (t == 0) partials[p.offset + group] = s_acc[0];
}
