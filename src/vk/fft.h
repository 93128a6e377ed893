// Batched 2D real FFTs on the GPU, through VkFFT: the transform of the global-filter token mixer
// (GFNet, Rao et al. 2021: X = rfft2(x); Y = X * K; y = irfft2(Y), over each channel's h x w grid).
//
// Layout. A plan transforms `batch` independent, contiguous grids of h rows by w columns:
//   real      (batch, h, w)          floats, row-major, no padding
//   spectrum  (batch, h, w/2 + 1)    complex numbers as interleaved (re, im) float pairs
// i.e. spectrum[n][ky][kx] = sum_{y,x} real[n][y][x] * exp(-2*pi*i*(ky*y/h + kx*x/w)), kx <= w/2,
// the same half spectrum as numpy/torch rfft2. For tokens (B, h, w, D) the mixer needs the
// channels-first order (B, D, h, w), batch = B*D: VkFFT 1.2.26 can only skip (not batch over) the
// innermost axis, and not for R2C, so a channels-last layout needs a transpose around the FFT.
//
// Normalization. FftNorm::backward (default) matches torch.fft's default "backward" norm: the
// forward is unscaled, the inverse divides by h*w, so inverse(forward(x)) == x. FftNorm::none
// leaves the inverse unscaled (VkFFT's own default): inverse(forward(x)) == h*w * x, for callers that
// fold 1/(h*w) into a filter. The inverse (C2R) equals torch.fft.irfft2 for any spectrum, Hermitian
// or not: after its ky transform, irfft2 keeps only the real part of the columns kx = 0 and (even
// w) kx = w/2. VkFFT's even-length C2R lets their imaginary parts leak instead, so inverse() first
// replaces those two columns by their Hermitian part along ky (shaders/fft_hermitian_columns.comp),
// which is what the real part keeps. A global filter's product spectrum is not Hermitian there.
//
// Binding. A plan is compiled (GLSL generated and compiled by glslang, pipelines created) for its two
// views at construction, which takes tens to hundreds of milliseconds: create plans once, next to
// the arena allocations they transform. Views cannot be re-bound: VkFFT would rewrite its
// descriptor sets in place, which is invalid while a submitted command buffer still uses them.
// A mixer with different input and output buffers makes a forward-only and an inverse-only plan.
// The views' buffers must outlive the plan, and the plan must outlive every submission that
// recorded it (call Recorder::wait() before destroying it).
//
// Side effects. forward() leaves `real` intact. inverse() overwrites `spectrum` as scratch (VkFFT
// transforms the h axis in place before the C2R pass), then writes `real`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "vk/memory.h"

namespace vkvit::vk {

class Context;
class Recorder;

struct FftShape {
  uint64_t batch = 1;  // N independent grids (B*D for the mixer)
  uint64_t h = 1;      // rows
  uint64_t w = 1;      // columns, the real-to-complex axis

  uint64_t spectrum_w() const { return w / 2 + 1; }
  uint64_t real_floats() const { return batch * h * w; }
  uint64_t spectrum_floats() const { return batch * h * spectrum_w() * 2; }
  std::string str() const;  // "batch 3 of 7x9 (h x w)"
};

enum class FftNorm {
  backward,  // inverse scaled by 1/(h*w): torch.fft default
  none,      // inverse unscaled
};

enum class FftDirections {
  both,
  forward_only,  // compiles half the kernels; inverse() throws
  inverse_only,  // forward() throws
};

class Fft2d {
 public:
  // real: (batch, h, w) floats; spectrum: (batch, h, w/2+1) complex. Both views may start at any
  // offset that is a multiple of 8 bytes (arena allocations are) and may be larger than needed.
  Fft2d(Context& ctx, const FftShape& shape, const View& real, const View& spectrum,
        FftNorm norm = FftNorm::backward, FftDirections directions = FftDirections::both);
  ~Fft2d();
  Fft2d(const Fft2d&) = delete;
  Fft2d& operator=(const Fft2d&) = delete;

  // R2C: spectrum = rfft2(real). Recorded into `rec` with hazard tracking on both views.
  void forward(Recorder& rec);
  // C2R: real = irfft2(spectrum) with the plan's normalization; clobbers spectrum.
  void inverse(Recorder& rec);

  const FftShape& shape() const { return shape_; }
  FftNorm norm() const { return norm_; }

 private:
  struct Impl;
  Context& ctx_;
  FftShape shape_;
  FftNorm norm_;
  FftDirections directions_;
  View real_;
  View spectrum_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vkvit::vk
