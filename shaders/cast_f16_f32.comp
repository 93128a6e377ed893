#version 450
// Cast fp16 -> fp32 (exact): reads the packed halves that cast_f32_f16 and the fp16 matmul write
// (src/ops/cast.h). Each invocation converts 8 elements, one uvec4 load where aligned (VEC).
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Dst { float dst[]; };   // (n)
layout(set = 0, binding = 0) writeonly buffer Dst4 { vec4 dst4[]; };
layout(set = 0, binding = 1) readonly buffer Src { uint src[]; };      // (ceil(n / 2)) packed halves
layout(set = 0, binding = 1) readonly buffer Src4 { uvec4 src4[]; };
layout(push_constant) uniform Push { uint n; } p;
layout(constant_id = 1) const bool VEC = false;  // both bindings start 16-byte aligned

void main() {
  const uint i0 = global_index() * 8u;
  if (i0 >= p.n) return;
  if (VEC && i0 + 8u <= p.n) {
    const uvec4 w = src4[i0 >> 3];
    dst4[i0 >> 2] = vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    dst4[(i0 >> 2) + 1u] = vec4(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
    return;
  }
  const uint end = min(i0 + 8u, p.n);
  for (uint i = i0; i < end; ++i) {
    const vec2 v = unpackHalf2x16(src[i >> 1]);
    dst[i] = (i & 1u) != 0u ? v.y : v.x;
  }
}
