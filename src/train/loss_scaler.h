// Dynamic loss scaling for mixed-precision training (train.amp), with the rules and defaults of
// PyTorch's torch.cuda.amp.GradScaler (https://pytorch.org/docs/stable/amp.html#gradient-scaling):
// the loss gradient is multiplied by `scale` so that small gradients survive the fp16 casts of the
// backward pass; the gradients are divided by it again before the norm, clipping and AdamW (one
// coefficient, record_unscale). A step whose gradients overflowed (Inf/NaN) is skipped and the
// scale halves; after `growth_interval` consecutive good steps it doubles.
// The host owns the state (the trainer reads the gradient norm after every step anyway); it is
// saved in last.safetensors (train/checkpoint.h) so that a resumed run continues exactly.
#pragma once
#include <cstdint>
#include <string>

#include "train/checkpoint.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::train {

class LossScaler {
 public:
  static constexpr float kInitScale = 65536.0f;  // GradScaler's init_scale 2^16
  static constexpr float kGrowthFactor = 2.0f;
  static constexpr float kBackoffFactor = 0.5f;
  static constexpr uint64_t kGrowthInterval = 2000;

  float scale() const { return scale_; }
  uint64_t good_steps() const { return good_steps_; }  // consecutive finite steps since the last change
  uint64_t growth_interval() const { return growth_interval_; }
  // Test hook: a shorter interval, to see the growth rule in a few steps.
  void set_growth_interval(uint64_t steps);

  // After a step: finite = its gradients (norm) were finite. false: the step was skipped, the
  // scale halves and the count restarts; true: the count grows, and at growth_interval the scale
  // doubles (while it stays a finite float) and the count restarts. Returns `finite`.
  bool update(bool finite);
  // State from a checkpoint; throws vkvit::Error naming `source` when it is not a positive finite scale.
  void restore(double scale, uint64_t good_steps, const std::string& source);
  // `meta` with this state filled in (what last.safetensors saves), and the state back from a
  // checkpoint's meta (left as it is when the checkpoint has none: it came from an fp32 run).
  CheckpointMeta saved_in(CheckpointMeta meta) const;
  void restore_from(const CheckpointMeta& meta, const std::string& source);

 private:
  float scale_ = kInitScale;
  uint64_t good_steps_ = 0;
  uint64_t growth_interval_ = kGrowthInterval;
};

// Rewrites grad_norm's result (computed over the scaled gradients with clipping off) in place into
// the true norm and the coefficient AdamW applies: clip coefficient / scale (shaders/amp_unscale.comp).
void record_unscale(vk::Recorder& rec, const vk::View& norm_result /* (ops::kGradNormFloats) */, float scale,
                    float max_norm);

}  // namespace vkvit::train
