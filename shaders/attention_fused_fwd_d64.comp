#version 450
// Fused attention forward for head width 64; the kernel is common/attention_fused_fwd.glsl.
#extension GL_GOOGLE_include_directive : require
#define HEAD_DIM 64u
#include "attention_fused_fwd.glsl"
