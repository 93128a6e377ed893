// Run configuration: every shipped config loads, each kind of mistake (unknown key, wrong type,
// out-of-range value, malformed YAML, inconsistent fields) is one line naming the file, the key and
// the line, overrides go through the same checks, and config -> YAML -> config is exact. Also the
// run folder (config.yaml, summary.csv).
#include <catch2/catch.hpp>

#include "harness.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <unistd.h>

#include "base/error.h"
#include "train/config.h"
#include "train/config_keys.h"
#include "train/run_dir.h"

using namespace vkvit;
using namespace vkvit::train;
namespace fs = std::filesystem;
using vkvit::test::error_of;
using vkvit::test::TempDir;

namespace {

std::string parse_error(const std::string& yaml) {
  return error_of([&] { RunConfig::parse(yaml, "cfg/x.yaml"); });
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Sets every key to a value that differs from its default.
const char* kEverything = R"(model:
  image_size: 32
  patch_size: 4
  in_chans: 2
  dim: 48
  depth: 3
  heads: 6
  mlp_dim: 100
  num_classes: 7
  pool: mean
  mixer: [attention, global_filter, attention]
  ln_eps: 1.0e-5
  pos_embed: sincos
  norm: post
data:
  dir: "true"
  train_split: tr
  val_split: "1e5"
  workers: 3
  mean: [0.1, 0.30000000000000004]
  std: [0.7, 0.123456789012345]
  crop_pct: 0.9
  interpolation: lanczos
  random_resized_crop: false
  scale: [0.2, 0.9]
  ratio: [0.5, 2]
  random_crop_padding: 3
  hflip: 0
  auto_augment: rand-m7-n3-mstd1
  reprob: 0.3
  remode: const
  recount: 2
  max_pixels: 12345678901
  repeated_aug: true
  num_repeats: 5
  jpeg_dct_scaling: 1.5
train:
  epochs: 7
  batch_size: 33
  lr: 3.0e-4
  min_lr: 0
  warmup_epochs: 0.5
  warmup_lr: 2.0e-7
  weight_decay: 0
  betas: [0.8, 0.95]
  eps: 1.0e-6
  clip_grad: 1.5
  label_smoothing: 0
  mixup: 0.8
  cutmix: 1
  mixup_prob: 0.75
  mixup_switch_prob: 0.25
  mixup_mode: pair
  drop_path: 0.15
  seed: 9007199254740993
  eval_every: 2
  log_every: 7
  max_nonfinite_steps: 0
  amp: true
  lr_scaling: linear
  model_ema: true
  model_ema_decay: 0.999
  model_ema_warmup: true
  pretrained: timm:runs/a b/w.safetensors
  accum_steps: 3
  layer_decay: 0.65
  freeze: ["*", "!head.*"]
output:
  dir: "out dir/x: y"
)";

// kEverything as to_yaml() writes it: the format of runs/<run>/config.yaml and of the config in
// checkpoints (key order, quoting, number spelling), which older run folders were written in.
const char* kEverythingResolved = R"(# vkvit run config 'all', fully resolved (every key, presets expanded)
model:
  preset: ""
  image_size: 32
  patch_size: 4
  in_chans: 2
  dim: 48
  depth: 3
  heads: 6
  mlp_dim: 100
  num_classes: 7
  pool: mean
  mixer: attention,global_filter,attention
  ln_eps: 1.0e-05
  pos_embed: sincos
  norm: post
data:
  dir: "true"
  train_split: "tr"
  val_split: "1e5"
  workers: 3
  mean: [0.1, 0.30000000000000004]
  std: [0.7, 0.123456789012345]
  crop_pct: 0.9
  interpolation: lanczos
  random_resized_crop: false
  scale: [0.2, 0.9]
  ratio: [0.5, 2]
  random_crop_padding: 3
  hflip: 0
  auto_augment: "rand-m7-n3-mstd1"
  reprob: 0.3
  remode: const
  recount: 2
  max_pixels: 12345678901
  repeated_aug: true
  num_repeats: 5
  jpeg_dct_scaling: 1.5
train:
  epochs: 7
  batch_size: 33
  lr: 0.0003
  min_lr: 0
  warmup_epochs: 0.5
  warmup_lr: 2.0e-07
  weight_decay: 0
  betas: [0.8, 0.95]
  eps: 1.0e-06
  clip_grad: 1.5
  label_smoothing: 0
  mixup: 0.8
  cutmix: 1
  mixup_prob: 0.75
  mixup_switch_prob: 0.25
  mixup_mode: pair
  drop_path: 0.15
  seed: 9007199254740993
  eval_every: 2
  log_every: 7
  max_nonfinite_steps: 0
  amp: true
  lr_scaling: linear
  model_ema: true
  model_ema_decay: 0.999
  model_ema_warmup: true
  pretrained: "timm:runs/a b/w.safetensors"
  accum_steps: 3
  layer_decay: 0.65
  freeze: ["*", "!head.*"]
output:
  dir: "out dir/x: y"
)";

}  // namespace

