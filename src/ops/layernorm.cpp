// LayerNorm launchers: one subgroup per row for the row-local work (forward, din; the backward's
// also sums dgamma/dbeta per column over a few rows), and a column-tile kernel that adds up those
// partial sums (or, for rows too wide for the registers, computes dgamma/dbeta itself). Rows are
// split into chunks so that no (rows, D) binding exceeds maxStorageBufferRange; the column kernel
// accumulates chunk by chunk (fixed order).
#include "ops/layernorm.h"

#include <algorithm>
#include <string>

#include "base/error.h"
#include "ops/kernel_choice.h"
#include "ops/launch.h"

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

// Mirrors the row kernels' constants, shaders/common/layernorm.glsl and layernorm_backward_rows.glsl:
// layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl), layout(constant_id = 1) VEC,
// layout(constant_id = 2) CACHED, layout(constant_id = 3) ROWS, layout(constant_id = 4) WIDE,
// layout(constant_id = 5) SUBGROUP, layout(constant_id = 6) PINNED.
struct RowsSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, uint32_t> vec;
  vk::SpecField<2, uint32_t> cached;
  vk::SpecField<3, uint32_t> rows;
  vk::SpecField<4, bool> wide;
  vk::SpecField<5, uint32_t> subgroup;
  vk::SpecField<6, bool> pinned;
  vk::SpecConstants to_spec() const {
    return vk::SpecConstants(workgroup_size, vec, cached, rows, wide, subgroup, pinned);
  }
};

// Mirrors common/layernorm_backward_params.glsl's layout(constant_id = 0) WORKGROUP_SIZE,
// layout(constant_id = 1) VEC and layout(constant_id = 4) WIDE (common/layernorm_backward.glsl),
// and layout(constant_id = 2) TILE_N.
struct ParamsSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, uint32_t> vec;
  vk::SpecField<2, uint32_t> tile_n;
  vk::SpecField<4, bool> wide;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, vec, tile_n, wide); }
};

// Column groups (of vec_width columns) per workgroup of the dgamma/dbeta kernel; with 256
// invocations, 16 row lanes.
constexpr uint32_t kColumnTile = 16;
constexpr uint32_t kColumnGroup = 256;  // <= the shader's lane_dgamma / lane_dbeta size

// One subgroup per block of rows (a row, or kRowsPerSubgroup rows, below). Blocks per workgroup:
// 4 (a common warp-per-row layout on GPUs). The launcher sizes the workgroup, the grid and the
// lanes' cached columns from the subgroup size the kernel device reports, and pins that size
// with full subgroups where the device can (all Vulkan 1.3 devices, lavapipe and SwiftShader
// included). The reported size does not promise the size that runs (Intel reports 32 and may run
// 8 or 16 without a pin), so the shaders read the size that runs: its subgroups share the
// workgroup's blocks out and fall back to the uncached loops when their lanes cannot hold the
// row (common/layernorm.glsl). Any size works: 4, 8, 16 on lavapipe; 32 and 64 give fewer cached
// columns per lane.
constexpr uint32_t kRowsPerGroup = 4;
// Rows per subgroup where a row fits the registers: the forward reads gamma and beta once for
// them, the backward's row pass gamma, and it writes one partial row of parameter-gradient sums
// (2 D floats) per kRowsPerSubgroup rows, so the scratch and the summing pass see 1/8 of the rows;
// M = 320 (the Fashion-MNIST model) still makes 10 workgroups.
constexpr uint32_t kRowsPerSubgroup = 8;

// Floats per shader access: vec4 when every row starts 16-byte aligned (all ViT widths).
uint32_t vec_width(uint32_t D) { return D % 4 == 0 ? 4 : 1; }

