#version 450
// The GPU matmul over fp16 operands (packed halves, common/matmul_f16_common.glsl), fp32
// accumulation, fp16 output; the kernel is common/matmul_tiled.glsl.
#extension GL_GOOGLE_include_directive : require
#define OUT_F16
#include "matmul_f16_common.glsl"
#define LOAD_A(i) half_a(i)
#define LOAD_B(i) half_b(i)
#define STORE_RESULT store_c
#include "matmul_tiled.glsl"
