#include "stripes.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <opencv2/imgcodecs.hpp>

#include "harness.h"

namespace vkvit::test {

const std::vector<std::string>& stripe_classes() {
  static const std::vector<std::string> names = {"diag_down", "diag_up", "horizontal", "vertical"};
  return names;
}

cv::Mat stripe_image(int k, cv::RNG& rng) {
  const int side = 16, phase = rng.uniform(0, 4);
  const double lo = rng.uniform(20.0, 80.0), hi = rng.uniform(170.0, 235.0);
  cv::Mat m(side, side, CV_8UC1);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) {
      // diag_down: constant along x = -y; diag_up; horizontal; vertical.
      const int t = k == 0 ? x + y : k == 1 ? x - y + side : k == 2 ? y : x;
      m.at<uint8_t>(y, x) = cv::saturate_cast<uint8_t>((((t + phase) / 2) % 2 ? hi : lo) + rng.gaussian(18.0));
    }
  return m;
}

void write_stripe_dataset(const std::filesystem::path& root, int train_per_class, int val_per_class, uint64_t seed,
                          int name_digits) {
  cv::RNG rng(seed);
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", train_per_class}, {"val", val_per_class}})
    for (int k = 0; k < static_cast<int>(stripe_classes().size()); ++k) {
      const std::filesystem::path dir = root / split / stripe_classes()[k];
      std::filesystem::create_directories(dir);
      for (int i = 0; i < n; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%0*d.png", name_digits, i);
        REQUIRE(cv::imwrite((dir / name).string(), stripe_image(k, rng)));
      }
    }
}

std::string tiny_stripes_config_yaml(int epochs, const std::string& data_dir) {
  return "model:\n"
         "  image_size: 16\n"
         "  patch_size: 4\n"
         "  in_chans: 1\n"
         "  dim: 32\n"
         "  depth: 1\n"
         "  heads: 2\n"
         "  mlp_dim: 64\n"
         "  num_classes: 4\n"
         "data:\n" +
         (data_dir.empty() ? std::string() : "  dir: " + data_dir + "\n") +
         "  workers: 1\n"
         "  mean: [0.5]\n"
         "  std: [0.25]\n"
         "  crop_pct: 1.0\n"
         "  interpolation: bilinear\n"
         "  random_resized_crop: false\n"
         "  hflip: 0\n"
         "train:\n"
         "  epochs: " + std::to_string(epochs) + "\n"
         "  batch_size: 16\n"
         "  lr: 3.0e-3\n"
         "  min_lr: 1.0e-4\n"
         "  warmup_epochs: 0.5\n"
         "  warmup_lr: 1.0e-4\n"
         "  weight_decay: 0.05\n"
         "  label_smoothing: 0.0\n"
         "  seed: 7\n";
}

train::TrainResult train_quietly(const train::RunConfig& cfg, const std::filesystem::path& output, uint64_t max_steps,
                                 const std::string& resume) {
  train::TrainOptions o;
  if (resume.empty()) o.output = output.string();
  o.resume = resume;
  o.quiet = true;
  o.max_steps = max_steps;
  return train::train(ctx(), cfg, o);
}

}  // namespace vkvit::test
