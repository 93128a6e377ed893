#version 450
// Global filter: patch tokens (B, T, D) channels-last -> FFT grids (B, D, P) channels-first,
// P = h * w patch positions; token 0 (cls) is not part of the grid. The FFT batches over
// contiguous grids only (vk/fft.h), hence this transpose.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Grids { float grids[]; };  // (B, D, P)
layout(set = 0, binding = 1) readonly buffer Tokens { float tokens[]; }; // (B, T, D), T = P + 1
layout(push_constant) uniform Push { uint n, D, P; } p;                  // n = B * D * P

void main() {
  const uint i = global_index();
  if (i >= p.n) return;
  const uint per_image = p.D * p.P;
  const uint b = i / per_image, r = i - b * per_image;
  const uint d = r / p.P, pos = r - d * p.P;
  grids[i] = tokens[(b * (p.P + 1u) + 1u + pos) * p.D + d];
}
