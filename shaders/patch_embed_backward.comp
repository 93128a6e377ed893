#version 450
// Patch embedding backward, the token part. One invocation per (t, d) walks the batch in order
// (deterministic, no atomics):
//   dpos[t, d] += sum_b dtokens[b, t, d];   dcls[d] += sum_b dtokens[b, 0, d]
// and copies the patch tokens' gradients into dproj (B, Np, D), contiguous rows, which the
// launcher feeds to the linear backward for dW and db.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer DCls { float dcls[]; };                   // (D)
layout(set = 0, binding = 1) buffer DPos { float dpos[]; };                   // (T, D), T = Np + 1
layout(set = 0, binding = 2) writeonly buffer DProj { float dproj[]; };       // (B, Np, D)
layout(set = 0, binding = 3) readonly buffer DTokens { float dtokens[]; };    // (B, T, D)
layout(push_constant) uniform Push { uint B; uint T; uint D; } p;

void main() {
  uint td = global_index();  // t * D + d
  uint per_image = p.T * p.D;
  if (td >= per_image) return;
  uint t = td / p.D;
  uint d = td - t * p.D;
  float s = 0.0;
  for (uint b = 0u; b < p.B; ++b) {
    float g = dtokens[b * per_image + td];
    s += g;
    if (t != 0u) dproj[(b * (p.T - 1u) + t - 1u) * p.D + d] = g;
  }
  dpos[td] += s;
  if (t == 0u) dcls[d] += s;
}
