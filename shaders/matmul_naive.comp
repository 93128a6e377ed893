#version 450
// Batched matmul, one output element per invocation: correct on any shape, not fast. It is the
// baseline `vkvit bench matmul` compares against and the VKVIT_MATMUL_KERNEL=naive fallback.
// C[z] = alpha * op(A[z]) op(B[z]) + beta * C[z] + bias. See src/ops/matmul.h for the layout.
#extension GL_GOOGLE_include_directive : require
layout(local_size_x = 16, local_size_y = 16) in;
#include "matmul_common.glsl"

void main() {
  uint n = gl_GlobalInvocationID.x, m = gl_GlobalInvocationID.y, z = gl_GlobalInvocationID.z;
  if (m >= p.M || n >= p.N) return;
  uint a0, b0, c0;
  batch_bases(z, a0, b0, c0);
  bool ta = (p.flags & 1u) != 0u, tb = (p.flags & 2u) != 0u;
  float acc = 0.0;
  for (uint k = 0; k < p.K; ++k) {
    float av = ta ? a[a0 + k * p.lda + m] : a[a0 + m * p.lda + k];
    float bv = tb ? b[b0 + n * p.ldb + k] : b[b0 + k * p.ldb + n];
    acc += av * bv;
  }
  store_c(c0 + m * p.ldc + n, n, acc);
}
