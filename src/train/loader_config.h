// The data side of a run config: the transforms and loader settings of one split, taken from the
// config's data, model and train sections.
#pragma once
#include "data/loader.h"
#include "train/config.h"

namespace vkvit::train {

// Train split (`train` true): RandomResizedCrop, flip, RandAugment and random erasing as configured;
// else the eval transform.
data::LoaderConfig loader_config(const RunConfig& cfg, bool train);

}  // namespace vkvit::train
