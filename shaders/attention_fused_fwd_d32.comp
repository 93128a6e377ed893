#version 450
// Fused attention forward for head width 32; the kernel is common/attention_fused_fwd.glsl.
#extension GL_GOOGLE_include_directive : require
#define HEAD_DIM 32u
#include "attention_fused_fwd.glsl"
