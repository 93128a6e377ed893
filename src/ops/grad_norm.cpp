// Subgroup size: not used. The partial and finishing passes (common/grad_norm_partial.glsl,
// grad_norm_finish.comp) reduce through shared memory and barriers only.
#include "ops/grad_norm.h"

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
// Each partial covers kTile = kGroup * kItems consecutive floats: lanes read coalesced strides of
// kGroup, kItems times, so a partial is a 16-term serial sum per lane and a tree of 256, and the
// number of partials stays small (ViT-B's 86M gradients give 21k) for the single final workgroup.
constexpr uint32_t kGroup = 256;  // power of two: tree reductions
constexpr uint32_t kItems = 16;
constexpr uint64_t kTile = uint64_t(kGroup) * kItems;

struct PartialPush {
  uint32_t n;       // floats in this range
  uint32_t offset;  // index of this range's first partial in scratch
};
static_assert(sizeof(PartialPush) == 8);

// Mirrors common/grad_norm_partial.glsl's layout(constant_id = 0) WORKGROUP_SIZE
// (common/index.glsl) and layout(constant_id = 1) ITEMS.
struct PartialSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, uint32_t> items;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, items); }
};

struct FinishPush {
  uint32_t partials;
  float max_norm;
};
static_assert(sizeof(FinishPush) == 8);

// Calls fn(range, first, count) for every bindable chunk of every range; returns the partials of
// the storage-buffer kernel over them (the texel kernel's tiles are 4x larger: an upper bound).
template <class Fn>
uint64_t for_each_tiled_chunk(const vk::Context& ctx, const std::vector<vk::View>& grads, Fn&& fn) {
  uint64_t partials = 0;
  for (const vk::View& g : grads)
    for_each_chunk(ctx, g.floats(), 4, [&](uint64_t first, uint64_t count) {
      fn(g, first, count);
      partials += div_up(count, kTile);
    });
  return partials;
}
}  // namespace

uint64_t grad_norm_scratch_floats(const vk::Context& ctx, const std::vector<vk::View>& grads) {
  return std::max<uint64_t>(for_each_tiled_chunk(ctx, grads, [](const vk::View&, uint64_t, uint64_t) {}), 1);
}

void grad_norm(vk::Recorder& rec, const vk::View& result, const vk::View& scratch, const std::vector<vk::View>& grads,
               float max_norm) {
  const uint64_t needed = grad_norm_scratch_floats(rec.context(), grads);
  if (scratch.floats() < needed)
    throw Error("internal: grad_norm scratch of " + std::to_string(scratch.floats()) + " floats, needs " +
                std::to_string(needed));
  if (result.floats() < kGradNormFloats) throw Error("internal: grad_norm result view is smaller than 2 floats");
  if (needed > UINT32_MAX) throw Error("grad_norm: too many gradient elements for 32-bit partial indices");
  vk::PipelineCache& pc = rec.context().pipelines();
  const vk::DeviceInfo& info = rec.context().info();
  const vk::Kernel& partial_k = pc.get(shaders::grad_norm, 2, sizeof(PartialPush), PartialSpec{kGroup, kItems});
  const vk::Kernel& texel_k =
      pc.get(shaders::grad_norm_texel, 3, sizeof(PartialPush), PartialSpec{kGroup, kItems}, 0b010);
  const vk::View partials = scratch.slice(0, needed);
  uint64_t used = 0;
  for_each_tiled_chunk(rec.context(), grads, [&](const vk::View& g, uint64_t first, uint64_t count) {
    const vk::View range = g.slice(first, count);
    PartialPush push{static_cast<uint32_t>(count), static_cast<uint32_t>(used)};
    // Each dispatch writes its own partials; the recorder still sees the shared scratch view and
    // orders the (few) chunk dispatches, which costs a barrier, not correctness.
    // Whole vec4s through a texel buffer where the range starts 16-byte aligned (every tensor of
    // the model's gradient buffer as a whole): a tile is then 4x the floats. Tuning::texel off keeps
    // the storage-buffer kernel (tests; otherwise only ranges under 4 floats take it).
    const uint64_t texels = count / 4;
    const vk::View whole_texels = range.slice(0, texels * 4);
    const bool texel = rec.context().tuning().texel && texels > 0 && texel_view_fits(info, whole_texels);
    const uint64_t groups = div_up(texel ? texels : count, kTile);
    if (texel) rec.dispatch(texel_k, {partials, whole_texels, range}, push, rec.groups_1d(groups), "grad_norm");
    else rec.dispatch(partial_k, {partials, range}, push, rec.groups_1d(groups), "grad_norm");
    used += groups;
  });
  if (used == 0) rec.fill(partials, 0.0f);  // no gradients at all: the norm is 0
  const vk::Kernel& finish_k = pc.get(shaders::grad_norm_finish, 2, sizeof(FinishPush), vk::WorkgroupSpec{kGroup});
  rec.dispatch(finish_k, {result.slice(0, kGradNormFloats), partials},
               FinishPush{static_cast<uint32_t>(std::max<uint64_t>(used, 1)), max_norm}, vk::Groups{1, 1, 1},
               "grad_norm_finish");
}

}  // namespace vkvit::ops
