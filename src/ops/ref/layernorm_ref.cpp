// Plain C++ reference for LayerNorm (PyTorch nn.LayerNorm, biased variance), in double precision.
#include <cmath>

#include "ops/layernorm.h"

namespace vkvit::ops::ref {

void layernorm_forward(double* out, double* mean, double* rstd, const double* in, const double* gamma,
                       const double* beta, uint64_t M, uint64_t D, double eps) {
  for (uint64_t r = 0; r < M; ++r) {
    const double* x = in + r * D;
    double s = 0;
    for (uint64_t c = 0; c < D; ++c) s += x[c];
    const double mu = s / D;
    double q = 0;
    for (uint64_t c = 0; c < D; ++c) q += (x[c] - mu) * (x[c] - mu);
    const double rs = 1.0 / std::sqrt(q / D + eps);
    for (uint64_t c = 0; c < D; ++c) out[r * D + c] = (x[c] - mu) * rs * gamma[c] + beta[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

void layernorm_backward(double* din, double* dgamma, double* dbeta, const double* mean, const double* rstd,
                        const double* in, const double* dout, const double* gamma, uint64_t M, uint64_t D) {
  for (uint64_t r = 0; r < M; ++r) {
    const double* x = in + r * D;
    const double* dy = dout + r * D;
    double sg = 0, sgx = 0;  // sum(g), sum(g * xhat) with g = dy * gamma
    for (uint64_t c = 0; c < D; ++c) {
      const double xhat = (x[c] - mean[r]) * rstd[r];
      sg += dy[c] * gamma[c];
      sgx += dy[c] * gamma[c] * xhat;
      dgamma[c] += dy[c] * xhat;
      dbeta[c] += dy[c];
    }
    sg /= D;
    sgx /= D;
    for (uint64_t c = 0; c < D; ++c) {
      const double xhat = (x[c] - mean[r]) * rstd[r];
      din[r * D + c] += rstd[r] * (dy[c] * gamma[c] - sg - xhat * sgx);
    }
  }
}

}  // namespace vkvit::ops::ref
