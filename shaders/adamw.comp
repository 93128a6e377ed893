#version 450
// One AdamW step (torch.optim.AdamW semantics, see src/ops/adamw.h), one invocation per parameter:
//   g = grad * clip_coef; p *= 1 - lr wd (decayed elements only);
//   m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Whether an element decays: binary search of the sorted [start, end) table of decayed ranges.
// A non-finite clip coefficient (NaN/Inf gradients) skips the step: nothing is written.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer Params { float params[]; };         // (n)
layout(set = 0, binding = 1) buffer M { float m[]; };                   // (n) first moment
layout(set = 0, binding = 2) buffer V { float v[]; };                   // (n) second moment
layout(set = 0, binding = 3) readonly buffer Grads { float grads[]; };  // (n)
layout(set = 0, binding = 4) readonly buffer Clip { float clip[]; };    // (2) grad_norm's [norm, coef]
layout(set = 0, binding = 5) readonly buffer Decay { uint table[]; };   // (2 * ranges) [start, end) pairs
layout(push_constant) uniform Push {
  uint n;
  uint first;  // flat index of this chunk's first element
  uint ranges;
  uint use_clip;
  float step_size;              // lr / (1 - b1^t)
  float bias_correction2_sqrt;  // sqrt(1 - b2^t)
  float decay_factor;           // 1 - lr wd
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float eps;
} p;

// Number of table ranges that start at or before index (binary search).
uint ranges_started(uint index) {
  uint lo = 0, hi = p.ranges;
  while (lo < hi) {
    uint mid = (lo + hi) >> 1;
    if (table[2 * mid] <= index) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

shared uint s_started;  // ranges_started() of the workgroup's first element

void main() {
  // One binary search per workgroup, not per element (it cost a third of the step on lavapipe);
  // each lane then walks forward over the few ranges that may start inside the workgroup's span.
  uint i = global_index();
  if (gl_LocalInvocationID.x == 0) s_started = ranges_started(p.first + linear_group_id() * WORKGROUP_SIZE);
  barrier();
  if (i >= p.n) return;
  float coef = 1.0;
  if (p.use_clip != 0u) {
    coef = clip[1];
    if (isnan(coef) || isinf(coef)) return;
  }
  uint index = p.first + i;
  uint started = s_started;
  while (started < p.ranges && table[2 * started] <= index) ++started;
  bool decayed = started > 0 && index < table[2 * started - 1];  // inside the last range started

  float g = grads[i] * coef;
  float w = params[i];
  if (decayed) w *= p.decay_factor;
  float mi = p.beta1 * m[i] + p.one_minus_beta1 * g;
  float vi = p.beta2 * v[i] + p.one_minus_beta2 * (g * g);
  m[i] = mi;
  v[i] = vi;
  params[i] = w - p.step_size * mi / (sqrt(vi) / p.bias_correction2_sqrt + p.eps);
}
