// Residual add and gradient accumulation launchers: elementwise, split into chunks that fit one
// storage-buffer binding (see ops::for_each_chunk).
#include "ops/residual.h"

#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct ResidualPush {
  uint32_t n;
};
static_assert(sizeof(ResidualPush) == 4);
}  // namespace

void residual_forward(vk::Recorder& rec, const vk::View& out, const vk::View& a, const vk::View& b, uint64_t n) {
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::residual, 3, sizeof(ResidualPush), vk::WorkgroupSpec{kElementwiseGroup});
  for_each_chunk(rec.context(), n, 4, [&](uint64_t first, uint64_t count) {
    const ResidualPush push{static_cast<uint32_t>(count)};
    rec.dispatch(k, {out.slice(first, count), a.slice(first, count), b.slice(first, count)}, push,
                 rec.groups_1d(div_up(count, kElementwiseGroup)), "residual");
  });
}

void accumulate(vk::Recorder& rec, const vk::View& dst, const vk::View& src, uint64_t n) {
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::residual_backward, 2, sizeof(ResidualPush),
                                    vk::WorkgroupSpec{kElementwiseGroup});
  for_each_chunk(rec.context(), n, 4, [&](uint64_t first, uint64_t count) {
    const ResidualPush push{static_cast<uint32_t>(count)};
    rec.dispatch(k, {dst.slice(first, count), src.slice(first, count)}, push,
                 rec.groups_1d(div_up(count, kElementwiseGroup)), "accumulate");
  });
}

}  // namespace vkvit::ops
