// Per-step learning rate: linear warmup, then a half cosine down to min_lr.
//
// With W = round(warmup_epochs * steps_per_epoch) warmup steps and T = epochs * steps_per_epoch
// steps in all, the rate used for the update at step s (0-based) is
//   s < W:       warmup_lr + (lr - warmup_lr) * s / W
//   W <= s < T:  min_lr + (lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2
//   s >= T:      min_lr
// (W is clamped to T: a warmup longer than the run warms up for the whole run)
// so it is warmup_lr at step 0, exactly lr at step W and reaches min_lr at step T, one past the
// last update. This is timm's CosineLRScheduler(t_initial=T-W, lr_min=min_lr, warmup_t=W,
// warmup_lr_init=warmup_lr, warmup_prefix=True, cycle_limit=1) advanced per step (t_in_epochs=False).
// timm's train.py defaults to warmup_prefix=False, where the cosine also spans the warmup epochs;
// vkvit counts the cosine from the end of warmup so that lr is reached exactly.
#pragma once
#include <cstdint>

#include "train/config.h"

namespace vkvit::train {

class LrSchedule {
 public:
  LrSchedule(double lr, double min_lr, double warmup_lr, uint64_t warmup_steps, uint64_t total_steps);
  // From train.{lr, min_lr, warmup_lr, warmup_epochs, epochs}. Throws Error when steps_per_epoch is 0.
  static LrSchedule from_config(const TrainConfig& t, uint64_t steps_per_epoch);

  double at(uint64_t step) const;
  uint64_t warmup_steps() const { return warmup_steps_; }
  uint64_t total_steps() const { return total_steps_; }

 private:
  double lr_, min_lr_, warmup_lr_;
  uint64_t warmup_steps_, total_steps_;
};

}  // namespace vkvit::train
