#version 450
// Gradient-norm pass 2, one workgroup: sums the partials in a fixed order, then writes
//   result[0] = sqrt(sum)                                   the global L2 norm (NaN/Inf written through)
//   result[1] = min(1, max_norm / (norm + 1e-6))             PyTorch clip_grad_norm_'s coefficient,
//               1 when max_norm <= 0 (no clipping), NaN when the norm is not finite (the optimizer
//               then skips the step; see src/ops/grad_norm.h).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Result { float result[]; };   // (2)
layout(set = 0, binding = 1) readonly buffer Partials { float partials[]; };  // (partials)
layout(push_constant) uniform Push {
  uint partials;
  float max_norm;
} p;

shared float s_acc[WORKGROUP_SIZE];

void main() {
  uint t = gl_LocalInvocationID.x;
  float acc = 0.0;
  for (uint i = t; i < p.partials; i += WORKGROUP_SIZE) acc += partials[i];
  s_acc[t] = acc;
  barrier();
  for (uint h = WORKGROUP_SIZE / 2; h > 0; h >>= 1) {
    if (t < h) s_acc[t] += s_acc[t + h];
    barrier();
  }
  if (t == 0) {
    float norm = sqrt(s_acc[0]);
    float coef = 1.0;
    if (isnan(norm) || isinf(norm)) {
      coef = uintBitsToFloat(0x7fc00000u);  // NaN
    } else if (p.max_norm > 0.0) {
      coef = min(1.0, p.max_norm / (norm + 1e-6));
    }
    result[0] = norm;
    result[1] = coef;
  }
}
