// Fine-tuning: a new run that starts from trained weights instead of the init
// (`vkvit train --pretrained W`, train.pretrained: W; timm's --pretrained / --initial-checkpoint).
//
// W is a vkvit checkpoint (what train writes; of a last.safetensors with a model EMA inside, the
// main tensors are taken, the model's own weights, not the EMA), or "timm:FILE" /
// "torchvision:FILE", weights with those names as `vkvit convert --from` reads them. The
// config's model section must describe W except for
//   num_classes  the train folder's classes decide it; when W's head has another count, or W
//                is a vkvit checkpoint of other class names, head.weight and head.bias keep the
//                model's init for the run's count (timm's reset_classifier), said in one line;
//   image_size   pos_embed is resampled to the config's patch grid (model/weight_import.h).
// Any other difference is one error naming every tensor that does not fit, with both shapes.
// The optimizer starts fresh: step 0, Adam's moments zero, the schedule from its start.
#pragma once
#include <string>
#include <vector>

#include "model/vit.h"
#include "model/weight_import.h"
#include "train/config.h"

namespace vkvit::train {

// W as written: a vkvit checkpoint, or a file with timm / torchvision names.
struct PretrainedSource {
  std::string path;
  bool vkvit_checkpoint = true;
  model::WeightNames names = model::WeightNames::timm;  // the file's tensor names (vkvit's are timm's)
};
PretrainedSource parse_pretrained(const std::string& spec);

// `spec` with its file made absolute, as config.yaml records it: the run folder repeats the run
// from any working directory.
std::string absolute_pretrained(const std::string& spec);

// The class count of a run from pretrained weights: model.num_classes becomes the number of class
// folders in the train split (W's head does not decide it). `requested` > 0 (--num-classes, timm's
// flag) must equal that number, else an Error says so.
void take_class_count_from_folder(RunConfig& cfg, int requested);

// Loads cfg.train.pretrained into `vit`, which holds the model's init (Vit::init) for the run's
// `classes` (the train folder's): every tensor is replaced by W's, the head too when W was trained
// for these classes. Prints what it took on stderr unless `quiet`. Throws vkvit::Error naming W for
// a file that does not fit.
void load_pretrained(const RunConfig& cfg, const std::vector<std::string>& classes, model::Vit& vit, bool quiet);

}  // namespace vkvit::train
