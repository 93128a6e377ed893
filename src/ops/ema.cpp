#include "ops/ema.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
struct EmaPush {
  uint32_t n;         // floats in this chunk
  uint32_t start;     // float of the chunk where this dispatch starts (a multiple of 4)
  uint32_t use_clip;  // 1: skip when clip[1] is not finite
  float decay;
  float one_minus_decay;
};
static_assert(sizeof(EmaPush) == 20);

// Mirrors shaders/common/ema.glsl's layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl),
// layout(constant_id = 1) WIDE and layout(constant_id = 2) PARTIAL.
struct EmaSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> wide;
  vk::SpecField<2, bool> partial;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, wide, partial); }
};
}  // namespace

double ema_decay(double decay, bool warmup, uint64_t step) {
  if (step == 0) throw Error("internal: the EMA step count starts at 1");
  // timm counts from the update before: its first update (step 1) takes the weights as they are.
  const double after_first = double(step - 1);
  if (after_first <= 0) return 0.0;
  if (!warmup) return decay;
  return std::max(0.0, std::min(decay, 1.0 - std::pow(1.0 + after_first, -2.0 / 3.0)));
}

void ema_update(vk::Recorder& rec, const vk::View& ema, const vk::View& params, const vk::View& clip, uint64_t n,
                double decay) {
  if (n == 0) return;
  if (n > UINT32_MAX) throw Error("EMA: more than 2^32 parameters; the update uses 32-bit offsets");
  if (!(decay >= 0 && decay <= 1)) throw Error("internal: EMA decay " + std::to_string(decay) + " is not in [0, 1]");
  const bool use_clip = clip.buffer != VK_NULL_HANDLE;
  EmaPush push{};
  push.use_clip = use_clip ? 1u : 0u;
  push.decay = float(decay);
  push.one_minus_decay = float(1.0 - decay);
  // Four elements per invocation, as two 64-bit pairs where both views start 16-byte aligned
  // (chunks start at multiples of 64 floats, so the whole views decide).
  const bool wide = wide_views(rec.context(), {ema, params});
  constexpr uint32_t kGroup = 64;  // invocations: 256 elements per workgroup
  const vk::ShaderId shader = wide ? shaders::ema_wide : shaders::ema;
  const vk::Kernel& whole = rec.context().pipelines().get(shader, 3, sizeof(EmaPush), EmaSpec{kGroup, wide, false});
  const vk::Kernel& partial = rec.context().pipelines().get(shader, 3, sizeof(EmaPush), EmaSpec{1u, wide, true});
  // Without a clip result the binding is never read; the parameters stand in for it.
  const vk::View clip_view = use_clip ? clip.slice(0, 2) : params.slice(0, std::min<uint64_t>(n, 2));
  // Two bindings of n floats: each chunk must fit maxStorageBufferRange.
  for_each_chunk(rec.context(), n, 4, [&](uint64_t first, uint64_t count) {
    auto run = [&](const vk::Kernel& k, uint64_t start, uint64_t end, uint64_t groups) {
      push.start = static_cast<uint32_t>(start);
      push.n = static_cast<uint32_t>(end);
      rec.dispatch(k, {ema.slice(first, count), params.slice(first, count), clip_view}, push, rec.groups_1d(groups),
                   "ema");
    };
    const uint64_t whole_floats = count / 4 * 4;
    if (whole_floats > 0) run(whole, 0, whole_floats, div_up(whole_floats, 4 * kGroup));
    if (whole_floats < count) run(partial, whole_floats, count, 1);
  });
}

namespace ref {
void ema_update(double* ema, const double* params, uint64_t n, double decay, double clip_coef) {
  if (!std::isfinite(clip_coef)) return;
  for (uint64_t i = 0; i < n; ++i) ema[i] = decay * ema[i] + (1.0 - decay) * params[i];
}
}  // namespace ref

}  // namespace vkvit::ops
