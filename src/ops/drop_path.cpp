// Drop path launchers: one row of workgroups per sample over chunks of whole samples that fit
// one storage-buffer binding; the scale array is bound whole and each chunk is told the scale
// index of its first sample.
#include "ops/drop_path.h"

#include <algorithm>
#include <string>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {

struct DropPathPush {
  uint32_t per_sample, first_scale;
};
static_assert(sizeof(DropPathPush) == 8);

void check_shape(const char* op, const vk::View& scales, const DropPathShape& s,
                 std::initializer_list<vk::View> views) {
  if (s.per_sample == 0 || s.first_scale + s.samples > UINT32_MAX)
    throw Error(std::string("internal: ") + op + ": " + std::to_string(s.per_sample) + " elements a sample");
  if ((s.first_scale + s.samples) * 4 > scales.size)
    throw Error(std::string("internal: ") + op + ": the scale array holds " + std::to_string(scales.size / 4) +
                " scales, needs " + std::to_string(s.first_scale + s.samples));
  for (const vk::View& v : views)
    if (v.size < s.elements() * 4)
      throw Error(std::string("internal: ") + op + ": a tensor of " + std::to_string(v.size / 4) + " floats, needs " +
                  std::to_string(s.elements()));
}

// Calls fn(first, count, groups, push) over chunks of whole samples [first, first + count) that fit
// one binding: one workgroup row (y) a sample, x across its elements.
template <class Fn>
void for_each_sample_chunk(const vk::Context& ctx, const char* op, const DropPathShape& s, Fn&& fn) {
  const uint64_t x_groups = div_up(s.per_sample, kElementwiseGroup);
  const uint64_t per_chunk = std::min<uint64_t>(items_per_chunk(ctx, {s.per_sample}), ctx.info().max_workgroup_count[1]);
  if (per_chunk == 0 || x_groups > ctx.info().max_workgroup_count[0])
    throw Error(std::string(op) + ": one sample of " + std::to_string(s.per_sample) +
                " elements does not fit one binding or one row of workgroups on " + ctx.info().name);
  for (uint64_t first = 0; first < s.samples; first += per_chunk) {
    const uint64_t count = std::min<uint64_t>(per_chunk, s.samples - first);
    const vk::Groups groups{static_cast<uint32_t>(x_groups), static_cast<uint32_t>(count), 1};
    fn(first * s.per_sample, count * s.per_sample, groups,
       DropPathPush{static_cast<uint32_t>(s.per_sample), static_cast<uint32_t>(s.first_scale + first)});
  }
}

}  // namespace

void drop_path_add(vk::Recorder& rec, const vk::View& out, const vk::View& residual, const vk::View& branch,
                   const vk::View& scales, const DropPathShape& s) {
  check_shape("drop_path_add", scales, s, {out, residual, branch});
  const vk::Kernel& k = rec.context().pipelines().get(shaders::drop_path_add, 4, sizeof(DropPathPush),
                                                      vk::WorkgroupSpec{kElementwiseGroup});
  for_each_sample_chunk(rec.context(), "drop_path_add", s,
                        [&](uint64_t first, uint64_t count, vk::Groups groups, const DropPathPush& push) {
                          rec.dispatch(k,
                                       {out.slice(first, count), residual.slice(first, count),
                                        branch.slice(first, count), scales},
                                       push, groups, "drop_path_add");
                        });
}

void drop_path_scale(vk::Recorder& rec, const vk::View& out, const vk::View& in, const vk::View& scales,
                     const DropPathShape& s) {
  check_shape("drop_path_scale", scales, s, {out, in});
  const vk::Kernel& k = rec.context().pipelines().get(shaders::drop_path_scale, 3, sizeof(DropPathPush),
                                                      vk::WorkgroupSpec{kElementwiseGroup});
  for_each_sample_chunk(rec.context(), "drop_path_scale", s,
                        [&](uint64_t first, uint64_t count, vk::Groups groups, const DropPathPush& push) {
                          rec.dispatch(k, {out.slice(first, count), in.slice(first, count), scales}, push, groups,
                                       "drop_path_scale");
                        });
}

}  // namespace vkvit::ops
