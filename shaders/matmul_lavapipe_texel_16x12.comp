#version 450
// The lavapipe matmul kernel reading A and B as texel buffers, 16 rows x 12 columns per lane; the kernel
// and the reasons for its shape are in common/matmul_lavapipe.glsl, measurements in BENCHMARKS.md.
#extension GL_GOOGLE_include_directive : require
#define TM 16u
#define MATMUL_TEXEL_AB
#define TN 12u
#include "matmul_lavapipe.glsl"
