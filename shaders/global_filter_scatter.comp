#version 450
// Global filter: FFT grids (B, D, P) -> tokens (B, T, D), the inverse of global_filter_gather.
// The cls token (t = 0) gets 0: the filter does not mix it. ACCUMULATE adds into tokens
// (the backward's din +=), otherwise tokens are overwritten (the forward's out).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(constant_id = 1) const bool ACCUMULATE = false;
layout(set = 0, binding = 0) buffer Tokens { float tokens[]; };         // (B, T, D), T = P + 1
layout(set = 0, binding = 1) readonly buffer Grids { float grids[]; };  // (B, D, P)
layout(push_constant) uniform Push { uint n, D, P; } p;                 // n = B * T * D

void main() {
  const uint j = global_index();
  if (j >= p.n) return;
  const uint T = p.P + 1u, per_image = T * p.D;
  const uint b = j / per_image, r = j - b * per_image;
  const uint t = r / p.D, d = r - t * p.D;
  const float v = t == 0u ? 0.0 : grids[(b * p.D + d) * p.P + t - 1u];
  if (ACCUMULATE) tokens[j] += v;
  else tokens[j] = v;
}
