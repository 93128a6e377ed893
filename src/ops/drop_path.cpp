// Drop path launchers: elementwise over chunks that fit one storage-buffer binding; the scale
// array is bound whole and each chunk is told which sample its first element belongs to.
#include "ops/drop_path.h"

#include <string>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {

struct DropPathPush {
  uint32_t n, per_sample, first_sample, first_in_sample;
};
static_assert(sizeof(DropPathPush) == 16);

void check_shape(const char* op, const vk::View& scales, const DropPathShape& s,
                 std::initializer_list<vk::View> views) {
  if (s.per_sample == 0 || s.per_sample > UINT32_MAX)
    throw Error(std::string("internal: ") + op + ": " + std::to_string(s.per_sample) + " elements a sample");
  if ((s.first_scale + s.samples) * 4 > scales.size)
    throw Error(std::string("internal: ") + op + ": the scale array holds " + std::to_string(scales.size / 4) +
                " scales, needs " + std::to_string(s.first_scale + s.samples));
  for (const vk::View& v : views)
    if (v.size < s.elements() * 4)
      throw Error(std::string("internal: ") + op + ": a tensor of " + std::to_string(v.size / 4) + " floats, needs " +
                  std::to_string(s.elements()));
}

// Calls fn(first, count, push) over the chunks of the s.elements() elements.
template <class Fn>
void for_each_drop_chunk(const vk::Context& ctx, const DropPathShape& s, Fn&& fn) {
  for_each_chunk(ctx, s.elements(), 4, [&](uint64_t first, uint64_t count) {
    const DropPathPush push{static_cast<uint32_t>(count), static_cast<uint32_t>(s.per_sample),
                            static_cast<uint32_t>(s.first_scale + first / s.per_sample),
                            static_cast<uint32_t>(first % s.per_sample)};
    fn(first, count, push);
  });
}

}  // namespace

void drop_path_add(vk::Recorder& rec, const vk::View& out, const vk::View& residual, const vk::View& branch,
                   const vk::View& scales, const DropPathShape& s) {
  check_shape("drop_path_add", scales, s, {out, residual, branch});
  const vk::Kernel& k = rec.context().pipelines().get(shaders::drop_path_add, 4, sizeof(DropPathPush),
                                                      vk::WorkgroupSpec{kElementwiseGroup});
  for_each_drop_chunk(rec.context(), s, [&](uint64_t first, uint64_t count, const DropPathPush& push) {
    rec.dispatch(k, {out.slice(first, count), residual.slice(first, count), branch.slice(first, count), scales}, push,
                 rec.groups_1d(div_up(count, kElementwiseGroup)), "drop_path_add");
  });
}

void drop_path_scale(vk::Recorder& rec, const vk::View& out, const vk::View& in, const vk::View& scales,
                     const DropPathShape& s) {
  check_shape("drop_path_scale", scales, s, {out, in});
  const vk::Kernel& k = rec.context().pipelines().get(shaders::drop_path_scale, 3, sizeof(DropPathPush),
                                                      vk::WorkgroupSpec{kElementwiseGroup});
  for_each_drop_chunk(rec.context(), s, [&](uint64_t first, uint64_t count, const DropPathPush& push) {
    rec.dispatch(k, {out.slice(first, count), in.slice(first, count), scales}, push,
                 rec.groups_1d(div_up(count, kElementwiseGroup)), "drop_path_scale");
  });
}

}  // namespace vkvit::ops
