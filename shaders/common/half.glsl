// fp16 storage helpers shared by the cast and fp16 matmul shaders. Halves are stored packed two to
// a 32-bit word, element i in the low (i even) or high (i odd) 16 bits of word i / 2, which is the
// little-endian layout of a uint16 array: the host reads and writes such buffers as uint16 (IEEE
// binary16). Packed words need no 16-bit storage feature: unpackHalf2x16 is core GLSL, so these
// shaders run on every Vulkan device; and on llvmpipe, where each storage-buffer load is a loop
// over lanes and components, a uvec4 load brings 8 values instead of a vec4's 4.

// binary16 bits of x rounded to nearest (even): |x| >= 65520 becomes +-Inf (the overflow a loss
// scaler must see, whatever the driver's packHalf2x16 does out of range), NaN stays NaN.
uint half_bits(float x) {
  uint h = packHalf2x16(vec2(x, 0.0)) & 0xffffu;
  if (abs(x) >= 65520.0) h = ((floatBitsToUint(x) >> 16) & 0x8000u) | 0x7c00u;
  return h;
}
uint pack_halves(float lo, float hi) { return half_bits(lo) | (half_bits(hi) << 16); }
