#version 450
// Stochastic depth's residual add: out = residual + scale[sample] * branch, where each sample's
// `per_sample` consecutive elements share one scale (0 for a dropped branch, 1 / keep for a kept
// one). The launcher splits long tensors into chunks of whole samples, one sample a row of
// workgroups.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Out { float out_[]; };        // (samples, per_sample)
layout(set = 0, binding = 1) readonly buffer Residual { float residual[]; };  // (samples, per_sample)
layout(set = 0, binding = 2) readonly buffer Branch { float branch[]; };      // (samples, per_sample)
layout(set = 0, binding = 3) readonly buffer Scales { float scales[]; };      // (first_scale + samples)
layout(push_constant) uniform Push {
  uint per_sample;
  uint first_scale;  // the scale of the chunk's first sample
} p;

void main() {
  // Workgroup row y is one sample, so the sample needs no division (a per-element integer
  // division is what an elementwise pass over the flat tensor would pay, slow on CPU drivers).
  uint sample_index = gl_WorkGroupID.y;
  uint in_sample = gl_WorkGroupID.x * WORKGROUP_SIZE + gl_LocalInvocationID.x;
  if (in_sample >= p.per_sample) return;
  uint i = sample_index * p.per_sample + in_sample;
  out_[i] = residual[i] + scales[p.first_scale + sample_index] * branch[i];
}
