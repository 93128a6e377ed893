#version 450
// Gradient-norm pass 1 reading whole vec4s through a texel buffer; see common/grad_norm_partial.glsl.
#extension GL_GOOGLE_include_directive : require
#define GRAD_NORM_TEXEL
#include "grad_norm_partial.glsl"