TEST_CASE("every config in configs/ loads, resolves a valid model and round-trips", "[config]") {
  const fs::path dir = fs::path(VKVIT_SOURCE_DIR) / "configs";
  int count = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    INFO(entry.path().string());
    ++count;
    const RunConfig c = RunConfig::load(entry.path().string());
    CHECK(c.name == entry.path().stem().string());
    CHECK_NOTHROW(to_vit_config(c.model).validate());
    CHECK(c.data.mean.size() == size_t(c.model.in_chans));
    CHECK(RunConfig::parse(c.to_yaml(), "resolved.yaml") == c);
  }
  CHECK(count >= 5);

  const RunConfig tiny = RunConfig::load((dir / "fmnist_vit_tiny.yaml").string());
  CHECK(tiny.model.image_size == 28);
  CHECK(tiny.model.in_chans == 1);
  CHECK(tiny.data.mean == std::vector<double>{0.2860});
  CHECK(tiny.data.std == std::vector<double>{0.3530});
  CHECK_FALSE(tiny.data.random_resized_crop);
  CHECK(tiny.train.label_smoothing == 0.1);
  // The demo config spells out the vit_fmnist_tiny preset.
  const model::VitConfig tiny_model = to_vit_config(tiny.model), tiny_preset = model::VitConfig::preset("vit_fmnist_tiny");
  CHECK(tiny_model.patch_size == tiny_preset.patch_size);
  CHECK(tiny_model.dim == tiny_preset.dim);
  CHECK(tiny_model.depth == tiny_preset.depth);
  CHECK(tiny_model.heads == tiny_preset.heads);
  CHECK(tiny_model.mlp_dim == tiny_preset.mlp_dim);
  CHECK(tiny_model.pool == tiny_preset.pool);

  const RunConfig b16 = RunConfig::load((dir / "imagenet_vit_b16.yaml").string());
  CHECK(b16.train.lr == 5e-4 * b16.train.batch_size / 512);
  CHECK(b16.train.epochs == 300);
  CHECK(b16.data.interpolation == "bicubic");
  CHECK(b16.data.crop_pct == 0.875);
  const model::VitConfig base = model::VitConfig::preset("vit_base_patch16_224");
  CHECK(b16.model.dim == base.dim);
  CHECK(b16.model.mlp_dim == base.mlp_dim);
  CHECK(b16.model.heads == base.heads);
}

TEST_CASE("keys not in the file keep the documented defaults", "[config]") {
  const RunConfig c = RunConfig::parse("train:\n  epochs: 20\n", "runs/min.yaml");
  CHECK(c.name == "min");
  CHECK(c.source == "runs/min.yaml");
  CHECK(c.train.epochs == 20);
  const RunConfig d;
  CHECK(c.model == d.model);
  CHECK(c.data == d.data);
  CHECK(c.output == d.output);
  CHECK(c.train.lr == 5e-4);
  CHECK(c.train.min_lr == 1e-5);
  CHECK(c.train.warmup_epochs == 5);
  CHECK(c.train.warmup_lr == 1e-6);
  CHECK(c.train.weight_decay == 0.05);
  CHECK(c.train.label_smoothing == 0.1);
  CHECK(c.train.clip_grad == 0);
  CHECK(c.data.interpolation == "bicubic");
  CHECK(c.data.scale == std::vector<double>{0.08, 1.0});
  CHECK(c.output.dir == "runs");
  // An empty section is allowed and changes nothing.
  CHECK(RunConfig::parse("output:\n", "e.yaml").output.dir == "runs");
}

