// Helpers that every op launcher shares: workgroup sizes and splitting elementwise work so that
// no binding exceeds maxStorageBufferRange and no dispatch exceeds maxComputeWorkGroupCount.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <string>

#include "base/error.h"
#include "ops/kernel_choice.h"
#include "vk/context.h"
#include "vk/recorder.h"
#include "vk/shader_ids.h"

namespace vkvit::ops {

// Invocations per workgroup for elementwise shaders (spec constant 0 = local_size_x).
constexpr uint32_t kElementwiseGroup = 256;

// Throws, naming `op`, the missing operations and what the device reports, unless compute shaders
// on this device have every subgroup operation in `need` (VK_SUBGROUP_FEATURE_*_BIT). `hint`
// ends the message (what to do instead).
inline void require_subgroup_ops(const vk::DeviceInfo& info, VkSubgroupFeatureFlags need, const std::string& op,
                                 const std::string& hint = "pick another device with VKVIT_DEVICE") {
  if (info.has_subgroup_ops(need)) return;
  vk::DeviceInfo wanted;
  wanted.subgroup_ops = need;
  throw Error(op + " needs subgroup operations (" + wanted.subgroup_ops_string() + ") in compute shaders, which " +
              info.name + " does not offer (it reports: " +
              (info.subgroup_in_compute ? info.subgroup_ops_string() : std::string("none in compute")) + "); " + hint);
}

// Whether elementwise kernels may move four floats as two 64-bit components (common/wide.glsl):
// the kernel choice says so (shaderInt64 on the device kernels are chosen for, and Tuning::wide
// on: tests of the one-float paths turn it off), and the device at hand can load the module.
inline bool wide_accesses(const vk::Context& ctx) { return kernel_choice(ctx).elementwise.wide && ctx.info().int64; }
// wide_accesses, and every one of `views` starts 16-byte aligned (a u64vec2 element each).
inline bool wide_views(const vk::Context& ctx, std::initializer_list<vk::View> views) {
  for (const vk::View& v : views)
    if (v.offset % 16 != 0) return false;
  return wide_accesses(ctx);
}

// Whether `v` can be bound as an RGBA32F uniform texel buffer: whole 16-byte texels from a 16-byte
// aligned offset, no more than the device's maxTexelBufferElements.
inline bool texel_view_fits(const vk::DeviceInfo& info, const vk::View& v) {
  const uint64_t align = std::max<uint64_t>(info.min_texel_offset_alignment, 16);
  return v.offset % align == 0 && v.size % 16 == 0 && v.size / 16 <= info.max_texel_buffer_elements;
}

inline uint32_t div_up(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// Calls fn(first, count) over [0, n) in chunks whose byte size (count * bytes_per_element)
// fits one storage-buffer binding. Chunk starts are multiples of 64 elements so sub-views stay
// aligned for any device's minStorageBufferOffsetAlignment (at most 256 bytes).
template <class Fn>
void for_each_chunk(const vk::Context& ctx, uint64_t n, uint64_t bytes_per_element, Fn&& fn) {
  const uint64_t max_count = std::max<uint64_t>(ctx.info().max_storage_buffer_range / bytes_per_element / 64 * 64, 64);
  for (uint64_t first = 0; first < n; first += max_count) fn(first, std::min(max_count, n - first));
}

// How many consecutive items a chunk may hold when each item spans floats_per_item[t] floats of
// tensor t (items back to back in every tensor): every tensor's chunk fits one binding
// (maxStorageBufferRange) and every chunk start stays aligned for minStorageBufferOffsetAlignment,
// so launchers can slice all tensors at the same item boundaries. 0 when not even the smallest
// aligned count fits; the launcher then reports which op and shape are too large.
inline uint64_t items_per_chunk(const vk::Context& ctx, std::initializer_list<uint64_t> floats_per_item) {
  const uint64_t align_floats = std::max<uint64_t>(ctx.info().min_storage_offset_alignment / 4, 1);
  uint64_t step = 1, most = UINT64_MAX;
  for (uint64_t f : floats_per_item) {
    if (f == 0) continue;
    step = std::lcm(step, align_floats / std::gcd(align_floats, f));
    most = std::min(most, ctx.info().max_storage_buffer_range / 4 / f);
  }
  return most / step * step;
}

}  // namespace vkvit::ops
