// The training loop: data loader → GPU forward → cross-entropy → backward → grad norm/clip →
// AdamW, one command-buffer submission per step; evaluation after each epoch; checkpoints,
// summary.csv and curves.png in the run folder. Also the evaluation pass shared by `vkvit eval`.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "dist/comm.h"
#include "model/vit.h"
#include "train/config.h"
#include "vk/context.h"

namespace vkvit::train {

// The data side of a run config: transforms and loader settings for one split.
data::LoaderConfig loader_config(const TrainConfig& cfg, bool train);

struct EvalResult {
  uint64_t images = 0;
  uint64_t skipped = 0;
  double loss = 0;  // mean cross-entropy without label smoothing (as timm's validate)
  double top1 = 0, top5 = 0;  // percent
  std::vector<double> per_class;  // percent; NaN for a class without samples
  std::vector<uint64_t> confusion;  // (K, K) counts, row = true class, column = top-1 (AccuracyMeter::confusion)
  double images_per_s = 0;
};

// Runs the model over one epoch of `loader` and hands every batch with its logits (size, K) to `fn`.
void infer(vk::Context& ctx, model::Vit& vit, data::Loader& loader,
           const std::function<void(const data::Batch& batch, const float* logits)>& fn);

// Runs the model over every batch of `loader` (one epoch, eval order) and scores it. With a
// distributed `comm`, each rank's loader reads its shard and the scores are summed over the ranks,
// so every rank returns the whole split's result.
EvalResult evaluate(vk::Context& ctx, model::Vit& vit, data::Loader& loader, dist::Comm* comm = nullptr);

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
  double best_top1 = -1;
  double train_images_per_s = 0;
  bool stopped_early = false;  // TrainOptions::max_steps was reached
};

TrainResult train(vk::Context& ctx, TrainConfig cfg, const TrainOptions& options);

}  // namespace vkvit::train
