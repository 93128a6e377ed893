#version 450
// Batched matmul, one output element per invocation: correct on any shape, not fast.
// C[z] = alpha * op(A[z]) op(B[z]) + beta * C[z] + bias. See src/ops/matmul.h for the layout.
layout(local_size_x = 16, local_size_y = 16) in;

layout(set = 0, binding = 0) buffer C { float c[]; };                 // (batch, M, ldc)
layout(set = 0, binding = 1) readonly buffer A { float a[]; };        // (batch, M, lda) or (batch, K, lda)
layout(set = 0, binding = 2) readonly buffer B { float b[]; };        // (batch, K, ldb) or (batch, N, ldb)
layout(set = 0, binding = 3) readonly buffer Bias { float bias[]; };  // (N) when has_bias

layout(push_constant) uniform Push {
  uint M, N, K;
  uint lda, ldb, ldc;
  uint batch_inner;
  uint a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;  // batch strides in floats
  float alpha, beta;
  uint flags;  // bit 0: trans_a, bit 1: trans_b, bit 2: has_bias
} p;

void main() {
  uint n = gl_GlobalInvocationID.x, m = gl_GlobalInvocationID.y, z = gl_GlobalInvocationID.z;
  if (m >= p.M || n >= p.N) return;
  uint outer = z / p.batch_inner, inner = z % p.batch_inner;
  uint a0 = outer * p.a_outer + inner * p.a_inner;
  uint b0 = outer * p.b_outer + inner * p.b_inner;
  uint c0 = outer * p.c_outer + inner * p.c_inner;
  bool ta = (p.flags & 1u) != 0u, tb = (p.flags & 2u) != 0u;
  float acc = 0.0;
  for (uint k = 0; k < p.K; ++k) {
    float av = ta ? a[a0 + k * p.lda + m] : a[a0 + m * p.lda + k];
    float bv = tb ? b[b0 + n * p.ldb + k] : b[b0 + k * p.ldb + n];
    acc += av * bv;
  }
  uint ci = c0 + m * p.ldc + n;
  float result = p.alpha * acc;
  if (p.beta != 0.0) result += p.beta * c[ci];
  if ((p.flags & 4u) != 0u) result += bias[n];
  c[ci] = result;
}
