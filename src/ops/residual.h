// Residual connection: out = a + b. Its backward is a pass-through: the gradient of out flows
// unchanged into both branches, so the backward pass is accumulate(da, dout) and
// accumulate(db, dout) (or, when a branch's gradient buffer *is* dout, nothing for that branch).
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// out = a + b. out may be the same range as a or b (each element is read before it is written
// by the same invocation).
void residual_forward(vk::Recorder& rec, const vk::View& out /* (n) */, const vk::View& a /* (n) */,
                      const vk::View& b /* (n) */, uint64_t n);
// dst += src, elementwise: the residual backward for each branch, and gradient accumulation.
void accumulate(vk::Recorder& rec, const vk::View& dst /* (n) */, const vk::View& src /* (n) */, uint64_t n);

namespace ref {
void residual_forward(double* out, const double* a, const double* b, uint64_t n);
void accumulate(double* dst, const double* src, uint64_t n);
}  // namespace ref

}  // namespace vkvit::ops
