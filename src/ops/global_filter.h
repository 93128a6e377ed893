// The kernels of the global-filter token mixer (GFNet, Rao et al. 2021) around VkFFT's 2D real
// transforms (vk/fft.h); the mixer itself is model/global_filter.h.
//   forward:  y = irfft2(rfft2(x) * K)          per image and channel, over the h x w patch grid
//   backward: dx += irfft2(rfft2(dy) * conj(K)),
//             dK += sum_b c(kx) / (h w) * rfft2(dy) * conj(rfft2(x))
// with torch.fft's default ("backward") normalization, which equals GFNet's ortho rfft2 followed
// by ortho irfft2. c(kx) is 1 for the half-spectrum columns stored once (kx = 0, and kx = w/2 for
// even w) and 2 for the rest, whose mirror images the half spectrum leaves implied.
// Layouts: tokens (B, T, D) with T = h*w + 1 (token 0 is the cls token, not mixed); grids
// (B, D, h, w) real; spectra (B, D, h, wc) complex as (re, im) pairs, wc = w/2 + 1; the filter K
// (h, wc, D) complex, stored as GFNet's complex_weight (h, wc, D, 2).
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

struct GridShape {
  uint32_t batch = 1, D = 1, h = 1, w = 1;
  uint32_t P() const { return h * w; }            // patch positions
  uint32_t T() const { return h * w + 1; }        // tokens, cls included
  uint32_t wc() const { return w / 2 + 1; }       // half-spectrum columns
  uint32_t F() const { return h * wc(); }         // frequencies per channel
};

// grids (B, D, h, w) = the patch tokens of tokens (B, T, D), channels first.
void global_filter_gather(vk::Recorder& rec, const vk::View& grids, const vk::View& tokens, const GridShape& s);
// tokens (B, T, D) = grids transposed back, cls token 0; accumulate: tokens += instead (cls unchanged).
void global_filter_scatter(vk::Recorder& rec, const vk::View& tokens, const vk::View& grids, const GridShape& s,
                           bool accumulate);
// out (B, D, h, wc) = spectrum * K, or * conj(K). out must not overlap spectrum unless it is the same range.
void global_filter_multiply(vk::Recorder& rec, const vk::View& out, const vk::View& spectrum, const vk::View& filter,
                            const GridShape& s, bool conjugate);
// dK (h, wc, D) += sum over the batch of c(kx) / (h w) * G * conj(X); G = rfft2(dy), X = rfft2(x).
void global_filter_grad(vk::Recorder& rec, const vk::View& dfilter, const vk::View& g, const vk::View& x,
                        const GridShape& s);

namespace ref {
// Double-precision references by the DFT definition (O((hw)^2) per grid; small grids only).
// y (B, T, D) = the filter applied to the patch tokens of x (B, T, D); y's cls rows are 0.
void global_filter_forward(double* y, const double* x, const double* filter, const GridShape& s);
// dx (B, T, D) += and dfilter (h, wc, D, 2) += the gradients of sum(y * dy).
void global_filter_backward(double* dx, double* dfilter, const double* dy, const double* x, const double* filter,
                            const GridShape& s);
}  // namespace ref

}  // namespace vkvit::ops
