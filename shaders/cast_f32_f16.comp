#version 450
// Cast fp32 -> fp16 (round to nearest even, overflow to Inf): the mixed-precision path's copies of
// weights and activations (src/ops/cast.h). Each invocation converts 8 elements: two vec4 loads
// and one uvec4 store where the launcher has checked alignment (VEC), else pair by pair.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "half.glsl"

layout(set = 0, binding = 0) buffer Dst { uint dst[]; };          // (ceil(n / 2)) packed halves
layout(set = 0, binding = 0) buffer Dst4 { uvec4 dst4[]; };
layout(set = 0, binding = 1) readonly buffer Src { float src[]; };  // (n)
layout(set = 0, binding = 1) readonly buffer Src4 { vec4 src4[]; };
layout(push_constant) uniform Push { uint n; } p;
// Both bindings start 16-byte aligned (the launcher checks), so 8 elements are one uvec4 of dst
// and two vec4 of src.
layout(constant_id = 1) const bool VEC = false;

void main() {
  const uint i0 = global_index() * 8u;
  if (i0 >= p.n) return;
  if (VEC && i0 + 8u <= p.n) {
    const vec4 x = src4[i0 >> 2], y = src4[(i0 >> 2) + 1u];
    dst4[i0 >> 3] = uvec4(pack_halves(x.x, x.y), pack_halves(x.z, x.w), pack_halves(y.x, y.y), pack_halves(y.z, y.w));
    return;
  }
  const uint end = min(i0 + 8u, p.n);
  for (uint i = i0; i < end; i += 2u) {
    if (i + 1u < p.n)
      dst[i >> 1] = pack_halves(src[i], src[i + 1u]);
    else  // the last element of an odd count: its word's high half is not ours, keep it
      dst[i >> 1] = (dst[i >> 1] & 0xffff0000u) | half_bits(src[i]);
  }
}
