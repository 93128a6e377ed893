#version 450
// Patch embedding, second half (the first is the patch matmul into `proj`): assemble the token
// sequence of every image (timm VisionTransformer._pos_embed with a class token):
//   tokens[b, 0]     = cls_token + pos_embed[0]
//   tokens[b, 1 + i] = proj[b, i] + pos_embed[1 + i]      (proj = patches W^T + bias)
// One float per invocation, or four (WIDE: D % 4 == 0, the views 16-byte aligned, shaderInt64),
// read and written as two 64-bit components: llvmpipe runs each storage access as a loop over the
// lanes per component, so this moves four floats for the price of two accesses, not four.
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"
#include "wide.glsl"

#ifdef WIDE_MODULE
layout(constant_id = 1) const bool WIDE = false;
#else
const bool WIDE = false;  // the plain module has no 64-bit pairs (wide.glsl)
#endif

layout(set = 0, binding = 0) writeonly buffer Tokens { float tokens[]; };  // (B, T, D), T = Np + 1
layout(set = 0, binding = 1) readonly buffer Proj { float proj[]; };       // (B, Np, D)
layout(set = 0, binding = 2) readonly buffer Cls { float cls[]; };         // (D)
layout(set = 0, binding = 3) readonly buffer Pos { float pos[]; };         // (T, D)
layout(set = 0, binding = 0) writeonly buffer Tokens8 { wide4 tokens8[]; };
layout(set = 0, binding = 1) readonly buffer Proj8 { wide4 proj8[]; };
layout(set = 0, binding = 2) readonly buffer Cls8 { wide4 cls8[]; };
layout(set = 0, binding = 3) readonly buffer Pos8 { wide4 pos8[]; };
layout(push_constant) uniform Push { uint B; uint T; uint D; } p;

void main() {
  const uint width = WIDE ? p.D / 4u : p.D;  // elements of this kernel per token row
  const uint i = global_index();
  const uint per_image = p.T * width;
  if (i >= p.B * per_image) return;
  const uint b = i / per_image;
  const uint td = i - b * per_image;  // t * width + d
  const uint t = td / width;
  const uint d = td - t * width;
  // Patch row t - 1 of image b; t = 0 (the class token) reads row 0 and throws it away.
  const uint pi = (b * (p.T - 1u) + max(t, 1u) - 1u) * width + d;
  if (WIDE) {
    const vec4 x = t == 0u ? unpack4(cls8[d]) : unpack4(proj8[pi]);
    tokens8[i] = pack4(x + unpack4(pos8[td]));
  } else {
    const float x = t == 0u ? cls[d] : proj[pi];
    tokens[i] = x + pos[td];
  }
}
