#version 450
// The lavapipe matmul kernel reading A and B as texel buffers, 8 rows per workgroup x 3 columns per lane:
// the block for small batched products (attention's 17 x 17 per head), picked by the launcher in
// src/ops/matmul.cpp. The kernel is common/matmul_lavapipe.glsl; measurements in BENCHMARKS.md.
#extension GL_GOOGLE_include_directive : require
#define TM 8u
#define MATMUL_TEXEL_AB
#define TN 3u
#include "matmul_lavapipe.glsl"
