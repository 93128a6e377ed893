// Subgroup size: not used (one independent invocation per pair of floats).
#include "ops/mix_batch.h"

#include <string>

#include "base/error.h"
#include "ops/kernel_choice.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct MixPush {
  uint32_t batch, per_image, patch, grid, pairs;
};
static_assert(sizeof(MixPush) == 20);
}  // namespace

bool mix_batch_fits(const vk::Context& ctx, const MixBatchShape& s) {
  const uint64_t floats = uint64_t(s.batch) * s.per_image();
  const uint64_t invocations = uint64_t((s.batch + 1) / 2) * s.per_image() + kElementwiseGroup;
  return floats * 4 <= ctx.info().max_storage_buffer_range && floats < (uint64_t(1) << 32) &&
         invocations < (uint64_t(1) << 32);
}

bool mix_batch_on_gpu(const vk::Context& ctx, const MixBatchShape& shape) {
  return kernel_choice(ctx).mix_batch.on_device && mix_batch_fits(ctx, shape);
}

void mix_batch(vk::Recorder& rec, const vk::View& images, const vk::View& mixes, const MixBatchShape& s) {
  if (s.batch == 0) return;
  if (s.patch_size == 0 || s.image_size % s.patch_size != 0)
    throw Error("internal: mix_batch with image " + std::to_string(s.image_size) + " and patch " +
                std::to_string(s.patch_size));
  if (!mix_batch_fits(rec.context(), s))
    throw Error("internal: mix_batch on a batch of " + std::to_string(s.batch) + " that does not fit one binding");
  const uint64_t per_image = s.per_image(), pairs = (s.batch + 1) / 2;
  const MixPush push{s.batch, static_cast<uint32_t>(per_image), s.patch_size, s.image_size / s.patch_size,
                     static_cast<uint32_t>(pairs)};
  const vk::Kernel& k =
      rec.context().pipelines().get(shaders::mix_batch, 2, sizeof(MixPush), vk::WorkgroupSpec{kElementwiseGroup});
  rec.dispatch(k, {images.slice(0, s.batch * per_image), mixes.slice(0, uint64_t(s.batch) * kMixWords)}, push,
               rec.groups_1d(div_up(pairs * per_image, kElementwiseGroup)), "mix_batch");
}

}  // namespace vkvit::ops
