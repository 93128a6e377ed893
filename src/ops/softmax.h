// Softmax over the last axis of a (rows, cols) matrix, forward and backward; attention's
// probabilities use it in place, and it serves any other row-wise softmax.
// Forward: out[r, :] = softmax(in[r, :]) (PyTorch torch.softmax(x, dim=-1)), max-subtracted so
// that large logits do not overflow. Backward: din[r, c] (+)= p[r, c] * (dout[r, c] - sum_j dout[r, j] p[r, j]).
// One workgroup per row, or one row per invocation for short rows (cols <= 32; the launcher
// picks, VKVIT_SOFTMAX_SHORT_ROW overrides the limit for tests); any cols works (13, 197, 1024, ...), with rows split into dispatches
// that fit maxStorageBufferRange. out may be the same range as in, and din the same as dout
// (with accumulate = false): every element is read and written by the same shader lane.
// Needs subgroup arithmetic in compute shaders (every Vulkan 1.2 GPU we target and lavapipe).
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// out = softmax(in) along cols.
void softmax_forward(vk::Recorder& rec, const vk::View& out /* (rows, cols) */, const vk::View& in /* (rows, cols) */,
                     uint64_t rows, uint32_t cols);

// din += vjp (accumulate = true, the llm.c convention), or din = vjp (accumulate = false).
// probs is the forward output.
void softmax_backward(vk::Recorder& rec, const vk::View& din /* (rows, cols) */,
                      const vk::View& probs /* (rows, cols) */, const vk::View& dout /* (rows, cols) */,
                      uint64_t rows, uint32_t cols, bool accumulate = true);

namespace ref {
void softmax_forward(double* out /* (rows, cols) */, const double* in /* (rows, cols) */, uint64_t rows, uint32_t cols);
void softmax_backward(double* din /* (rows, cols) */, const double* probs /* (rows, cols) */,
                      const double* dout /* (rows, cols) */, uint64_t rows, uint32_t cols, bool accumulate = true);
}  // namespace ref

}  // namespace vkvit::ops
