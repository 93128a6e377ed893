// The start of a training run, before its first step: the splits it reads, where a resumed run
// stands and how every rank of a data-parallel run learns it, and the line that tells a user how to
// continue a run that stopped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image_folder.h"
#include "data/loader.h"
#include "dist/comm.h"
#include "model/vit.h"
#include "ops/adamw.h"
#include "train/config.h"
#include "train/train_step.h"
#include "vk/context.h"

namespace vkvit::train {

// The run's images: the classes are the train split's folders (their count must be
// model.num_classes); the val split is optional but must have the same class folders. Every rank
// checks that it sees what rank 0 sees (data_parallel.h check_ranks_agree).
struct RunSplits {
  std::vector<std::string> classes;
  std::vector<data::Sample> train, val;
};
RunSplits scan_splits(const RunConfig& cfg, dist::Comm& world);

// `lc` reading this rank's shard of its split.
data::LoaderConfig sharded(data::LoaderConfig lc, const dist::Comm& world);

// AdamW's constants from train.{betas, eps, weight_decay}; the lr is set per step.
ops::AdamWHyper adamw_hyper(const TrainConfig& train);

// Where a resumed run starts. A new run starts at the default: step 0, epoch 0, no best top-1.
struct ResumePoint {
  uint64_t step = 0, epoch = 0, position = 0, epoch_images = 0, loss_scale_good_steps = 0;
  double epoch_loss_sum = 0, best_top1 = -1, loss_scale = 0;
};

// Loads the checkpoint at `path` (a run's last.safetensors) into the model and the optimizer
// state: rank 0 reads and checks it (the same model section and classes as this run), every rank
// of a data-parallel run receives the weights, Adam's moments, the loss scale and the position.
ResumePoint resume_run(vk::Context& ctx, const RunConfig& cfg, const RunSplits& splits, const std::string& path,
                       model::Vit& vit, TrainStep& train_step, dist::Comm& world);

// Where a run stands, kept up to date by the trainer for the error lines written when it stops.
struct RunPosition {
  std::string run_dir;
  uint64_t step = 0;   // the step being attempted (1-based, as in steps.csv)
  uint64_t epoch = 0;  // 1-based
};

// Where a run that stops now can be continued from, as one clause of an error line.
std::string last_good_checkpoint(const std::string& run_dir, const std::string& resumed_from);

// Sends rank 0's `s` to every rank.
void broadcast_string(dist::Comm& world, std::string& s);

}  // namespace vkvit::train