TEST_CASE("an unknown key names the file, the line, the key path and the valid keys", "[config]") {
  const std::string e = parse_error("train:\n  epochs: 20\n  lr_base: 0.1\n");
  CHECK_THAT(e, Catch::StartsWith("cfg/x.yaml:3: train.lr_base: unknown key"));
  CHECK_THAT(e, Catch::Contains("label_smoothing"));
  CHECK_THAT(parse_error("optimizer:\n  lr: 1\n"), Catch::StartsWith("cfg/x.yaml:1: optimizer: unknown section"));
  CHECK_THAT(parse_error("train:\n  lr: 0.1\n  lr: 0.2\n"), Catch::StartsWith("cfg/x.yaml:3: train.lr: key given twice"));
  CHECK_THAT(parse_error("train: {}\ntrain: {}\n"), Catch::StartsWith("cfg/x.yaml:2: train: section given twice"));
  CHECK_THAT(parse_error("train: 5\n"), Catch::Contains("train: expected a mapping"));
  CHECK_THAT(parse_error("- train\n"), Catch::Contains("the top level must be a mapping"));
  CHECK_THAT(parse_error(""), Catch::Contains("the config is empty"));
}

TEST_CASE("a value of the wrong type names key and line", "[config]") {
  CHECK(parse_error("\ntrain:\n  lr: fast\n") == "cfg/x.yaml:3: train.lr: expected a number, got 'fast'");
  // Quoted, a number is a string.
  CHECK_THAT(parse_error("train:\n  lr: \"0.001\"\n"), Catch::StartsWith("cfg/x.yaml:2: train.lr: expected a number"));
  CHECK_THAT(parse_error("train:\n  epochs: 2.5\n"),
             Catch::StartsWith("cfg/x.yaml:2: train.epochs: expected an integer, got '2.5'"));
  CHECK_THAT(parse_error("train:\n  lr: [1, 2]\n"), Catch::StartsWith("cfg/x.yaml:2: train.lr: expected a number, got a list"));
  CHECK_THAT(parse_error("train:\n  lr:\n"), Catch::StartsWith("cfg/x.yaml:2: train.lr: expected a number, got nothing"));
  CHECK_THAT(parse_error("data:\n  random_resized_crop: 1\n"),
             Catch::StartsWith("cfg/x.yaml:2: data.random_resized_crop: expected true or false"));
  CHECK_THAT(parse_error("data:\n  mean: 0.5\n"), Catch::StartsWith("cfg/x.yaml:2: data.mean: expected a list of numbers"));
  CHECK_THAT(parse_error("data:\n  mean: [0.5, x, 0.5]\n"),
             Catch::StartsWith("cfg/x.yaml:2: data.mean[1]: expected a number, got 'x'"));
  CHECK_THAT(parse_error("model:\n  pool: {a: 1}\n"), Catch::StartsWith("cfg/x.yaml:2: model.pool: expected a string"));
}

