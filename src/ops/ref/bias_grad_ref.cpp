// Plain C++ reference for bias_grad, in double precision.
#include "ops/bias_grad.h"

namespace vkvit::ops::ref {

void bias_grad(double* db, const double* dy, uint64_t M, uint64_t N) {
  for (uint64_t m = 0; m < M; ++m)
    for (uint64_t n = 0; n < N; ++n) db[n] += dy[m * N + n];
}

}  // namespace vkvit::ops::ref
