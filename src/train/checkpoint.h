// Checkpoints: model weights in safetensors with timm names, and the optimizer state beside them.
//
// <name>.safetensors        every model tensor (timm name and shape, F32); __metadata__ holds
//                           "vkvit.config" (the fully resolved run config as YAML), "vkvit.classes"
//                           (JSON list of class names, index = label), "vkvit.epoch", "vkvit.step",
//                           "vkvit.best_top1", and for a checkpoint written mid-epoch
//                           "vkvit.position", "vkvit.epoch_loss_sum", "vkvit.epoch_images".
// <name>.optim.safetensors  Adam's m and v as two flat tensors in the model's parameter layout,
//                           and the same epoch/step metadata, so --resume continues the run.
// Both are written atomically (temp file, fsync, rename, fsync folder).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "model/vit.h"
#include "train/config.h"

namespace vkvit::train {

struct CheckpointMeta {
  TrainConfig config;
  std::vector<std::string> classes;
  uint64_t epoch = 0;  // epochs completed
  uint64_t step = 0;   // optimizer steps taken
  double best_top1 = -1;
  // Written mid-epoch (--max-steps): the loader position reached in epoch `epoch` (0-based, the
  // one in progress) and the epoch's running train-loss sum and image count, so that --resume
  // continues the same batches and summary.csv's row for the epoch is the uninterrupted one.
  uint64_t position = 0;
  double epoch_loss_sum = 0;
  uint64_t epoch_images = 0;
};

// The sibling file that holds the optimizer state of `checkpoint_path`.
std::string optimizer_state_path(const std::string& checkpoint_path);

void save_checkpoint(const std::string& path, const model::Vit& vit, const CheckpointMeta& meta);
// The same file from host tensors with timm names (what `vkvit convert` writes).
void save_checkpoint_tensors(const std::string& path, const std::vector<model::Tensor>& tensors,
                             const CheckpointMeta& meta);
// Reads only the metadata (config, classes, progress); throws vkvit::Error naming the file.
CheckpointMeta read_checkpoint_meta(const std::string& path);
// Loads the weights into `vit`, whose config must match; reports every missing, unexpected or
// mis-shaped tensor at once.
void load_checkpoint_weights(const std::string& path, model::Vit& vit);

void save_optimizer_state(const std::string& path, const std::vector<float>& m, const std::vector<float>& v,
                          const CheckpointMeta& meta);
// m and v must have `floats` elements each; throws vkvit::Error when the file does not match.
void load_optimizer_state(const std::string& path, uint64_t floats, std::vector<float>& m, std::vector<float>& v);

}  // namespace vkvit::train
