#version 450
// Model EMA (src/ops/ema.h): ema = decay * ema + (1 - decay) * param after the optimizer step,
// four floats per invocation. With use_clip, a non-finite clip coefficient (grad_norm's
// result[1]) means the optimizer skipped this step, so the average is left as it was too.
//
// Four per invocation, read and written as two 64-bit components where the launcher allows
// (WIDE), as adamw.glsl does: llvmpipe runs every storage access as a loop over the lanes per
// component, and one float per invocation cost the EMA more than AdamW's whole update.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "wide.glsl"

#ifdef WIDE_MODULE
layout(constant_id = 1) const bool WIDE = false;  // views 16-byte aligned, shaderInt64 on
#else
const bool WIDE = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif
// Whether this dispatch may hold a last group of fewer than four elements; the launcher runs the
// whole groups with PARTIAL off and the last 1-3 elements as a one-invocation dispatch of their
// own (why: adamw.glsl).
layout(constant_id = 2) const bool PARTIAL = true;

layout(set = 0, binding = 0) buffer Ema { float ema[]; };                 // (n) the averaged weights
layout(set = 0, binding = 1) readonly buffer Params { float params[]; };  // (n) the model's weights
layout(set = 0, binding = 2) readonly buffer Clip { float clip[]; };      // (2) grad_norm's [norm, coef]
layout(set = 0, binding = 0) buffer Ema8 { wide4 ema8[]; };
layout(set = 0, binding = 1) readonly buffer Params8 { wide4 params8[]; };
layout(push_constant) uniform Push {
  uint n;      // elements of the chunk this dispatch may touch: [start, n)
  uint start;  // element of the chunk where this dispatch starts (a multiple of 4)
  uint use_clip;
  float decay;
  float one_minus_decay;  // rounded on the host from the double 1 - decay
} p;

void main() {
  const uint i0 = p.start + 4u * global_index();
  if (i0 >= p.n) return;
  if (p.use_clip != 0u) {
    const float coef = clip[1];
    if (isnan(coef) || isinf(coef)) return;
  }
  const bool whole = WIDE && (!PARTIAL || i0 + 4u <= p.n);
  vec4 e, w;
  if (whole) {
    e = unpack4(ema8[i0 >> 2]), w = unpack4(params8[i0 >> 2]);
  } else {
    for (uint k = 0; k < 4u; ++k) {
      const uint i = min(i0 + k, p.n - 1u);  // past n: a copy of the last element, never stored
      e[k] = ema[i], w[k] = params[i];
    }
  }
  e = p.decay * e + p.one_minus_decay * w;
  if (whole) {
    ema8[i0 >> 2] = pack4(e);
  } else {
    for (uint k = 0; k < 4u && i0 + k < p.n; ++k) ema[i0 + k] = e[k];
  }
}
