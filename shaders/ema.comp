#version 450
// Model EMA (src/ops/ema.h): ema = decay * ema + (1 - decay) * param, one float per invocation,
// after the optimizer step. With use_clip, a non-finite clip coefficient (grad_norm's result[1])
// means the optimizer skipped this step, so the average is left as it was too.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer Ema { float ema[]; };                 // (n) the averaged weights
layout(set = 0, binding = 1) readonly buffer Params { float params[]; };  // (n) the model's weights
layout(set = 0, binding = 2) readonly buffer Clip { float clip[]; };      // (2) grad_norm's [norm, coef]
layout(push_constant) uniform Push {
  uint n;
  uint use_clip;
  float decay;
  float one_minus_decay;  // rounded on the host from the double 1 - decay
} p;

void main() {
  const uint i = global_index();
  if (i >= p.n) return;
  if (p.use_clip != 0u) {
    const float coef = clip[1];
    if (isnan(coef) || isinf(coef)) return;
  }
  ema[i] = p.decay * ema[i] + p.one_minus_decay * params[i];
}
