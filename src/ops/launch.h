// Helpers that every op launcher shares: workgroup sizes and splitting elementwise work so that
// no binding exceeds maxStorageBufferRange and no dispatch exceeds maxComputeWorkGroupCount.
#pragma once
#include <algorithm>
#include <cstdint>

#include "vk/context.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// Invocations per workgroup for elementwise shaders (spec constant 0 = local_size_x).
constexpr uint32_t kElementwiseGroup = 256;

inline uint32_t div_up(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// Calls fn(first, count) over [0, n) in chunks whose byte size (count * bytes_per_element)
// fits one storage-buffer binding. Chunk starts are multiples of 64 elements so sub-views stay
// aligned for any device's minStorageBufferOffsetAlignment (at most 256 bytes).
template <class Fn>
void for_each_chunk(const vk::Context& ctx, uint64_t n, uint64_t bytes_per_element, Fn&& fn) {
  const uint64_t max_count = std::max<uint64_t>(ctx.info().max_storage_buffer_range / bytes_per_element / 64 * 64, 64);
  for (uint64_t first = 0; first < n; first += max_count) fn(first, std::min(max_count, n - first));
}

}  // namespace vkvit::ops
