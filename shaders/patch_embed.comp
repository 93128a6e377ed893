#version 450
// Patch embedding, second half (the first is the patch matmul into `proj`): assemble the token
// sequence of every image (timm VisionTransformer._pos_embed with a class token):
//   tokens[b, 0]     = cls_token + pos_embed[0]
//   tokens[b, 1 + i] = proj[b, i] + pos_embed[1 + i]      (proj = patches W^T + bias)
#extension GL_GOOGLE_include_directive : require
#include "index.glsl"

layout(set = 0, binding = 0) writeonly buffer Tokens { float tokens[]; };  // (B, T, D), T = Np + 1
layout(set = 0, binding = 1) readonly buffer Proj { float proj[]; };       // (B, Np, D)
layout(set = 0, binding = 2) readonly buffer Cls { float cls[]; };         // (D)
layout(set = 0, binding = 3) readonly buffer Pos { float pos[]; };         // (T, D)
layout(push_constant) uniform Push { uint B; uint T; uint D; } p;

void main() {
  uint i = global_index();
  uint per_image = p.T * p.D;
  if (i >= p.B * per_image) return;
  uint b = i / per_image;
  uint td = i - b * per_image;  // t * D + d
  uint t = td / p.D;
  uint d = td - t * p.D;
  float x = t == 0u ? cls[d] : proj[(b * (p.T - 1u) + t - 1u) * p.D + d];
  tokens[i] = x + pos[td];
}
