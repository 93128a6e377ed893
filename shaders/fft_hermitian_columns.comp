#version 450
// Before a C2R inverse: replaces the columns of a half spectrum that hold their own mirror image
// (kx = 0, and kx = w/2 for even w) by their Hermitian part along ky,
//   Z'[ky] = (Z[ky] + conj(Z[(h - ky) % h])) / 2,
// so that the inverse equals torch.fft.irfft2 for any input: irfft2 takes the real part of those
// columns after the ky transform, and the Hermitian part is exactly what survives that. VkFFT's
// even-length C2R would otherwise let their imaginary parts leak into the output.
// One invocation per (grid, column, ky <= h/2) writes the pair ky and h - ky.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer Spectrum { vec2 z[]; };  // (batch, h, wc) complex
layout(push_constant) uniform Push { uint batch, h, wc, columns, pairs; } p;  // pairs = h / 2 + 1

void main() {
  const uint i = global_index();
  if (i >= p.batch * p.columns * p.pairs) return;
  const uint ky = i % p.pairs, r = i / p.pairs;
  const uint column = r % p.columns, n = r / p.columns;
  const uint kx = column == 0u ? 0u : p.wc - 1u;
  const uint mirror = (p.h - ky) % p.h;
  const uint a = (n * p.h + ky) * p.wc + kx, b = (n * p.h + mirror) * p.wc + kx;
  const vec2 za = z[a], zb = z[b];
  const vec2 sym = 0.5 * vec2(za.x + zb.x, za.y - zb.y);
  z[a] = sym;
  z[b] = vec2(sym.x, -sym.y);
}
