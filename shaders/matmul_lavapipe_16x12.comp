#version 450
// Register-blocked matmul for CPU Vulkan (lavapipe), 16 rows x 12 columns per lane; the kernel
// and the reasons for its shape are in common/matmul_lavapipe.glsl, measurements in BENCHMARKS.md.
#extension GL_GOOGLE_include_directive : require
#define TM 16u
#define TN 12u
#include "matmul_lavapipe.glsl"
