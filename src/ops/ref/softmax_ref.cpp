// Plain C++ reference for the row-wise softmax, in double precision.
#include <algorithm>
#include <cmath>

#include "ops/softmax.h"

namespace vkvit::ops::ref {

void softmax_forward(double* out, const double* in, uint64_t rows, uint32_t cols) {
  for (uint64_t r = 0; r < rows; ++r) {
    const double* x = in + r * cols;
    double* y = out + r * cols;
    const double m = *std::max_element(x, x + cols);
    double sum = 0;
    for (uint32_t c = 0; c < cols; ++c) sum += std::exp(x[c] - m);
    for (uint32_t c = 0; c < cols; ++c) y[c] = std::exp(x[c] - m) / sum;
  }
}

void softmax_backward(double* din, const double* probs, const double* dout, uint64_t rows, uint32_t cols,
                      bool accumulate) {
  for (uint64_t r = 0; r < rows; ++r) {
    const double* p = probs + r * cols;
    const double* g = dout + r * cols;
    double* dx = din + r * cols;
    double dot_gp = 0;
    for (uint32_t c = 0; c < cols; ++c) dot_gp += g[c] * p[c];
    for (uint32_t c = 0; c < cols; ++c) {
      const double v = p[c] * (g[c] - dot_gp);
      dx[c] = accumulate ? dx[c] + v : v;
    }
  }
}

}  // namespace vkvit::ops::ref
