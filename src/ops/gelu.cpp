#include "ops/gelu.h"

#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct GeluPush {
  uint32_t n;
};
static_assert(sizeof(GeluPush) == 4);
}  // namespace

void gelu_forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint64_t n) {
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::gelu, 2, sizeof(GeluPush), vk::WorkgroupSpec{kElementwiseGroup});
  for_each_chunk(rec.context(), n, 4, [&](uint64_t first, uint64_t count) {
    GeluPush push{static_cast<uint32_t>(count)};
    rec.dispatch(k, {out.slice(first, count), in.slice(first, count)}, push,
                 rec.groups_1d(div_up(count, kElementwiseGroup)), "gelu");
  });
}

void gelu_backward(vk::Recorder& rec, const vk::View& din, const vk::View& in, const vk::View& dout, uint64_t n) {
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::gelu_backward, 3, sizeof(GeluPush), vk::WorkgroupSpec{kElementwiseGroup});
  for_each_chunk(rec.context(), n, 4, [&](uint64_t first, uint64_t count) {
    GeluPush push{static_cast<uint32_t>(count)};
    rec.dispatch(k, {din.slice(first, count), in.slice(first, count), dout.slice(first, count)}, push,
                 rec.groups_1d(div_up(count, kElementwiseGroup)), "gelu_backward");
  });
}

}  // namespace vkvit::ops
