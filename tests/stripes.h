// A small learnable image dataset for end-to-end tests: 16x16 grayscale stripes in four
// orientations (random phase and contrast, pixel noise), and the tiny run config that learns it.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "train/config.h"
#include "train/trainer.h"

namespace vkvit::test {

// Class names in sorted order, so ImageFolder's label order is this order.
const std::vector<std::string>& stripe_classes();

// One image of class k: stripes of period 4 (2 bright, 2 dark rows/columns/diagonals).
cv::Mat stripe_image(int k, cv::RNG& rng);

// root/{train,val}/<class>/<i>.png from one generator seeded with `seed`; `name_digits` zero-pads
// the index (0: no padding).
void write_stripe_dataset(const std::filesystem::path& root, int train_per_class, int val_per_class, uint64_t seed,
                          int name_digits);

// Grayscale, no augmentation (the stripes are the whole signal), one worker so the cores are left
// to lavapipe. `data_dir` empty: no data.dir line (given on the command line instead).
std::string tiny_stripes_config_yaml(int epochs, const std::string& data_dir = "");

// Trains `cfg` in this process on the suite's device, quietly: a new run in `output`, or, with
// `resume` (a last.safetensors), that run continued (`output` unused). max_steps 0: every epoch.
train::TrainResult train_quietly(const train::RunConfig& cfg, const std::filesystem::path& output,
                                 uint64_t max_steps = 0, const std::string& resume = "");

}  // namespace vkvit::test
