#version 450
// Gradient-norm pass 1 over a storage buffer; the kernel is common/grad_norm_partial.glsl.
#extension GL_GOOGLE_include_directive : require
#include "grad_norm_partial.glsl"
