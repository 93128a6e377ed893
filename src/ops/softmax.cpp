// Launchers for shaders/softmax.comp and shaders/softmax_backward.comp (one workgroup per row).
#include "ops/softmax.h"

#include <string>

#include "ops/launch.h"
#include "vk/error.h"

namespace vkvit::ops {

namespace {

struct SoftmaxPush {
  uint32_t rows;
  uint32_t cols;
};
static_assert(sizeof(SoftmaxPush) == 8);

struct SoftmaxBackwardPush {
  uint32_t rows;
  uint32_t cols;
  uint32_t accumulate;
};
static_assert(sizeof(SoftmaxBackwardPush) == 12);

// Lanes per row: enough that short rows (N = 50, 197) keep most lanes busy and long rows are
// read in few strides. Any value works: the shaders fold whatever subgroups the device forms.
uint32_t workgroup_size(uint32_t cols) {
  if (cols <= 64) return 32;
  if (cols <= 256) return 64;
  return 128;
}

void require_subgroups(const vk::Context& ctx, const char* op) {
  const auto& info = ctx.info();
  const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
  if (!info.subgroup_in_compute || (info.subgroup_ops & need) != need)
    throw Error(std::string(op) + " needs subgroup arithmetic in compute shaders, which " + info.name +
                " does not offer (it reports: " + info.subgroup_ops_string() + "); pick another device with VKVIT_DEVICE");
}

// Calls fn(first_row, row_count) over chunks whose bindings fit one storage-buffer range.
template <class Fn>
void for_each_row_chunk(const vk::Context& ctx, uint64_t rows, uint32_t cols, const char* op, Fn&& fn) {
  const uint64_t per_chunk = items_per_chunk(ctx, {cols});
  if (per_chunk == 0)
    throw Error(std::string(op) + ": a row of " + std::to_string(cols) + " floats does not fit one storage binding (" +
                vk::format_bytes(ctx.info().max_storage_buffer_range) + ") on " + ctx.info().name);
  for (uint64_t first = 0; first < rows; first += per_chunk) fn(first, std::min(per_chunk, rows - first));
}

}  // namespace

void softmax_forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint64_t rows, uint32_t cols) {
  if (rows == 0 || cols == 0) return;
  vk::Context& ctx = rec.context();
  require_subgroups(ctx, "softmax");
  const vk::Kernel& k = ctx.pipelines().get("softmax", 2, sizeof(SoftmaxPush), {workgroup_size(cols)});
  for_each_row_chunk(ctx, rows, cols, "softmax", [&](uint64_t first, uint64_t count) {
    SoftmaxPush push{static_cast<uint32_t>(count), cols};
    rec.dispatch(k, {out.slice(first * cols, count * cols), in.slice(first * cols, count * cols)}, push,
                 rec.groups_1d(count), "softmax");
  });
}

void softmax_backward(vk::Recorder& rec, const vk::View& din, const vk::View& probs, const vk::View& dout,
                      uint64_t rows, uint32_t cols, bool accumulate) {
  if (rows == 0 || cols == 0) return;
  vk::Context& ctx = rec.context();
  require_subgroups(ctx, "softmax_backward");
  const vk::Kernel& k =
      ctx.pipelines().get("softmax_backward", 3, sizeof(SoftmaxBackwardPush), {workgroup_size(cols)});
  for_each_row_chunk(ctx, rows, cols, "softmax_backward", [&](uint64_t first, uint64_t count) {
    SoftmaxBackwardPush push{static_cast<uint32_t>(count), cols, accumulate ? 1u : 0u};
    const uint64_t f = first * cols, n = count * cols;
    rec.dispatch(k, {din.slice(f, n), probs.slice(f, n), dout.slice(f, n)}, push, rec.groups_1d(count),
                 "softmax_backward");
  });
}

}  // namespace vkvit::ops
