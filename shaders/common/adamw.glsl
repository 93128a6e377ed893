#version 450
// One AdamW step (torch.optim.AdamW semantics, see src/ops/adamw.h), four parameters per invocation:
//   g = grad * clip_coef; p *= 1 - lr wd (decayed elements only);
//   m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// Whether an element decays: its bit in the decay mask (bit i % 32 of word i / 32).
// SCALED (layer-wise lr decay, frozen tensors; train/param_groups.h): every 64-float block of the
// flat buffer has an lr scale s (tensors start at multiples of 64 floats, so a block is one
// tensor's): lr becomes s lr, in the step size and in the decay 1 - s lr wd; s = 0 (a frozen
// tensor) writes nothing. Without it the scale is never read and the code is the unscaled one.
// A non-finite clip coefficient (NaN/Inf gradients) skips the step: nothing is written.
//
// Four per invocation, read and written as two 64-bit components where the launcher allows
// (WIDE): llvmpipe runs every storage access as a loop over the lanes per component, so a 64-bit
// pair moves two floats for the price of one, and one mask word serves all four.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "wide.glsl"

#ifdef WIDE_MODULE
layout(constant_id = 1) const bool WIDE = false;  // views 16-byte aligned, shaderInt64 on
#else
const bool WIDE = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif
// Whether this dispatch may hold a last group of fewer than four elements. The launcher runs the
// whole groups with PARTIAL off and the last 1-3 elements as a second, one-invocation dispatch:
// llvmpipe runs both sides of an `if`, so a per-element path merely present in the kernel cost
// every invocation its lane loops (BENCHMARKS.md, "lavapipe: the loop mask and the accumulators").
layout(constant_id = 2) const bool PARTIAL = true;
layout(constant_id = 3) const bool SCALED = false;

layout(set = 0, binding = 0) buffer Params { float params[]; };         // (n)
layout(set = 0, binding = 1) buffer M { float m[]; };                   // (n) first moment
layout(set = 0, binding = 2) buffer V { float v[]; };                   // (n) second moment
layout(set = 0, binding = 3) readonly buffer Grads { float grads[]; };  // (n)
layout(set = 0, binding = 4) readonly buffer Clip { float clip[]; };    // (2) grad_norm's [norm, coef]
layout(set = 0, binding = 5) readonly buffer Decay { uint mask[]; };    // (n / 32) decay bits
layout(set = 0, binding = 6) readonly buffer Scale { float lr_scale[]; };  // (n / 64) SCALED: lr scale per block
layout(set = 0, binding = 0) buffer Params8 { wide4 params8[]; };
layout(set = 0, binding = 1) buffer M8 { wide4 m8[]; };
layout(set = 0, binding = 2) buffer V8 { wide4 v8[]; };
layout(set = 0, binding = 3) readonly buffer Grads8 { wide4 grads8[]; };
layout(push_constant) uniform Push {
  uint n;      // elements of the chunk this dispatch may touch: [start, n)
  uint first;  // flat index of this chunk's first element (a multiple of 64)
  uint start;  // element of the chunk where this dispatch starts (a multiple of 4)
  uint use_clip;
  float step_size;              // lr / (1 - b1^t)
  float bias_correction2_sqrt;  // sqrt(1 - b2^t)
  float decay_factor;           // 1 - lr wd
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float eps;
  float lr_wd;  // lr wd, for SCALED's decay 1 - s lr wd
} p;

void main() {
  const uint i0 = p.start + 4u * global_index();
  if (i0 >= p.n) return;
  float coef = 1.0;
  if (p.use_clip != 0u) {
    coef = clip[1];
    if (isnan(coef) || isinf(coef)) return;
  }
  // The four elements share a mask word: chunks start at multiples of 64 elements.
  const uint index = p.first + i0;
  float step_size = p.step_size, decay_factor = p.decay_factor;
  if (SCALED) {
    // The four elements share a block: i0 and the chunk's first element are multiples of 4 and 64.
    const float s = lr_scale[index >> 6];
    if (s == 0.0) return;  // frozen: params, m and v stay as they are
    step_size *= s;
    decay_factor = 1.0 - p.lr_wd * s;
  }
  const uint bits = mask[index >> 5] >> (index & 31u);
  const bvec4 decayed = notEqual(uvec4(bits) & uvec4(1u, 2u, 4u, 8u), uvec4(0u));

  const bool whole = WIDE && (!PARTIAL || i0 + 4u <= p.n);
  vec4 g, w, mi, vi;
  if (whole) {
    const uint q = i0 >> 2;
    g = unpack4(grads8[q]), w = unpack4(params8[q]), mi = unpack4(m8[q]), vi = unpack4(v8[q]);
  } else {
    for (uint e = 0; e < 4u; ++e) {
      const uint i = min(i0 + e, p.n - 1u);  // past n: a copy of the last element, never stored
      g[e] = grads[i], w[e] = params[i], mi[e] = m[i], vi[e] = v[i];
    }
  }
  g *= coef;
  w = mix(w, w * decay_factor, decayed);
  mi = p.beta1 * mi + p.one_minus_beta1 * g;
  vi = p.beta2 * vi + p.one_minus_beta2 * (g * g);
  w -= step_size * mi / (sqrt(vi) / p.bias_correction2_sqrt + p.eps);
  if (whole) {
    const uint q = i0 >> 2;
    m8[q] = pack4(mi), v8[q] = pack4(vi), params8[q] = pack4(w);
  } else {
    for (uint e = 0; e < 4u && i0 + e < p.n; ++e) m[i0 + e] = mi[e], v[i0 + e] = vi[e], params[i0 + e] = w[e];
  }
}
