#version 450
// Stochastic depth's branch gradient: out = scale[sample] * in, each sample's `per_sample`
// consecutive elements sharing one scale (see drop_path_add.comp for the chunk placement).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };    // (n)
layout(set = 0, binding = 1) readonly buffer In { float in_[]; };       // (n)
layout(set = 0, binding = 2) readonly buffer Scales { float scales[]; };  // (first_sample + samples)
layout(push_constant) uniform Push {
  uint n;
  uint per_sample;
  uint first_sample;
  uint first_in_sample;
} p;

void main() {
  uint i = global_index();
  if (i >= p.n) return;
  uint sample_index = p.first_sample + (p.first_in_sample + i) / p.per_sample;
  out_[i] = scales[sample_index] * in_[i];
}
