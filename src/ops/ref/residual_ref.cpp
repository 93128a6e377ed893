// Plain C++ reference for the residual add and gradient accumulation, in double precision.
#include "ops/residual.h"

namespace vkvit::ops::ref {

void residual_forward(double* out, const double* a, const double* b, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void accumulate(double* dst, const double* src, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace vkvit::ops::ref