TEST_CASE("out-of-range values name key, line and the allowed range", "[config]") {
  struct Case {
    std::string yaml, start;
  };
  const Case cases[] = {
      {"train:\n  lr: 0\n", "cfg/x.yaml:2: train.lr: must be > 0, got 0"},
      {"train:\n  lr: -1.0e-3\n", "cfg/x.yaml:2: train.lr: must be > 0, got -0.001"},
      {"train:\n  lr: .nan\n", "cfg/x.yaml:2: train.lr: must be finite"},
      {"train:\n  label_smoothing: 1.0\n", "cfg/x.yaml:2: train.label_smoothing: must be in [0, 1), got 1"},
      {"train:\n  label_smoothing: -0.1\n", "cfg/x.yaml:2: train.label_smoothing: must be in [0, 1)"},
      {"train:\n  batch_size: 0\n", "cfg/x.yaml:2: train.batch_size: must be in [1, "},
      {"train:\n  epochs: -3\n", "cfg/x.yaml:2: train.epochs: must be in [1, "},
      {"train:\n  weight_decay: -0.05\n", "cfg/x.yaml:2: train.weight_decay: must be >= 0"},
      {"train:\n  betas: [0.9]\n", "cfg/x.yaml:2: train.betas: expected a list of 2 numbers, got 1"},
      {"train:\n  betas: [0.9, 1.0]\n", "cfg/x.yaml:2: train.betas: each beta must be in [0, 1)"},
      {"train:\n  eps: 0\n", "cfg/x.yaml:2: train.eps: must be > 0"},
      {"train:\n  clip_grad: -1\n", "cfg/x.yaml:2: train.clip_grad: must be >= 0 (0 = off)"},
      {"train:\n  seed: -1\n", "cfg/x.yaml:2: train.seed: must be in [0, "},
      {"train:\n  eval_every: 0\n", "cfg/x.yaml:2: train.eval_every: must be in [1, "},
      {"model:\n  patch_size: -4\n", "cfg/x.yaml:2: model.patch_size: must be in [1, "},
      {"model:\n  dim: 0\n", "cfg/x.yaml:2: model.dim: must be in [1, "},
      {"model:\n  pool: avg\n", "cfg/x.yaml:2: model.pool: must be one of cls | mean, got 'avg'"},
      {"model:\n  norm: sandwich\n", "cfg/x.yaml:2: model.norm: must be one of pre | post, got 'sandwich'"},
      {"model:\n  pos_embed: fixed\n", "cfg/x.yaml:2: model.pos_embed: must be one of learned | sincos, got 'fixed'"},
      {"model:\n  ln_eps: 0\n", "cfg/x.yaml:2: model.ln_eps: must be in (0, 1)"},
      {"model:\n  mlp_ratio: 0\n", "cfg/x.yaml:2: model.mlp_ratio: must be > 0"},
      {"data:\n  crop_pct: 1.5\n", "cfg/x.yaml:2: data.crop_pct: must be in (0, 1]"},
      {"data:\n  hflip: 2\n", "cfg/x.yaml:2: data.hflip: is a probability in [0, 1], got 2"},
      {"data:\n  jpeg_dct_scaling: 0.5\n", "cfg/x.yaml:2: data.jpeg_dct_scaling: is 0 (off) or a gap in [1, 64], got 0.5"},
      {"data:\n  scale: [0.5, 0.1]\n", "cfg/x.yaml:2: data.scale: min must be <= max"},
      {"data:\n  scale: [0.5, 1.5]\n", "cfg/x.yaml:2: data.scale: max must be <= 1"},
      {"data:\n  ratio: [0, 1]\n", "cfg/x.yaml:2: data.ratio: values must be > 0"},
      {"data:\n  std: [0.2, 0, 0.2]\n", "cfg/x.yaml:2: data.std: every value must be > 0"},
      {"data:\n  interpolation: cubic\n", "cfg/x.yaml:2: data.interpolation: must be one of nearest | bilinear"},
      {"data:\n  workers: 0\n", "cfg/x.yaml:2: data.workers: must be in [1, 256]"},
      {"data:\n  max_pixels: 0\n", "cfg/x.yaml:2: data.max_pixels: must be in [1, "},
      {"data:\n  train_split: \"\"\n", "cfg/x.yaml:2: data.train_split: must not be empty"},
      {"output:\n  dir: \"\"\n", "cfg/x.yaml:2: output.dir: must not be empty"},
  };
  for (const Case& c : cases) {
    INFO(c.yaml);
    CHECK_THAT(parse_error(c.yaml), Catch::StartsWith(c.start));
  }
}

TEST_CASE("rules between fields name the key and its line", "[config]") {
  CHECK_THAT(parse_error("model:\n  heads: 3\n  dim: 100\n"),
             Catch::StartsWith("cfg/x.yaml:3: model.dim: dim 100 must be a multiple of heads 3"));
  CHECK_THAT(parse_error("model:\n  image_size: 30\n  patch_size: 7\n"),
             Catch::StartsWith("cfg/x.yaml:2: model.image_size: image_size 30 must be a multiple of patch_size 7"));
  CHECK_THAT(parse_error("model:\n  in_chans: 1\ndata:\n  mean: [0.5, 0.5]\n  std: [0.5]\n"),
             Catch::StartsWith("cfg/x.yaml:4: data.mean: has 2 values, model.in_chans is 1"));
  // A key left at its default has no line: the file is named alone.
  CHECK_THAT(parse_error("model:\n  in_chans: 1\n"), Catch::StartsWith("cfg/x.yaml: data.mean: has 3 values"));
  CHECK_THAT(parse_error("data:\n  random_crop_padding: 2\n"),
             Catch::StartsWith("cfg/x.yaml:2: data.random_crop_padding: needs data.random_resized_crop: false"));
  CHECK_THAT(parse_error("data:\n  random_crop_padding: -1\n"),
             Catch::StartsWith("cfg/x.yaml:2: data.random_crop_padding: must be in [0, 4096]"));
  CHECK_THAT(parse_error("train:\n  lr: 1.0e-4\n  min_lr: 1.0e-3\n"),
             Catch::StartsWith("cfg/x.yaml:3: train.min_lr: must be <= train.lr (0.001 > 0.0001)"));
  // A warmup longer than the run is not an error: it is a short run of a long config.
  CHECK(RunConfig::parse("train:\n  epochs: 2\n", "short.yaml").train.warmup_epochs == 5);
  CHECK_THAT(parse_error("model:\n  mixer: fourier\n"), Catch::Contains("mixer"));
  CHECK_THAT(parse_error("model:\n  mlp_dim: 64\n  mlp_ratio: 2\n"),
             Catch::StartsWith("cfg/x.yaml:3: model.mlp_ratio: give mlp_dim or mlp_ratio, not both"));
}