// The subgroup size the row kernels are sized for (kernel choice, ops/kernel_choice.h; a power of
// two, as Vulkan's sizes are).
uint32_t subgroup_size(const vk::Context& ctx) {
  const uint32_t size = kernel_choice(ctx).layernorm.subgroup_size;
  return (size & (size - 1)) == 0 ? size : 1;
}
// The row kernels' pin: the size subgroup_size() assumed, whole subgroups, where the kernel device
// can pin it. The pipeline cache also leaves it off where this device cannot (SubgroupPin).
vk::SubgroupPin row_subgroup_pin(const vk::Context& ctx) {
  const KernelChoice::LayerNorm choice = kernel_choice(ctx).layernorm;
  return choice.pinned && choice.subgroup_size == subgroup_size(ctx) ? choice.pin : vk::SubgroupPin{};
}
// The pin holds on this device: the size that runs is the assumed one, in full subgroups.
bool row_pin_holds(const vk::Context& ctx) {
  const vk::SubgroupPin pin = row_subgroup_pin(ctx);
  return pin.size != 0 && ctx.info().can_pin_subgroup_size(pin.size) && ctx.info().full_subgroups;
}
// The row kernels' workgroup: kRowsPerGroup subgroups of the assumed size, fewer where this
// device's workgroup limit is lower (a 128-lane assumption on a 256-invocation device), and at
// least one.
uint32_t row_workgroup(const vk::Context& ctx) {
  const vk::DeviceInfo& info = ctx.info();
  const uint32_t size = subgroup_size(ctx);
  const uint32_t most = std::max(std::min(info.max_workgroup_invocations, info.max_workgroup_size[0]), size);
  return std::min(kRowsPerGroup * size, most / size * size);
}
// Accesses per lane that hold a whole row of D columns in registers (the forward reads its row
// once instead of three times: on lavapipe every storage-buffer read is a loop over the lanes), or
// 0 when that would take more than 32 (rows are then read once per pass).
uint32_t cached_accesses(const vk::Context& ctx, uint32_t D) {
  const uint32_t per_lane = div_up(D / vec_width(D), subgroup_size(ctx));
  return per_lane <= 32 ? per_lane : 0;
}
uint32_t rows_per_subgroup(uint32_t cached) { return cached > 0 ? kRowsPerSubgroup : 1; }
// The row kernels' constants for rows of D floats; `wide`: the _wide module's 64-bit pairs.
RowsSpec rows_spec(const vk::Context& ctx, uint32_t D, bool wide) {
  const uint32_t cached = cached_accesses(ctx, D);
  return RowsSpec{row_workgroup(ctx), vec_width(D), cached, rows_per_subgroup(cached), wide, subgroup_size(ctx),
                  row_pin_holds(ctx)};
}
// Workgroups for `rows` rows: each takes one block of spec.rows rows per assumed subgroup.
vk::Groups row_groups(const vk::Recorder& rec, const RowsSpec& spec, uint64_t rows) {
  const uint64_t blocks_per_group = spec.workgroup_size.value / spec.subgroup.value;
  return rec.groups_1d(div_up(div_up(rows, uint64_t(spec.rows.value)), blocks_per_group));
}
}  // namespace

void layernorm_forward(vk::Recorder& rec, const vk::View& out, const vk::View& mean, const vk::View& rstd,
                       const vk::View& in, const vk::View& gamma, const vk::View& beta, uint64_t M, uint32_t D,
                       float eps) {
  if (M == 0 || D == 0) return;
  // With the row in registers a subgroup normalizes kRowsPerSubgroup rows and reads gamma and beta
  // once for all of them (rows_spec).
  // Rows start at multiples of D floats, so with D % 4 == 0 the views' starts decide the alignment.
  const bool wide = vec_width(D) == 4 && wide_views(rec.context(), {out, in});
  // The _wide modules have the 64-bit pairs; the plain ones no 64-bit type (common/wide.glsl).
  const RowsSpec spec = rows_spec(rec.context(), D, wide);
  const vk::Kernel& k = rec.context().pipelines().get(wide ? shaders::layernorm_wide : shaders::layernorm, 6,
                                                      sizeof(LayerNormPush), spec, 0, row_subgroup_pin(rec.context()));
  for_each_chunk(rec.context(), M, uint64_t(D) * 4, [&](uint64_t first, uint64_t rows) {
    const LayerNormPush push{static_cast<uint32_t>(rows), D, eps};
    rec.dispatch(k,
                 {out.slice(first * D, rows * D), mean.slice(first, rows), rstd.slice(first, rows),
                  in.slice(first * D, rows * D), gamma.slice(0, D), beta.slice(0, D)},
                 push, row_groups(rec, spec, rows), "layernorm");
  });
}

