#version 450
// Global filter in the frequency domain: out = spectrum * K per channel and frequency, complex.
//   spectrum, out  (B, D, h, wc) complex as (re, im)      K  (h, wc, D) complex (the parameter)
// CONJ multiplies by conj(K): the backward's d(input) = irfft2(rfft2(dout) * conj(K)).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(constant_id = 1) const bool CONJ = false;
layout(set = 0, binding = 0) writeonly buffer Out { vec2 out_[]; };
layout(set = 0, binding = 1) readonly buffer Spectrum { vec2 spectrum[]; };
layout(set = 0, binding = 2) readonly buffer Filter { vec2 filter_[]; };
layout(push_constant) uniform Push { uint n, D, F; } p;  // n = B * D * F complex, F = h * wc

void main() {
  const uint i = global_index();
  if (i >= p.n) return;
  const uint bd = i / p.F, f = i - bd * p.F, d = bd % p.D;
  const vec2 s = spectrum[i];
  vec2 k = filter_[f * p.D + d];
  if (CONJ) k.y = -k.y;
  out_[i] = vec2(s.x * k.x - s.y * k.y, s.x * k.y + s.y * k.x);
}
