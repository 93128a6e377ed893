// GELU, exact erf form (PyTorch nn.GELU default, timm/torchvision ViT MLP activation).
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// out = gelu(in)
void gelu_forward(vk::Recorder& rec, const vk::View& out /* (n) */, const vk::View& in /* (n) */, uint64_t n);
// din += dout * gelu'(in)
void gelu_backward(vk::Recorder& rec, const vk::View& din /* (n) */, const vk::View& in /* (n) */,
                   const vk::View& dout /* (n) */, uint64_t n);

namespace ref {
void gelu_forward(double* out, const double* in, uint64_t n);
void gelu_backward(double* din, const double* in, const double* dout, uint64_t n);
}  // namespace ref

}  // namespace vkvit::ops
