#version 450
// The GPU matmul over fp16 operands (packed halves, common/matmul_f16_common.glsl), fp32
// accumulation and output, with the fused epilogues of common/matmul_epilogue.glsl (spec constant
// 8, operand fp32); the kernel is common/matmul_tiled.glsl.
#extension GL_GOOGLE_include_directive : require
#include "matmul_f16_common.glsl"
#include "matmul_epilogue.glsl"
#define LOAD_A(i) half_a(i)
#define LOAD_B(i) half_b(i)
#define STORE_RESULT store_result
#define TILED_EPILOGUE
#include "matmul_tiled.glsl"
