#version 450
// Fused attention backward for dK, dV for head width 32; the kernel is common/attention_fused_dkv.glsl.
#extension GL_GOOGLE_include_directive : require
#define HEAD_DIM 32u
#include "attention_fused_dkv.glsl"
