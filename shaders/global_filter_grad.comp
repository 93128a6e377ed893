#version 450
// Gradient of the global filter K (h, wc, D) complex, accumulated: for y = irfft2(rfft2(x) * K)
// (torch.fft's "backward" norm, which equals GFNet's ortho forward + ortho inverse),
//   dK[f][d] += sum_b c(kx) / (h * w) * G[b][d][f] * conj(X[b][d][f])
// with X = rfft2(x), G = rfft2(dy), and c(kx) = 1 for the columns that the half spectrum holds
// once (kx = 0, and kx = w / 2 when w is even), 2 for the others, whose mirror image is implied.
// One invocation per (f, d), summing the batch in order: no atomics, reproducible.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer Grad { vec2 dk[]; };                // (h, wc, D)
layout(set = 0, binding = 1) readonly buffer G { vec2 g[]; };           // (B, D, h, wc)
layout(set = 0, binding = 2) readonly buffer X { vec2 x[]; };           // (B, D, h, wc)
layout(push_constant) uniform Push { uint batch, D, F, wc, w; float inv_hw; } p;

void main() {
  const uint i = global_index();
  if (i >= p.F * p.D) return;
  const uint f = i / p.D, d = i - f * p.D;
  const uint kx = f % p.wc;
  const float c = (kx == 0u || 2u * kx == p.w) ? 1.0 : 2.0;
  vec2 acc = vec2(0.0);
  for (uint b = 0; b < p.batch; ++b) {
    const uint s = (b * p.D + d) * p.F + f;
    const vec2 gv = g[s], xv = x[s];
    acc += vec2(gv.x * xv.x + gv.y * xv.y, gv.y * xv.x - gv.x * xv.y);
  }
  dk[i] += c * p.inv_hw * acc;
}
