// 2D real FFT (VkFFT through vk::Fft2d): the R2C half spectrum against a direct double-precision
// DFT, the C2R round trip with each normalization, views at offsets inside larger buffers, and
// forward + inverse recorded into one submission (hazard tracking around Recorder::external).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/error.h"
#include "harness.h"
#include "vk/fft.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

// numpy.fft.rfft2 of each (h, w) grid, by the definition: X[n][ky][kx] for kx <= w/2, as
// interleaved (re, im). O((hw)^2) per grid, fine for the sizes here.
std::vector<double> rfft2_direct(const std::vector<float>& x, const vk::FftShape& s) {
  const uint64_t wc = s.spectrum_w();
  std::vector<double> out(s.spectrum_floats());
  const double two_pi = 2.0 * M_PI;
  for (uint64_t n = 0; n < s.batch; ++n)
    for (uint64_t ky = 0; ky < s.h; ++ky)
      for (uint64_t kx = 0; kx < wc; ++kx) {
        double re = 0, im = 0;
        for (uint64_t y = 0; y < s.h; ++y)
          for (uint64_t xx = 0; xx < s.w; ++xx) {
            // Reduce the phase index modulo the period first so the angle stays exact-ish.
            const double a = -two_pi * (double((ky * y) % s.h) / double(s.h) + double((kx * xx) % s.w) / double(s.w));
            const double v = x[(n * s.h + y) * s.w + xx];
            re += v * std::cos(a);
            im += v * std::sin(a);
          }
        const uint64_t i = ((n * s.h + ky) * wc + kx) * 2;
        out[i] = re;
        out[i + 1] = im;
      }
  return out;
}

std::vector<double> scaled(const std::vector<float>& v, double k) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = k * double(v[i]);
  return r;
}

}  // namespace

TEST_CASE("fft2d R2C matches a direct DFT and C2R returns the input", "[fft][gpu]") {
  const vk::FftShape shapes[] = {{3, 7, 7}, {3, 5, 9}, {3, 8, 6}};  // odd x odd, odd h with odd w, even x even
  uint32_t seed = 100;
  for (const vk::FftShape& s : shapes) {
    SECTION(s.str()) {
      const auto x = random_floats(s.real_floats(), seed);
      DeviceTensor real(x), spectrum(s.spectrum_floats());
      vk::Fft2d fft(ctx(), s, real.view(), spectrum.view());  // FftNorm::backward

      vk::Recorder rec(ctx());
      fft.forward(rec);
      rec.submit_and_wait();
      // Each bin sums h*w products of |x| < 1 with unit twiddles: fp32 rounding over the
      // O(log(hw)) butterfly stages, plus fp32 sin/cos twiddles, gives an absolute error of a few
      // ulp of the largest partial sum (<= h*w = 49 here); 2e-5 absolute is ~5 ulp of 49. Worst
      // measured on lavapipe: 1.7e-6 (7x7), 8e-7 (5x9), 7e-7 (8x6). No rtol: near-zero bins carry
      // the same absolute error as large ones.
      require_close(spectrum.read(), rfft2_direct(x, s), 2e-5, 0, "rfft2 " + s.str());
      // The forward reads the real grids only.
      CHECK(real.read() == x);

      fft.inverse(rec);
      rec.submit_and_wait();
      // backward norm: irfft2(rfft2(x)) = x. Two fp32 transforms of O(1) values, then the 1/(h*w)
      // scale: a few ulp of 1. Worst measured: 3.6e-7 (7x7), 1.8e-7 (5x9, 8x6); 2e-6 is ~5x that.
      require_close(real.read(), scaled(x, 1.0), 2e-6, 0, "irfft2(rfft2(x)) " + s.str());
    }
    ++seed;
  }
}

TEST_CASE("fft2d unnormalized inverse on views at offsets, forward and inverse in one submission", "[fft][gpu]") {
  const vk::FftShape s{3, 5, 9};
  const auto x = random_floats(s.real_floats(), 7);
  // Both views start inside larger buffers, as arena allocations do; the guard bytes around them
  // must survive.
  const uint64_t real_off = 64, spec_off = 256, guard = 128;
  const uint64_t real_bytes = s.real_floats() * 4, spec_bytes = s.spectrum_floats() * 4;
  const auto real_init = random_floats((real_off + real_bytes + guard) / 4, 8);
  const auto spec_init = random_floats((spec_off + spec_bytes + guard) / 4, 9);
  DeviceTensor real_buf(real_init), spec_buf(spec_init);
  const vk::View real = real_buf.view().bytes(real_off, real_bytes);
  const vk::View spectrum = spec_buf.view().bytes(spec_off, spec_bytes);
  ctx().upload(real, x.data(), real_bytes);

  vk::Fft2d fft(ctx(), s, real, spectrum, vk::FftNorm::none);
  vk::Recorder rec(ctx());
  fft.forward(rec);
  fft.inverse(rec);  // reads the spectrum the forward wrote: Recorder must put a barrier between
  rec.submit_and_wait();

  // none: irfft2 unscaled, so the round trip is h*w * x. The round-trip bound above times h*w = 45
  // (measured worst 8.1e-6 against 9e-5).
  const double hw = double(s.h * s.w);
  std::vector<float> got(s.real_floats());
  ctx().download(real, got.data(), real_bytes);
  require_close(got, scaled(x, hw), 2e-6 * hw, 0, "unnormalized round trip at offsets");

  // Nothing outside the two views changed.
  const auto real_after = real_buf.read(), spec_after = spec_buf.read();
  const uint64_t r0 = real_off / 4, r1 = (real_off + real_bytes) / 4;
  const uint64_t c0 = spec_off / 4, c1 = (spec_off + spec_bytes) / 4;
  for (uint64_t i = 0; i < real_after.size(); ++i)
    if (i < r0 || i >= r1) REQUIRE(real_after[i] == real_init[i]);
  for (uint64_t i = 0; i < spec_after.size(); ++i)
    if (i < c0 || i >= c1) REQUIRE(spec_after[i] == spec_init[i]);
}