TEST_CASE("malformed YAML is one line with its line number", "[config]") {
  CHECK_THAT(parse_error("train:\n  lr: 0.1\n  betas: [0.9, 0.99\n"), Catch::Matches("cfg/x\\.yaml:\\d+: malformed YAML: .+"));
  CHECK_THAT(parse_error("train:\n  lr: 0.1\n   epochs: 3\n  x: [\n"), Catch::StartsWith("cfg/x.yaml:3: malformed YAML"));
  const std::string e = error_of([] { RunConfig::load("/nonexistent/vkvit.yaml"); });
  CHECK_THAT(e, Catch::StartsWith("/nonexistent/vkvit.yaml: cannot read the config"));
}

TEST_CASE("a preset is applied first and explicit fields override it, mlp_ratio sets mlp_dim", "[config]") {
  const RunConfig c =
      RunConfig::parse("model:\n  num_classes: 10\n  preset: vit_small_patch16_224\n", "p.yaml");
  const model::VitConfig s = model::VitConfig::preset("vit_small_patch16_224");
  CHECK(c.model.preset == "vit_small_patch16_224");
  CHECK(c.model.dim == s.dim);
  CHECK(c.model.heads == s.heads);
  CHECK(c.model.mlp_dim == s.mlp_dim);
  CHECK(c.model.num_classes == 10);
  CHECK(c.model.ln_eps == 1e-6);  // the float preset value, read as the decimal it was written as

  const RunConfig r = RunConfig::parse("model:\n  mlp_ratio: 2.5\n  dim: 64\n  heads: 4\n", "r.yaml");
  CHECK(r.model.mlp_dim == 160);
  // The resolved YAML holds mlp_dim, not the ratio.
  CHECK(r.to_yaml().find("mlp_ratio") == std::string::npos);
  CHECK(RunConfig::parse(r.to_yaml(), "r2.yaml") == r);

  const std::string e = parse_error("model:\n  preset: vit_huge\n");
  CHECK_THAT(e, Catch::StartsWith("cfg/x.yaml:2: model.preset: unknown model 'vit_huge'"));
  CHECK_THAT(e, Catch::Contains("vit_fmnist_tiny"));
}

