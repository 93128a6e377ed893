// Plain C++ reference for ops::matmul, in double precision.
#include "ops/matmul.h"

namespace vkvit::ops::ref {

void matmul(double* c, const double* a, const double* b, const MatmulShape& s, const double* bias) {
  const uint64_t lda = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
  const uint64_t ldb = s.b.ld ? s.b.ld : (s.trans_b ? s.K : s.N);
  const uint64_t ldc = s.c.ld ? s.c.ld : s.N;
  for (uint32_t z = 0; z < s.batch; ++z) {
    const uint64_t outer = z / s.batch_inner, inner = z % s.batch_inner;
    const double* A = a + outer * s.a.stride_outer + inner * s.a.stride_inner;
    const double* B = b + outer * s.b.stride_outer + inner * s.b.stride_inner;
    double* C = c + outer * s.c.stride_outer + inner * s.c.stride_inner;
    for (uint32_t m = 0; m < s.M; ++m) {
      for (uint32_t n = 0; n < s.N; ++n) {
        double acc = 0;
        for (uint32_t k = 0; k < s.K; ++k) {
          const double av = s.trans_a ? A[k * lda + m] : A[m * lda + k];
          const double bv = s.trans_b ? B[n * ldb + k] : B[k * ldb + n];
          acc += av * bv;
        }
        double out = s.alpha * acc + (s.beta != 0.0f ? s.beta * C[m * ldc + n] : 0.0);
        if (bias) out += bias[n];
        C[m * ldc + n] = out;
      }
    }
  }
}

}  // namespace vkvit::ops::ref