TEST_CASE("fft2d forward-only and inverse-only plans: transform into a separate output", "[fft][gpu]") {
  // The mixer's pattern: X = rfft2(x) by one plan, y = irfft2(X) into another buffer by a second.
  const vk::FftShape s{3, 8, 6};
  const auto x = random_floats(s.real_floats(), 11);
  const auto y0 = random_floats(s.real_floats(), 12);
  DeviceTensor in(x), out(y0), spectrum(s.spectrum_floats());
  vk::Fft2d fwd(ctx(), s, in.view(), spectrum.view(), vk::FftNorm::backward, vk::FftDirections::forward_only);
  vk::Fft2d inv(ctx(), s, out.view(), spectrum.view(), vk::FftNorm::backward, vk::FftDirections::inverse_only);
  vk::Recorder rec(ctx());
  CHECK_THROWS_AS(fwd.inverse(rec), Error);
  CHECK_THROWS_AS(inv.forward(rec), Error);
  fwd.forward(rec);
  inv.inverse(rec);
  rec.submit_and_wait();
  // Same bound as the round trip above.
  require_close(out.read(), scaled(x, 1.0), 2e-6, 0, "irfft2(rfft2(x)) through two plans");
  CHECK(in.read() == x);
}

TEST_CASE("fft2d C2R equals irfft2 on spectra that are not Hermitian", "[fft][gpu]") {
  // torch.fft.irfft2 keeps the real part of the self-mirrored columns (kx = 0, and kx = w/2 for
  // even w) after the ky transform; a product spectrum (the global filter's) is not Hermitian
  // there, so the imaginary parts must not leak into the output.
  const vk::FftShape shapes[] = {{2, 4, 6}, {2, 5, 8}, {1, 7, 7}, {2, 6, 5}, {1, 3, 2}};
  uint32_t seed = 300;
  for (const vk::FftShape& s : shapes) {
    SECTION(s.str()) {
      const auto z = random_floats(s.spectrum_floats(), seed++);
      DeviceTensor spectrum(z), real(s.real_floats());
      vk::Fft2d inv(ctx(), s, real.view(), spectrum.view(), vk::FftNorm::backward, vk::FftDirections::inverse_only);
      vk::Recorder rec(ctx());
      inv.inverse(rec);
      rec.submit_and_wait();
      // By the definition: y = 1/(h w) sum over the half spectrum of c(kx) Re(Z e^{+i theta}),
      // c = 1 for the self-mirrored columns and 2 for the others.
      const uint64_t wc = s.spectrum_w();
      std::vector<double> ref(s.real_floats(), 0.0);
      for (uint64_t n = 0; n < s.batch; ++n)
        for (uint64_t y = 0; y < s.h; ++y)
          for (uint64_t x = 0; x < s.w; ++x) {
            double v = 0;
            for (uint64_t ky = 0; ky < s.h; ++ky)
              for (uint64_t kx = 0; kx < wc; ++kx) {
                const double c = (kx == 0 || 2 * kx == s.w) ? 1.0 : 2.0;
                const double a = 2.0 * M_PI * (double((ky * y) % s.h) / double(s.h) + double((kx * x) % s.w) / double(s.w));
                const uint64_t i = ((n * s.h + ky) * wc + kx) * 2;
                v += c * (z[i] * std::cos(a) - z[i + 1] * std::sin(a));
              }
            ref[(n * s.h + y) * s.w + x] = v / double(s.h * s.w);
          }
      require_close(real.read(), ref, 2e-6, 1e-5, "irfft2 of a random half spectrum, " + s.str());
    }
  }
}

TEST_CASE("fft2d rejects views that are too small, naming the shape", "[fft][gpu]") {
  const vk::FftShape s{2, 4, 6};
  DeviceTensor real(s.real_floats() - 1), spectrum(s.spectrum_floats());
  CHECK_THROWS_WITH(vk::Fft2d(ctx(), s, real.view(), spectrum.view()),
                    Catch::Contains("batch 2 of 4x6") && Catch::Contains("real view"));
  CHECK_THROWS_AS(vk::Fft2d(ctx(), vk::FftShape{0, 4, 6}, real.view(), spectrum.view()), Error);
}
