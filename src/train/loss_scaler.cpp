// Dynamic loss scaling; see loss_scaler.h.
#include "train/loss_scaler.h"

#include <cmath>
#include <limits>
#include <string>

#include "base/error.h"
#include "vk/context.h"
#include "vk/pipeline.h"

namespace vkvit::train {

namespace {
struct UnscalePush {
  float inv_scale;
  float max_norm;
};
static_assert(sizeof(UnscalePush) == 8);
}  // namespace

void LossScaler::set_growth_interval(uint64_t steps) { growth_interval_ = steps > 0 ? steps : 1; }

bool LossScaler::update(bool finite) {
  if (!finite) {
    scale_ *= kBackoffFactor;
    good_steps_ = 0;
    return false;
  }
  if (++good_steps_ >= growth_interval_) {
    const float grown = scale_ * kGrowthFactor;
    if (std::isfinite(grown)) scale_ = grown;
    good_steps_ = 0;
  }
  return true;
}

void LossScaler::restore(double scale, uint64_t good_steps, const std::string& source) {
  if (!(scale > 0) || !std::isfinite(scale) || scale > std::numeric_limits<float>::max())
    throw Error(source + ": the saved loss scale " + std::to_string(scale) +
                " is not a positive finite float; resume from an intact last.safetensors");
  scale_ = static_cast<float>(scale);
  good_steps_ = good_steps;
}

CheckpointMeta LossScaler::saved_in(CheckpointMeta meta) const {
  meta.loss_scale = scale_;
  meta.loss_scale_good_steps = good_steps_;
  return meta;
}

void LossScaler::restore_from(const CheckpointMeta& meta, const std::string& source) {
  if (meta.loss_scale > 0) restore(meta.loss_scale, meta.loss_scale_good_steps, source);
}

void record_unscale(vk::Recorder& rec, const vk::View& norm_result, float scale, float max_norm) {
  const vk::Kernel& k = rec.context().pipelines().get("amp_unscale", 1, sizeof(UnscalePush));
  const UnscalePush push{1.0f / scale, max_norm};
  rec.dispatch(k, {norm_result.slice(0, 2)}, push, vk::Groups{1, 1, 1}, "amp_unscale");
}

}  // namespace vkvit::train
