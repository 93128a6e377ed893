// Plain C++ reference for the global-filter mixer, in double precision: rfft2 and irfft2 by the
// DFT definition (O((hw)^2) per grid; small grids only) and the filter in between.
#include <cmath>
#include <vector>

#include "ops/global_filter.h"

namespace vkvit::ops::ref {
namespace {
// e^{-2 pi i (ky y / h + kx x / w)} with the phase reduced modulo the period first.
struct Twiddle {
  double re, im;
};
Twiddle twiddle(uint64_t ky, uint64_t y, uint64_t h, uint64_t kx, uint64_t x, uint64_t w) {
  const double a = -2.0 * M_PI * (double((ky * y) % h) / double(h) + double((kx * x) % w) / double(w));
  return {std::cos(a), std::sin(a)};
}

// The patch tokens of (B, T, D) as one grid (h, w) of channel d of image b.
std::vector<double> grid_of(const double* tokens, const GridShape& s, uint64_t b, uint64_t d) {
  std::vector<double> g(s.P());
  for (uint64_t p = 0; p < s.P(); ++p) g[p] = tokens[(b * s.T() + 1 + p) * s.D + d];
  return g;
}

// rfft2 of one grid: (h, wc) complex, interleaved.
std::vector<double> rfft2(const std::vector<double>& g, const GridShape& s) {
  std::vector<double> X(2ull * s.F(), 0.0);
  for (uint64_t ky = 0; ky < s.h; ++ky)
    for (uint64_t kx = 0; kx < s.wc(); ++kx) {
      double re = 0, im = 0;
      for (uint64_t y = 0; y < s.h; ++y)
        for (uint64_t x = 0; x < s.w; ++x) {
          const Twiddle t = twiddle(ky, y, s.h, kx, x, s.w);
          re += g[y * s.w + x] * t.re;
          im += g[y * s.w + x] * t.im;
        }
      X[2 * (ky * s.wc() + kx)] = re;
      X[2 * (ky * s.wc() + kx) + 1] = im;
    }
  return X;
}

// irfft2 with 1/(h w): the full spectrum implied by the half one (imaginary parts of the
// self-conjugate bins ignored, as torch.fft.irfft2 does).
std::vector<double> irfft2(const std::vector<double>& Z, const GridShape& s) {
  std::vector<double> g(s.P(), 0.0);
  for (uint64_t y = 0; y < s.h; ++y)
    for (uint64_t x = 0; x < s.w; ++x) {
      double v = 0;
      for (uint64_t ky = 0; ky < s.h; ++ky)
        for (uint64_t kx = 0; kx < s.wc(); ++kx) {
          const double c = (kx == 0 || 2 * kx == s.w) ? 1.0 : 2.0;
          const Twiddle t = twiddle(ky, y, s.h, kx, x, s.w);  // e^{-i theta}; we need e^{+i theta}
          const double zr = Z[2 * (ky * s.wc() + kx)], zi = Z[2 * (ky * s.wc() + kx) + 1];
          v += c * (zr * t.re + zi * t.im);  // Re(z * conj(t))
        }
      g[y * s.w + x] = v / double(s.P());
    }
  return g;
}

std::vector<double> times_filter(const std::vector<double>& X, const double* filter, const GridShape& s, uint64_t d,
                                 bool conjugate) {
  std::vector<double> Z(X.size());
  for (uint64_t f = 0; f < s.F(); ++f) {
    const double kr = filter[2 * (f * s.D + d)], ki = (conjugate ? -1 : 1) * filter[2 * (f * s.D + d) + 1];
    Z[2 * f] = X[2 * f] * kr - X[2 * f + 1] * ki;
    Z[2 * f + 1] = X[2 * f] * ki + X[2 * f + 1] * kr;
  }
  return Z;
}
}  // namespace

void global_filter_forward(double* y, const double* x, const double* filter, const GridShape& s) {
  for (uint64_t b = 0; b < s.batch; ++b) {
    for (uint64_t d = 0; d < s.D; ++d) y[(b * s.T()) * s.D + d] = 0.0;
    for (uint64_t d = 0; d < s.D; ++d) {
      const std::vector<double> out = irfft2(times_filter(rfft2(grid_of(x, s, b, d), s), filter, s, d, false), s);
      for (uint64_t p = 0; p < s.P(); ++p) y[(b * s.T() + 1 + p) * s.D + d] = out[p];
    }
  }
}

void global_filter_backward(double* dx, double* dfilter, const double* dy, const double* x, const double* filter,
                            const GridShape& s) {
  for (uint64_t b = 0; b < s.batch; ++b)
    for (uint64_t d = 0; d < s.D; ++d) {
      const std::vector<double> G = rfft2(grid_of(dy, s, b, d), s), X = rfft2(grid_of(x, s, b, d), s);
      const std::vector<double> back = irfft2(times_filter(G, filter, s, d, true), s);
      for (uint64_t p = 0; p < s.P(); ++p) dx[(b * s.T() + 1 + p) * s.D + d] += back[p];
      for (uint64_t f = 0; f < s.F(); ++f) {
        const uint64_t kx = f % s.wc();
        const double c = ((kx == 0 || 2 * kx == s.w) ? 1.0 : 2.0) / double(s.P());
        const double gr = G[2 * f], gi = G[2 * f + 1], xr = X[2 * f], xi = X[2 * f + 1];
        dfilter[2 * (f * s.D + d)] += c * (gr * xr + gi * xi);
        dfilter[2 * (f * s.D + d) + 1] += c * (gi * xr - gr * xi);
      }
    }
}

}  // namespace vkvit::ops::ref
