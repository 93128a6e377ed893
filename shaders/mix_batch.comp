#version 450
// Mixup / CutMix of a patchified batch in place (semantics in src/train/mixup.h, whose
// mix_patches is the host reference of this pass). One invocation per (pair, float): image i and
// image B-1-i each read the other's original value before either writes, so no copy of the batch
// is needed. The float at offset e of an image is pixel (y, x) of patch r = e / (C P P), laid out
// [c][py][px] (data/patchify.h).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) buffer Images { float images[]; };        // (B, C * S * S) patchified
layout(set = 0, binding = 1) readonly buffer Mixes { uint mixes[]; };  // (B, 6) per image, see ops/mix_batch.h
layout(push_constant) uniform Push {
  uint batch;
  uint per_image;     // C * S * S floats
  uint patch_size;    // P
  uint grid;          // S / P
  uint pairs;         // (batch + 1) / 2
} p;

const uint KIND_MIXUP = 1u, KIND_CUTMIX = 2u;

// The new value of image `img` at (y, x): its own value, or taken from its partner's.
float mixed_value(uint img, float own, float other, uint y, uint x) {
  const uint m = img * 6u;
  const uint kind = mixes[m];
  if (kind == KIND_MIXUP) {
    const float lam = uintBitsToFloat(mixes[m + 1u]);
    return own * lam + other * (1.0 - lam);
  }
  if (kind == KIND_CUTMIX && y >= mixes[m + 2u] && y < mixes[m + 3u] && x >= mixes[m + 4u] && x < mixes[m + 5u])
    return other;
  return own;
}

void main() {
  const uint idx = global_index();
  if (idx >= p.pairs * p.per_image) return;  // the host keeps pairs * per_image within 32 bits
  const uint i = idx / p.per_image, e = idx % p.per_image;
  const uint j = p.batch - 1u - i;
  const uint patch_floats = p.per_image / (p.grid * p.grid);
  const uint r = e / patch_floats, within = e % (p.patch_size * p.patch_size);
  const uint y = (r / p.grid) * p.patch_size + within / p.patch_size;
  const uint x = (r % p.grid) * p.patch_size + within % p.patch_size;
  const float a = images[i * p.per_image + e], b = images[j * p.per_image + e];
  images[i * p.per_image + e] = mixed_value(i, a, b, y, x);
  if (j != i) images[j * p.per_image + e] = mixed_value(j, b, a, y, x);
}