uint64_t layernorm_backward_scratch_floats(const vk::Context& ctx, uint64_t M, uint32_t D) {
  return cached_accesses(ctx, D) > 0 ? div_up(M, uint64_t(kRowsPerSubgroup)) * 2 * D : 0;
}

void layernorm_backward(vk::Recorder& rec, const vk::View& din, const vk::View& dgamma, const vk::View& dbeta,
                        const vk::View& mean, const vk::View& rstd, const vk::View& in, const vk::View& dout,
                        const vk::View& gamma, const vk::View& scratch, uint64_t M, uint32_t D) {
  if (M == 0 || D == 0) return;
  vk::Context& ctx = rec.context();
  const uint32_t vec = vec_width(D), cached = cached_accesses(ctx, D);
  // With the row in registers, the row pass also writes per-column partial sums over its
  // kRowsPerSubgroup rows and pass 2 adds those up; otherwise pass 1 reads dout and the input again.
  const uint32_t subgroup_rows = rows_per_subgroup(cached);
  const uint64_t need = layernorm_backward_scratch_floats(ctx, M, D);
  if (scratch.size / 4 < need)
    throw Error("internal: layernorm_backward: scratch of " + std::to_string(scratch.size / 4) + " floats, " +
                std::to_string(need) + " needed");
  // 64-bit pairs where every vec4 view starts 16-byte aligned (chunks and partial rows advance by
  // multiples of D floats); the scratch counts only when the partial rows use it.
  const bool wide = vec == 4 && wide_views(ctx, {din, in, dout, cached > 0 ? scratch : din});
  const RowsSpec spec = rows_spec(ctx, D, wide);
  const vk::Kernel& rows_k =
      ctx.pipelines().get(wide ? shaders::layernorm_backward_wide : shaders::layernorm_backward, 9,
                          sizeof(LayerNormBackwardPush), spec, 0, row_subgroup_pin(ctx));
  const vk::ShaderId params_shader =
      cached > 0 ? (wide ? shaders::layernorm_backward_params_partials_wide : shaders::layernorm_backward_params_partials)
                 : (wide ? shaders::layernorm_backward_params_wide : shaders::layernorm_backward_params);
  for_each_chunk(ctx, M, uint64_t(D) * 4, [&](uint64_t first, uint64_t rows) {
    const uint64_t partial_rows = div_up(rows, uint64_t(subgroup_rows));
    // Few partial rows (the Fashion-MNIST model's 40): 4 row lanes per column group instead of 16,
    // a quarter of the workgroup's fixed cost on lavapipe (BENCHMARKS.md, "LayerNorm in registers").
    const uint32_t cols_wg = cached > 0 && partial_rows <= 64 ? kColumnTile * 4 : kColumnGroup;
    const vk::Kernel& cols_k = ctx.pipelines().get(params_shader, 9, sizeof(LayerNormBackwardPush),
                                                   ParamsSpec{cols_wg, vec, kColumnTile, wide});
    // Without partials, binding 8 is never read; din's range stands in.
    const vk::View partials = cached > 0 ? scratch.slice(0, partial_rows * 2 * D) : din.slice(first * D, rows * D);
    const std::initializer_list<vk::View> views = {
        din.slice(first * D, rows * D), dgamma.slice(0, D),        dbeta.slice(0, D),
        mean.slice(first, rows),        rstd.slice(first, rows),   in.slice(first * D, rows * D),
        dout.slice(first * D, rows * D), gamma.slice(0, D),        partials};
    const LayerNormBackwardPush push{static_cast<uint32_t>(rows), D};
    rec.dispatch(rows_k, views, push, row_groups(rec, spec, rows), "layernorm_backward");
    const LayerNormBackwardPush cols_push{static_cast<uint32_t>(cached > 0 ? partial_rows : rows), D};
    rec.dispatch(cols_k, views, cols_push, rec.groups_1d(div_up(D / vec, kColumnTile)), "layernorm_backward_params");
  });
}

}  // namespace vkvit::ops