TEST_CASE("overrides parse the value as YAML and pass the same checks", "[config]") {
  RunConfig c = RunConfig::load(std::string(VKVIT_SOURCE_DIR) + "/configs/fmnist_vit_tiny.yaml");
  c.apply_override("train.lr=0.002");
  CHECK(c.train.lr == 0.002);
  c.apply_override("train.epochs=3");
  CHECK(c.train.epochs == 3);
  c.apply_override("data.mean=[0.5]");
  CHECK(c.data.mean == std::vector<double>{0.5});
  c.apply_override("data.interpolation=bicubic");
  CHECK(c.data.interpolation == "bicubic");
  c.apply_override("data.dir=/tmp/x=y");  // only the first '=' splits
  CHECK(c.data.dir == "/tmp/x=y");
  c.apply_override("data.dir=");
  CHECK(c.data.dir.empty());
  c.apply_override("model.mlp_ratio=3");
  CHECK(c.model.mlp_dim == 3 * c.model.dim);

  const RunConfig before = c;
  auto err = [&](const std::string& a) { return error_of([&] { c.apply_override(a); }); };
  CHECK(err("train.lr=-1") == "override 'train.lr=-1': train.lr: must be > 0, got -1");
  CHECK_THAT(err("train.lr=fast"), Catch::StartsWith("override 'train.lr=fast': train.lr: expected a number"));
  CHECK_THAT(err("train.lr="), Catch::StartsWith("override 'train.lr=': train.lr: missing value"));
  CHECK_THAT(err("train.lr=[1"), Catch::StartsWith("override 'train.lr=[1': train.lr: malformed value"));
  CHECK_THAT(err("train.lrr=1"), Catch::StartsWith("override 'train.lrr=1': train.lrr: unknown key"));
  CHECK_THAT(err("optim.lr=1"), Catch::StartsWith("override 'optim.lr=1': optim.lr: unknown section"));
  CHECK_THAT(err("lr=1"), Catch::StartsWith("override 'lr=1': lr: expected section.key"));
  CHECK_THAT(err("train.lr"), Catch::StartsWith("override 'train.lr': expected section.key=value"));
  // A rule between fields names the key it breaks.
  CHECK_THAT(err("train.lr=1e-6"), Catch::StartsWith("override 'train.lr=1e-6': train.min_lr: must be <= train.lr"));
  CHECK_THAT(err("model.in_chans=3"), Catch::StartsWith("override 'model.in_chans=3': data.mean: has 1 values"));
  CHECK(c == before);  // a failed override changes nothing

  // Overrides given together are checked together: a preset override replaces the model fields,
  // and here needs three-channel mean and std at the same time.
  CHECK_THAT(err("model.preset=vit_tiny_patch16_224"), Catch::Contains("data.mean: has 1 values, model.in_chans is 3"));
  const std::string both = error_of([&] { c.apply_overrides({"model.preset=vit_tiny_patch16_224", "data.mean=[0.5, 0.5, 0.5]"}); });
  CHECK_THAT(both, Catch::StartsWith("overrides 'model.preset=vit_tiny_patch16_224', 'data.mean=[0.5, 0.5, 0.5]': data.std: has 1 values"));
  CHECK(c == before);
  c.apply_overrides({"model.preset=vit_tiny_patch16_224", "model.num_classes=10", "data.mean=[0.5, 0.5, 0.5]",
                     "data.std=[0.5, 0.5, 0.5]"});
  CHECK(c.model.dim == 192);
  CHECK(c.model.image_size == 224);
  CHECK(c.model.num_classes == 10);
}

TEST_CASE("config to YAML to config is exact for every field", "[config]") {
  const RunConfig a = RunConfig::parse(kEverything, "all.yaml");
  // Every field differs from the default, so a field the writer forgot cannot pass.
  const RunConfig d;
  CHECK(a.model != d.model);
  CHECK(a.data.dir == "true");
  CHECK(a.data.val_split == "1e5");
  CHECK(a.data.max_pixels == 12345678901ull);
  CHECK(a.train.seed == 9007199254740993ull);
  CHECK(a.output.dir == "out dir/x: y");
  const std::string yaml = a.to_yaml();
  INFO(yaml);
  CHECK(yaml == kEverythingResolved);
  const RunConfig b = RunConfig::parse(yaml, "all.yaml");
  CHECK(b.model == a.model);
  CHECK(b.data == a.data);
  CHECK(b.train == a.train);
  CHECK(b.output == a.output);
  CHECK(b.to_yaml() == yaml);
  // Floats are written short and as floats for any YAML reader.
  CHECK(yaml.find("lr: 0.0003") != std::string::npos);
  CHECK(yaml.find("warmup_lr: 2.0e-07") != std::string::npos);
  CHECK(yaml.find("mean: [0.1, 0.30000000000000004]") != std::string::npos);

  TempDir tmp("config-save");
  const std::string path = (tmp.path / "saved.yaml").string();
  a.save(path);
  const RunConfig c = RunConfig::load(path);
  CHECK(c == a);
  CHECK(c.name == "saved");
}

TEST_CASE("every key has one table line with its doc, and every kept key is written and compared", "[config]") {
  const std::string defaults = RunConfig().to_yaml();
  for_each_section([&](const auto& section) {
    std::set<std::string> names;
    for (const auto& key : section.keys) {
      const std::string path = section.name + ("." + std::string(key.name));
      INFO(path);
      CHECK(names.insert(key.name).second);
      CHECK_FALSE(std::string(key.doc).empty());
      // Only mlp_ratio is read but not kept: it is resolved into mlp_dim.
      CHECK(!key.write == (path == "model.mlp_ratio"));
      CHECK(!key.difference == !key.write);
      if (key.write) CHECK(defaults.find("\n  " + std::string(key.name) + ": ") != std::string::npos);
    }
  });
}

