#version 450
// Stochastic depth's residual add: out = residual + scale[sample] * branch, where each sample's
// `per_sample` consecutive elements share one scale (0 for a dropped branch, 1 / keep for a kept
// one). The launcher splits long tensors into chunks; `first_sample` and `first_in_sample` place
// the chunk's first element, so no index needs 64 bits.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };        // (n)
layout(set = 0, binding = 1) readonly buffer Residual { float residual[]; };  // (n)
layout(set = 0, binding = 2) readonly buffer Branch { float branch[]; };      // (n)
layout(set = 0, binding = 3) readonly buffer Scales { float scales[]; };      // (first_sample + samples)
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
  out_[i] = residual[i] + scales[sample_index] * branch[i];
}
