#version 450
// fp16-storage matmul for CPU Vulkan, fp16 output (16-bit storage), 8 rows x 8 columns per lane; the kernel and
// the reasons for its shape are in common/matmul_f16.glsl, measurements in BENCHMARKS.md.
#extension GL_GOOGLE_include_directive : require
#define TM 8u
#define TN 8u
#define OUT_F16
#include "matmul_f16.glsl"
