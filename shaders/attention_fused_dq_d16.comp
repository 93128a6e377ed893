#version 450
// Fused attention backward for dQ for head width 16; the kernel is common/attention_fused_dq.glsl.
#extension GL_GOOGLE_include_directive : require
#define HEAD_DIM 16u
#include "attention_fused_dq.glsl"
