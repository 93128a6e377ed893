// The training loop: data loader → GPU forward → cross-entropy → backward → grad norm/clip →
// AdamW (→ the model EMA with train.model_ema), one command-buffer submission per step;
// evaluation after each epoch (of the EMA too); checkpoints, summary.csv and curves.png in the run
// folder.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "train/config.h"
#include "train/evaluate.h"
#include "vk/context.h"

namespace vkvit::train {

struct TrainOptions {
  std::string output;  // run folder; empty: <output.dir>/<timestamp>-<config name>
  std::string resume;  // checkpoint to continue from (a run's last.safetensors: weights and optimizer)
  bool quiet = false;
  // Stop after this many applied updates in all (0: run every epoch), writing last.safetensors
  // mid-epoch so that --resume continues with the very next batch.
  uint64_t max_steps = 0;
};

struct TrainResult {
  std::string run_dir;
  EvalResult last_eval;
  EvalResult last_ema_eval;  // train.model_ema: the EMA weights' last evaluation
  double best_top1 = -1;     // the EMA's with train.model_ema (what chose best.safetensors)
  double train_images_per_s = 0;
  bool stopped_early = false;  // TrainOptions::max_steps was reached
};

TrainResult train(vk::Context& ctx, RunConfig cfg, const TrainOptions& options);

}  // namespace vkvit::train