TEST_CASE("README's paragraph on run configs names exactly the keys of the tables", "[config]") {
  const std::string readme = read_text(fs::path(VKVIT_SOURCE_DIR) / "README.md");
  const size_t start = readme.find("Run configs (configs/*.yaml) have four sections:");
  REQUIRE(start != std::string::npos);
  const std::string paragraph = readme.substr(start, readme.find("\n\n", start) - start);
  for_each_section([&](const auto& section) {
    INFO(section.name);
    // "`model` (image_size, ..., mlp_dim or mlp_ratio, ..., or a `preset`)"
    const std::string opening = "`" + std::string(section.name) + "` (";
    const size_t open = paragraph.find(opening);
    REQUIRE(open != std::string::npos);
    const size_t from = open + opening.size();
    const std::string list = paragraph.substr(from, paragraph.find(')', from) - from);
    std::set<std::string> named, keys;
    const std::regex word("[a-z0-9_]+");
    for (auto it = std::sregex_iterator(list.begin(), list.end(), word); it != std::sregex_iterator(); ++it)
      if (it->str() != "or" && it->str() != "a") named.insert(it->str());
    for (const auto& key : section.keys) keys.insert(key.name);
    std::string not_in_readme, not_a_key;
    for (const std::string& k : keys)
      if (!named.count(k)) not_in_readme += " " + k;
    for (const std::string& k : named)
      if (!keys.count(k)) not_a_key += " " + k;
    CHECK(not_in_readme == "");
    CHECK(not_a_key == "");
  });
}

TEST_CASE("a run folder holds the resolved config and appends summary rows", "[config]") {
  TempDir tmp("run-dir");
  RunConfig cfg = RunConfig::load(std::string(VKVIT_SOURCE_DIR) + "/configs/fmnist_vit_tiny.yaml");
  cfg.output.dir = (tmp.path / "runs").string();
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 10;
  tm.tm_mday = 23;
  tm.tm_hour = 9;
  tm.tm_min = 5;
  tm.tm_sec = 7;
  tm.tm_isdst = -1;
  const std::time_t t = std::mktime(&tm);

  const RunDir run = RunDir::create(cfg, "", t);
  CHECK(run.path() == (tmp.path / "runs" / "20261123-090507-fmnist_vit_tiny").string());
  CHECK(RunConfig::load(run.file("config.yaml")) == cfg);
  // The same second again gets its own folder.
  const RunDir again = RunDir::create(cfg, "", t);
  CHECK(again.path() == run.path() + "-2");

  SummaryRow r;
  r.epoch = 1;
  r.train_loss = 1.25;
  r.val_loss = 0.875;
  r.val_top1 = 71.5;
  r.val_top5 = 98.25;
  r.lr = 1e-3;
  r.img_per_s = 1234.5;
  r.skipped_files = 2;
  run.append_summary(r);
  r.epoch = 2;
  r.val_loss = r.val_top1 = r.val_top5 = std::nan("");  // no evaluation this epoch
  run.append_summary(r);
  CHECK(read_text(run.file("summary.csv")) ==
        "epoch,train_loss,val_loss,val_top1,val_top5,lr,img_per_s,skipped_files\n"
        "1,1.25,0.875,71.5,98.25,0.001,1234.5,2\n"
        "2,1.25,,,,0.001,1234.5,2\n");
  // Resuming appends to the same file.
  RunDir::open(run.path()).append_summary(r);
  CHECK(read_text(run.file("summary.csv")).find("2,1.25,,,,0.001,1234.5,2\n2,1.25") != std::string::npos);

  // An explicit --output folder is used as is, once.
  const std::string out = (tmp.path / "mine" / "run1").string();
  CHECK(RunDir::create(cfg, out).path() == out);
  CHECK(fs::exists(fs::path(out) / "config.yaml"));
  CHECK_THAT(error_of([&] { RunDir::create(cfg, out); }), Catch::Contains("the output folder is not empty"));

  std::ofstream(again.file("summary.csv")) << "step,loss\n1,2\n";
  CHECK_THAT(error_of([&] { again.append_summary(r); }), Catch::Contains("its header is not vkvit's"));
  CHECK_THAT(error_of([&] { RunDir::open((tmp.path / "nope").string()); }), Catch::Contains("not a run folder"));
}
