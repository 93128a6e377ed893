// bias_grad launcher: one dispatch of column tiles per chunk of rows; chunks (only when dy is
// larger than one binding) accumulate into db one after another, keeping the order fixed.
// Subgroup size: not used; bias_grad.comp sums its row lanes through shared memory.
#include "ops/bias_grad.h"

#include "ops/kernel_choice.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct BiasGradPush {
  uint32_t M, N;
};
static_assert(sizeof(BiasGradPush) == 8);

// Mirrors shaders/bias_grad.comp's layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl),
// layout(constant_id = 1) TILE_N and layout(constant_id = 2) VEC.
struct BiasGradSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, uint32_t> tile_n;
  vk::SpecField<2, uint32_t> vec;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, tile_n, vec); }
};

constexpr uint32_t kGroup = 256;  // <= the shader's lane_partials size; KernelChoice::BiasGrad::workgroup_size

struct BiasGradTiles {
  uint32_t tile_n;  // column groups per workgroup; WORKGROUP_SIZE / tile_n row lanes
  uint32_t vec;     // columns per invocation
};

// vec4 loads whenever N allows it (every ViT width): on lavapipe they cut the per-lane gathers
// 4x. The column tile for those is the kernel choice's (ops/kernel_choice.h: few, fat workgroups
// on CPU drivers, many on GPUs); other widths take 32 single columns per workgroup.
BiasGradTiles choose_tiles(const vk::Context& ctx, uint32_t N) {
  if (N % 4 != 0) return {32, 1};
  const KernelChoice::BiasGrad choice = kernel_choice(ctx).bias_grad;
  return BiasGradTiles{choice.tile_n, choice.vec};
}
}  // namespace

void bias_grad(vk::Recorder& rec, const vk::View& db, const vk::View& dy, uint64_t M, uint32_t N) {
  if (M == 0 || N == 0) return;
  const BiasGradTiles t = choose_tiles(rec.context(), N);
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::bias_grad, 2, sizeof(BiasGradPush), BiasGradSpec{kGroup, t.tile_n, t.vec});
  for_each_chunk(rec.context(), M, uint64_t(N) * 4, [&](uint64_t first, uint64_t rows) {
    const BiasGradPush push{static_cast<uint32_t>(rows), N};
    rec.dispatch(k, {db.slice(0, N), dy.slice(first * N, rows * N)}, push,
                 rec.groups_1d(div_up(N / t.vec, t.tile_n)), "bias_grad");
  });
}

}  // namespace vkvit::ops
