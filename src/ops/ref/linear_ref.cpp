// Plain C++ reference for nn.Linear (weight (N, K), bias (N)), in double precision.
#include "ops/linear.h"

namespace vkvit::ops::ref {

void linear_forward(double* y, const double* x, const double* w, const double* b, uint64_t M, uint64_t N,
                    uint64_t K) {
  for (uint64_t m = 0; m < M; ++m)
    for (uint64_t n = 0; n < N; ++n) {
      double acc = b ? b[n] : 0.0;
      for (uint64_t k = 0; k < K; ++k) acc += x[m * K + k] * w[n * K + k];
      y[m * N + n] = acc;
    }
}

void linear_backward(double* dx, double* dw, double* db, const double* dy, const double* x, const double* w,
                     uint64_t M, uint64_t N, uint64_t K) {
  for (uint64_t m = 0; m < M; ++m)
    for (uint64_t n = 0; n < N; ++n) {
      const double g = dy[m * N + n];
      if (db) db[n] += g;
      for (uint64_t k = 0; k < K; ++k) {
        if (dx) dx[m * K + k] += g * w[n * K + k];
        dw[n * K + k] += g * x[m * K + k];
      }
    }
}

}  // namespace vkvit::ops::ref
