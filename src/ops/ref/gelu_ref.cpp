// Plain C++ reference for GELU (exact erf form), in double precision.
#include <cmath>

#include "ops/gelu.h"

namespace vkvit::ops::ref {

void gelu_forward(double* out, const double* in, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) out[i] = 0.5 * in[i] * (1.0 + std::erf(in[i] / std::sqrt(2.0)));
}

void gelu_backward(double* din, const double* in, const double* dout, uint64_t n) {
  const double inv_sqrt_2pi = 1.0 / std::sqrt(2.0 * M_PI);
  for (uint64_t i = 0; i < n; ++i) {
    const double x = in[i];
    const double cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
    din[i] += dout[i] * (cdf + x * std::exp(-0.5 * x * x) * inv_sqrt_2pi);
  }
}

}  // namespace vkvit::ops::ref
