// Launchers for shaders/softmax.comp and shaders/softmax_backward.comp (one workgroup per row) and
// their short-row twins shaders/softmax_rows*.comp (one row per invocation), picked by row length.
// Views may start at any float: bindings are aligned down and the shaders skip the lead.
// Subgroup size: any. The row reductions (common/softmax_reduce.glsl) add one partial per
// subgroup over gl_NumSubgroups, so 4, 8, 16 (lavapipe) and 32, 64 (GPUs) give the same layout and
// nothing is pinned; the short-row twins use no subgroup operations.
#include "ops/softmax.h"

#include <algorithm>
#include <string>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {

struct SoftmaxPush {
  uint32_t rows;
  uint32_t cols;
  uint32_t out_base, in_base;  // floats from the start of each binding
};
static_assert(sizeof(SoftmaxPush) == 16);

struct SoftmaxBackwardPush {
  uint32_t rows;
  uint32_t cols;
  uint32_t accumulate;
  uint32_t din_base, probs_base, dout_base;  // floats from the start of each binding
};
static_assert(sizeof(SoftmaxBackwardPush) == 24);

// Lanes per row: enough that short rows (N = 50, 197) keep most lanes busy and long rows are
// read in few strides. Any value works: the shaders fold whatever subgroups the device forms.
uint32_t workgroup_size(uint32_t cols) {
  if (cols <= 64) return 32;
  if (cols <= 256) return 64;
  return 128;
}

// Rows up to this long run one row per invocation (shaders/softmax_rows*.comp), kRowsGroup rows
// per workgroup; longer rows keep one workgroup per row, whose lanes share the row's reads.
// Attention over 17 tokens (8704 rows per Fashion-MNIST step) paid a workgroup's fixed cost per
// row on lavapipe (BENCHMARKS.md, "small shapes"). A row per invocation reads its row serially,
// which a GPU's lanes do not coalesce, so the threshold stays short.
constexpr uint32_t kShortRow = 32;
constexpr uint32_t kRowsGroup = 64;

uint32_t short_row_limit(const vk::Context& ctx) { return ctx.tuning().softmax_short_row.value_or(kShortRow); }

void require_subgroups(const vk::Context& ctx, const char* op) {
  require_subgroup_ops(ctx.info(), VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, op);
}

// Views may start anywhere (attention hands over one image's probabilities, which starts wherever
// the previous image's N*N floats end): each binding starts at the view's offset aligned down to
// minStorageBufferOffsetAlignment, and the shader skips the `base` floats in front.
struct Bound {
  vk::View view;
  uint32_t base;  // floats
};
Bound bind(const vk::Context& ctx, const vk::View& v, uint64_t first, uint64_t count) {
  const vk::View s = v.slice(first, count);
  const uint64_t align = std::max<uint64_t>(ctx.info().min_storage_offset_alignment, 4);
  const uint64_t start = s.offset / align * align;
  return Bound{vk::View{s.buffer, start, s.offset - start + s.size}, static_cast<uint32_t>((s.offset - start) / 4)};
}

// Calls fn(first_row, row_count) over chunks whose bindings, with up to one alignment of lead,
// fit one storage-buffer range.
template <class Fn>
void for_each_row_chunk(const vk::Context& ctx, uint64_t rows, uint32_t cols, const char* op, Fn&& fn) {
  const uint64_t range = ctx.info().max_storage_buffer_range, align = ctx.info().min_storage_offset_alignment;
  const uint64_t per_chunk = range > align ? (range - align) / 4 / cols : 0;
  if (per_chunk == 0)
    throw Error(std::string(op) + ": a row of " + std::to_string(cols) + " floats does not fit one storage binding (" +
                vk::format_bytes(ctx.info().max_storage_buffer_range) + ") on " + ctx.info().name);
  for (uint64_t first = 0; first < rows; first += per_chunk) fn(first, std::min(per_chunk, rows - first));
}

}  // namespace

void softmax_forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint64_t rows, uint32_t cols) {
  if (rows == 0 || cols == 0) return;
  vk::Context& ctx = rec.context();
  const bool short_rows = cols <= short_row_limit(ctx);
  if (!short_rows) require_subgroups(ctx, "softmax");
  const vk::WorkgroupSpec spec{short_rows ? kRowsGroup : workgroup_size(cols)};
  const vk::Kernel& k = ctx.pipelines().get(short_rows ? shaders::softmax_rows : shaders::softmax, 2,
                                            sizeof(SoftmaxPush), spec);
  for_each_row_chunk(ctx, rows, cols, "softmax", [&](uint64_t first, uint64_t count) {
    const Bound o = bind(ctx, out, first * cols, count * cols), i = bind(ctx, in, first * cols, count * cols);
    SoftmaxPush push{static_cast<uint32_t>(count), cols, o.base, i.base};
    rec.dispatch(k, {o.view, i.view}, push, rec.groups_1d(short_rows ? div_up(count, kRowsGroup) : count), "softmax");
  });
}

void softmax_backward(vk::Recorder& rec, const vk::View& din, const vk::View& probs, const vk::View& dout,
                      uint64_t rows, uint32_t cols, bool accumulate) {
  if (rows == 0 || cols == 0) return;
  vk::Context& ctx = rec.context();
  const bool short_rows = cols <= short_row_limit(ctx);
  if (!short_rows) require_subgroups(ctx, "softmax_backward");
  const vk::WorkgroupSpec spec{short_rows ? kRowsGroup : workgroup_size(cols)};
  const vk::Kernel& k = ctx.pipelines().get(short_rows ? shaders::softmax_rows_backward : shaders::softmax_backward,
                                            3, sizeof(SoftmaxBackwardPush), spec);
  for_each_row_chunk(ctx, rows, cols, "softmax_backward", [&](uint64_t first, uint64_t count) {
    const uint64_t f = first * cols, n = count * cols;
    const Bound di = bind(ctx, din, f, n), pr = bind(ctx, probs, f, n), dout_b = bind(ctx, dout, f, n);
    SoftmaxBackwardPush push{static_cast<uint32_t>(count), cols, accumulate ? 1u : 0u, di.base, pr.base, dout_b.base};
    rec.dispatch(k, {di.view, pr.view, dout_b.view}, push,
                 rec.groups_1d(short_rows ? div_up(count, kRowsGroup) : count), "softmax_backward");
  });
}

}  // namespace vkvit::ops
