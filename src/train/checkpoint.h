// Checkpoints: model weights in safetensors with timm names, optionally with the optimizer state.
//
// <name>.safetensors  every model tensor (timm name and shape, F32); __metadata__ holds
//                     "vkvit.config" (the fully resolved run config as YAML), "vkvit.classes"
//                     (JSON list of class names, index = label), "vkvit.epoch", "vkvit.step",
//                     "vkvit.best_top1", and for a checkpoint written mid-epoch
//                     "vkvit.position", "vkvit.epoch_loss_sum", "vkvit.epoch_images".
//                     last.safetensors also holds Adam's m and v as two flat tensors in the
//                     model's parameter layout, "vkvit.adam.m" and "vkvit.adam.v" (timm's last
//                     checkpoint likewise carries its optimizer), so --resume needs one file;
//                     best.safetensors and converted weights hold the model only.
//                     With train.model_ema, last.safetensors also holds the EMA weights as one
//                     flat tensor in the parameter layout, "vkvit.ema" (the model's own weights
//                     stay the main tensors, so eval, predict and info read them), and
//                     best.safetensors holds the EMA weights as its main tensors, the ones chosen
//                     by the EMA's val top-1 (timm saves its EMA as the best checkpoint), marked
//                     by "vkvit.weights": "ema" in __metadata__.
//                     A mixed-precision run's last.safetensors also holds its loss scaler's state,
//                     "vkvit.amp.loss_scale" and "vkvit.amp.good_steps" (train/loss_scaler.h).
// One file per checkpoint, written atomically (temp file, fsync, rename, fsync folder): a crash or
// a kill at any moment leaves the previous complete checkpoint or the new one, never a mix of a
// new optimizer state with old weights.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "model/vit.h"
#include "train/config.h"

namespace vkvit::train {

struct CheckpointMeta {
  RunConfig config;
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
  // Mixed precision (train.amp): the dynamic loss scale and its count of good steps since the
  // last change; loss_scale 0 = none saved.
  double loss_scale = 0;
  uint64_t loss_scale_good_steps = 0;
  // Which weights the main tensors are: "" the model's, "ema" the model EMA's (best.safetensors of
  // a run with train.model_ema).
  std::string weights;
};

// Names of the optimizer-state tensors inside a checkpoint; loaders of the model skip "vkvit.*".
constexpr const char* kAdamM = "vkvit.adam.m";
constexpr const char* kAdamV = "vkvit.adam.v";
constexpr const char* kEmaWeights = "vkvit.ema";  // the model EMA, the parameter layout (ops/ema.h)
// True for a tensor that is training state ("vkvit.*"), not part of the model.
inline bool is_training_state(const std::string& tensor_name) { return tensor_name.rfind("vkvit.", 0) == 0; }

// The model's weights, and Adam's m and v when given (both or neither, each the layout's
// total_floats() long).
// With `ema`, its flat weights (the layout's total_floats() long) are saved beside them as
// kEmaWeights.
void save_checkpoint(const std::string& path, const model::Vit& vit, const CheckpointMeta& meta,
                     const std::vector<float>* adam_m = nullptr, const std::vector<float>* adam_v = nullptr,
                     const std::vector<float>* ema = nullptr);
// A model-only checkpoint whose tensors are `flat` (in vit's parameter layout) instead of vit's own
// weights: best.safetensors holding the model EMA.
void save_checkpoint_weights(const std::string& path, const model::Vit& vit, const std::vector<float>& flat,
                             const CheckpointMeta& meta);
// The same file from host tensors with timm names (what `vkvit convert` writes).
void save_checkpoint_tensors(const std::string& path, const std::vector<model::Tensor>& tensors,
                             const CheckpointMeta& meta);
// Reads only the metadata (config, classes, progress); throws vkvit::Error naming the file.
CheckpointMeta read_checkpoint_meta(const std::string& path);
// The same from a file already read (`path` names it in errors).
CheckpointMeta checkpoint_meta(const model::SafeTensors& st, const std::string& path);
// Loads the weights into `vit`, whose config must match; reports every missing, unexpected or
// mis-shaped tensor at once.
void load_checkpoint_weights(const std::string& path, model::Vit& vit);

// Adam's m and v from a checkpoint that has them (`floats` elements each); throws vkvit::Error
// naming the file when it has none or they do not fit.
void load_optimizer_state(const std::string& path, uint64_t floats, std::vector<float>& m, std::vector<float>& v);

// The model EMA's flat weights from a checkpoint (`floats` elements); false when the file has none
// (a run that started without train.model_ema); throws vkvit::Error naming the file when they do
// not fit.
bool load_ema_weights(const std::string& path, uint64_t floats, std::vector<float>& ema);

}  // namespace vkvit::train
