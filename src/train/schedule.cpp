// Learning-rate schedule; the formula and its timm equivalent are in schedule.h.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.h"

namespace vkvit::train {

LrSchedule::LrSchedule(double lr, double min_lr, double warmup_lr, uint64_t warmup_steps, uint64_t total_steps)
    : lr_(lr), min_lr_(min_lr), warmup_lr_(warmup_lr), warmup_steps_(std::min(warmup_steps, total_steps)),
      total_steps_(total_steps) {}

LrSchedule LrSchedule::from_config(const TrainConfig& t, uint64_t steps_per_epoch) {
  if (steps_per_epoch == 0)
    throw Error("learning-rate schedule: an epoch has no steps (is the training set empty?)");
  const uint64_t total = uint64_t(t.epochs) * steps_per_epoch;
  const uint64_t warmup = uint64_t(std::llround(t.warmup_epochs * double(steps_per_epoch)));
  return LrSchedule(t.lr, t.min_lr, t.warmup_lr, warmup, total);
}

double LrSchedule::at(uint64_t step) const {
  if (step < warmup_steps_)
    return warmup_lr_ + (lr_ - warmup_lr_) * double(step) / double(warmup_steps_);
  if (step >= total_steps_) return min_lr_;
  const double pi = 3.14159265358979323846;
  const double progress = double(step - warmup_steps_) / double(total_steps_ - warmup_steps_);
  return min_lr_ + 0.5 * (lr_ - min_lr_) * (1.0 + std::cos(pi * progress));
}

}  // namespace vkvit::train
