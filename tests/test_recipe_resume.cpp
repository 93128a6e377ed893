// The whole DeiT recipe at once: a run with every training option on (RandAugment, random erasing,
// Mixup and CutMix, stochastic depth, model EMA, repeated augmentation, gradient accumulation,
// layer-wise lr decay, a frozen stem, label smoothing), stopped mid-epoch and resumed, retraces
// the uninterrupted run bit for bit: steps.csv, summary.csv's metrics and every tensor of
// last.safetensors (weights, Adam's moments, the EMA) are the same.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>

#include "harness.h"
#include "model/safetensors.h"
#include "stripes.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace vkvit;
using namespace vkvit::test;
namespace fs = std::filesystem;

TEST_CASE("a run with every recipe option on, resumed mid-epoch, retraces the uninterrupted run", "[train][recipe]") {
  TempDir dir("recipe-resume");
  const fs::path data = dir.path / "data";
  write_stripe_dataset(data, 16, 8, 4321, 3);  // 64 train, 32 val
  train::RunConfig cfg = train::RunConfig::parse(tiny_stripes_config_yaml(2, data.string()), "tiny_stripes.yaml");
  cfg.model.depth = 2;
  cfg.data.auto_augment = "rand-m9-mstd0.5-inc1";
  cfg.data.reprob = 0.25;
  cfg.data.repeated_aug = true;
  cfg.train.batch_size = 8;
  cfg.train.accum_steps = 2;  // 4 optimizer steps an epoch
  cfg.train.mixup = 0.8;
  cfg.train.cutmix = 1.0;
  cfg.train.drop_path = 0.2;
  cfg.train.model_ema = true;
  cfg.train.model_ema_decay = 0.9;
  cfg.train.layer_decay = 0.75;
  cfg.train.freeze = {"patch_embed.*"};
  cfg.train.label_smoothing = 0.1;
  CHECK(train_quietly(cfg, dir.path / "resumed", 3).stopped_early);  // inside epoch 1
  train_quietly(cfg, "", 0, (dir.path / "resumed/last.safetensors").string());
  train_quietly(cfg, dir.path / "whole");

  CHECK(read_file(dir.path / "resumed/steps.csv") == read_file(dir.path / "whole/steps.csv"));
  CHECK(lines_of(read_file(dir.path / "whole/steps.csv")).size() == 1 + 8);
  // summary.csv without its img_per_s column (the 7th), the one measurement of the machine.
  auto metrics = [](const std::string& csv) {
    std::string out;
    for (const std::string& line : lines_of(csv)) {
      size_t start = 0;
      for (int field = 0; field < 6; ++field) start = line.find(',', start) + 1;
      out += line.substr(0, start) + line.substr(line.find(',', start)) + "\n";
    }
    return out;
  };
  CHECK(metrics(read_file(dir.path / "resumed/summary.csv")) == metrics(read_file(dir.path / "whole/summary.csv")));
  const model::SafeTensors x = model::read_safetensors((dir.path / "resumed/last.safetensors").string());
  const model::SafeTensors y = model::read_safetensors((dir.path / "whole/last.safetensors").string());
  REQUIRE(x.tensors.size() == y.tensors.size());
  for (const model::Tensor& t : x.tensors) {
    INFO(t.name);
    const model::Tensor* u = y.find(t.name);
    REQUIRE(u != nullptr);
    REQUIRE(u->data.size() == t.data.size());
    CHECK(std::memcmp(t.data.data(), u->data.data(), t.data.size() * 4) == 0);
  }
}
