// LayerNorm launchers: one subgroup per row for the row-local work (forward, din), and a
// column-tile kernel for dgamma/dbeta. Rows are split into chunks so that no (rows, D) binding
// exceeds maxStorageBufferRange; the column kernel accumulates chunk by chunk (fixed order).
#include "ops/layernorm.h"

#include <algorithm>

#include "ops/launch.h"
#include "vk/error.h"

namespace vkvit::ops {

namespace {
struct LayerNormPush {
  uint32_t M, D;
  float eps;
};
static_assert(sizeof(LayerNormPush) == 12);

struct LayerNormBackwardPush {
  uint32_t M, D;
};
static_assert(sizeof(LayerNormBackwardPush) == 8);

// Column groups (of vec_width columns) per workgroup of the dgamma/dbeta kernel; with 256
// invocations, 16 row lanes.
constexpr uint32_t kColumnTile = 16;
constexpr uint32_t kColumnGroup = 256;  // <= the shader's lane_dgamma / lane_dbeta size

// One subgroup per row. Rows per workgroup: 4 (a common warp-per-row layout on GPUs). The shader
// derives the same count from gl_SubgroupSize, which equals the reported subgroupSize for our
// SPIR-V 1.5 shaders (a varying size is only allowed for SPIR-V 1.6 or an opt-in flag).
constexpr uint32_t kRowsPerGroup = 4;

// Floats per shader access: vec4 when every row starts 16-byte aligned (all ViT widths).
uint32_t vec_width(uint32_t D) { return D % 4 == 0 ? 4 : 1; }

uint32_t subgroup_size(const vk::Context& ctx) { return std::max<uint32_t>(ctx.info().subgroup_size, 1); }
// Accesses per lane that hold a whole row of D columns in registers (the forward reads its row
// once instead of three times: on lavapipe every storage-buffer read is a loop over the lanes), or
// 0 when that would take more than 32 (rows are then read once per pass).
uint32_t cached_accesses(const vk::Context& ctx, uint32_t D) {
  const uint32_t per_lane = div_up(D / vec_width(D), subgroup_size(ctx));
  return per_lane <= 32 ? per_lane : 0;
}
}  // namespace

void layernorm_forward(vk::Recorder& rec, const vk::View& out, const vk::View& mean, const vk::View& rstd,
                       const vk::View& in, const vk::View& gamma, const vk::View& beta, uint64_t M, uint32_t D,
                       float eps) {
  if (M == 0 || D == 0) return;
  const uint32_t wg = kRowsPerGroup * subgroup_size(rec.context());
  const uint32_t cached = cached_accesses(rec.context(), D);
  const vk::Kernel& k = rec.context().pipelines().get("layernorm", 6, sizeof(LayerNormPush), {wg, vec_width(D), cached});
  for_each_chunk(rec.context(), M, uint64_t(D) * 4, [&](uint64_t first, uint64_t rows) {
    const LayerNormPush push{static_cast<uint32_t>(rows), D, eps};
    rec.dispatch(k,
                 {out.slice(first * D, rows * D), mean.slice(first, rows), rstd.slice(first, rows),
                  in.slice(first * D, rows * D), gamma.slice(0, D), beta.slice(0, D)},
                 push, rec.groups_1d(div_up(rows, kRowsPerGroup)), "layernorm");
  });
}

void layernorm_backward(vk::Recorder& rec, const vk::View& din, const vk::View& dgamma, const vk::View& dbeta,
                        const vk::View& mean, const vk::View& rstd, const vk::View& in, const vk::View& dout,
                        const vk::View& gamma, uint64_t M, uint32_t D) {
  if (M == 0 || D == 0) return;
  const uint32_t wg = kRowsPerGroup * subgroup_size(rec.context());
  const vk::Kernel& rows_k =
      rec.context().pipelines().get("layernorm_backward", 8, sizeof(LayerNormBackwardPush), {wg, 0, kColumnTile, vec_width(D), cached_accesses(rec.context(), D)});
  const uint32_t vec = vec_width(D);
  const vk::Kernel& cols_k = rec.context().pipelines().get("layernorm_backward", 8, sizeof(LayerNormBackwardPush),
                                                           {kColumnGroup, 1, kColumnTile, vec, 0});
  for_each_chunk(rec.context(), M, uint64_t(D) * 4, [&](uint64_t first, uint64_t rows) {
    const LayerNormBackwardPush push{static_cast<uint32_t>(rows), D};
    const std::initializer_list<vk::View> views = {
        din.slice(first * D, rows * D), dgamma.slice(0, D),        dbeta.slice(0, D),
        mean.slice(first, rows),        rstd.slice(first, rows),   in.slice(first * D, rows * D),
        dout.slice(first * D, rows * D), gamma.slice(0, D)};
    rec.dispatch(rows_k, views, push, rec.groups_1d(div_up(rows, kRowsPerGroup)), "layernorm_backward");
    rec.dispatch(cols_k, views, push, rec.groups_1d(div_up(D / vec, kColumnTile)), "layernorm_backward_params");
  });
}

}  // namespace vkvit::ops
