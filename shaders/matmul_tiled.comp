#version 450
// The GPU matmul over fp32 operands, with the fused epilogues of common/matmul_epilogue.glsl (spec
// constant 8); the kernel is common/matmul_tiled.glsl.
#extension GL_GOOGLE_include_directive : require
#include "matmul_common.glsl"
#include "matmul_epilogue.glsl"
#define LOAD_A(i) a[i]
#define LOAD_B(i) b[i]
#define STORE_RESULT store_result
#define TILED_EPILOGUE
#include "matmul_tiled.glsl"
