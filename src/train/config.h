// Run configuration: one YAML file = one reproducible run (model + data + optimizer + schedule).
// Loaded strictly (unknown keys, wrong types and out-of-range values are one-line errors naming the
// file, the key path and the line), fully resolved (presets expanded, mlp_ratio turned into
// mlp_dim) and written back as YAML into runs/<run>/config.yaml, so a run folder alone is enough
// to repeat the run. Names follow timm where timm has them.
//
// The keys: each section below is a struct with one member per key, initialised to the key's
// default (DeiT/timm ImageNet values; a file sets what differs). The key tables in
// config_keys.cpp give each key one line: its name, its member, how it is read and checked, and
// its meaning. README's "Run configs" paragraph names the same keys; tests/test_config.cpp checks
// it against the tables.
//
// Overrides (command-line flags) are "section.key=value" with the value read by YAML rules
// ("train.lr=1e-3", "data.mean=[0.5]") and checked exactly like the file; an override of
// model.preset replaces every model field with the preset's (apply it before field overrides).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/vit_config.h"

namespace vkvit::train {

// The shape of the model; the same fields as model::VitConfig (see to_vit_config).
struct ModelFields {
  std::string preset;  // informational once resolved: the fields below are what counts
  int image_size = 224;
  int patch_size = 16;
  int in_chans = 3;
  int dim = 768;
  int depth = 12;
  int heads = 12;
  int mlp_dim = 3072;
  int num_classes = 1000;
  std::string pool = "cls";
  std::string mixer = "attention";
  double ln_eps = 1e-6;
  std::string pos_embed = "learned";
  std::string norm = "pre";

  bool operator==(const ModelFields& o) const;
  bool operator!=(const ModelFields& o) const { return !(*this == o); }
  // "dim 64 vs 128, pool cls vs mean": the fields that differ from `o` (empty when equal).
  std::string differences(const ModelFields& o) const;
};

struct DataConfig {
  std::string dir;
  std::string train_split = "train";
  std::string val_split = "val";
  int workers = 4;
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
  double crop_pct = 0.875;
  std::string interpolation = "bicubic";
  bool random_resized_crop = true;
  std::vector<double> scale = {0.08, 1.0};
  std::vector<double> ratio = {3.0 / 4.0, 4.0 / 3.0};
  // Train: torchvision's RandomCrop(image_size, padding=p) after the eval resize + crop (zero
  // fill): shifts of up to p pixels without resampling, the usual augmentation for small images.
  // 0 = off; needs random_resized_crop false, which it replaces.
  int random_crop_padding = 0;
  double hflip = 0.5;
  std::string auto_augment;  // "" = off (DeiT: rand-m9-mstd0.5-inc1)
  double reprob = 0;  // DeiT: 0.25
  std::string remode = "pixel";
  int recount = 1;
  uint64_t max_pixels = 100000000;
  // Repeated augmentation (data/sampler.h, DeiT's RASampler): each shuffled image num_repeats
  // times in a row, each copy augmented on its own, the repeats dealt to different ranks, an
  // epoch as long as without it. DeiT trains ImageNet with it on.
  bool repeated_aug = false;
  int num_repeats = 3;
  // JPEGs decoded at 1/2, 1/4 or 1/8 size where the crop keeps this many times the output size
  // (data/transform.h); 0 = off, Pillow's pixels.
  double jpeg_dct_scaling = 0;

  bool operator==(const DataConfig& o) const;
  bool operator!=(const DataConfig& o) const { return !(*this == o); }
};

struct TrainConfig {
  int epochs = 300;
  int batch_size = 128;
  double lr = 5e-4;
  double min_lr = 1e-5;
  double warmup_epochs = 5;
  double warmup_lr = 1e-6;
  double weight_decay = 0.05;
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double clip_grad = 0;
  double label_smoothing = 0.1;
  double mixup = 0;         // Mixup alpha, 0 = off (DeiT: 0.8); train/mixup.h
  double cutmix = 0;        // CutMix alpha, 0 = off (DeiT: 1.0)
  double mixup_prob = 1.0;
  double mixup_switch_prob = 0.5;
  std::string mixup_mode = "batch";
  // Stochastic depth rate (timm's drop_path_rate; DeiT-S/B 0.1): block i of depth drops each
  // residual branch per image with probability drop_path * i / (depth - 1); 0 = off.
  double drop_path = 0;
  uint64_t seed = 42;
  int eval_every = 1;
  int log_every = 50;
  int max_nonfinite_steps = 5;
  bool amp = false;
  std::string lr_scaling = "none";
  // Model EMA (ops/ema.h): a moving average of the weights, evaluated beside the model each epoch;
  // best.safetensors then holds it. DeiT trains with 0.99996; timm's default is 0.9998.
  bool model_ema = false;
  double model_ema_decay = 0.9998;
  bool model_ema_warmup = false;
  // Fine-tuning (train/pretrained.h): the weights a new run starts from instead of the init, a
  // vkvit checkpoint or "timm:FILE" / "torchvision:FILE"; "" = the init.
  std::string pretrained;
  // Optimizer steps and parameter groups (train/param_groups.h): k micro-batches of batch_size per
  // optimizer step; timm's layer-wise lr decay (0 = off); frozen tensors by fnmatch pattern.
  int accum_steps = 1;
  double layer_decay = 0;
  std::vector<std::string> freeze;

  bool operator==(const TrainConfig& o) const;
  bool operator!=(const TrainConfig& o) const { return !(*this == o); }
};

struct OutputConfig {
  std::string dir = "runs";

  bool operator==(const OutputConfig& o) const;
  bool operator!=(const OutputConfig& o) const { return !(*this == o); }
};

struct RunConfig {
  ModelFields model;
  DataConfig data;
  TrainConfig train;
  OutputConfig output;

  // Not YAML keys: where the config came from. `name` is the file's stem ("fmnist_vit_tiny"), used
  // in the run folder's name; `source` is the path (or the label given to parse) used in errors.
  std::string name;
  std::string source;

  // Reads and checks a YAML file. Throws vkvit::Error "<path>:<line>: <key.path>: <reason>".
  static RunConfig load(const std::string& path);
  // The same from text; `source` stands for the file in errors, its stem becomes `name`.
  static RunConfig parse(const std::string& yaml_text, const std::string& source);

  // "section.key=value"; the value is YAML ("0.001", "[0.5, 0.5]", "bicubic"). Throws Error naming
  // the override and the key; the config is unchanged when it throws.
  void apply_override(const std::string& assignment);
  // Several at once, as given on one command line: the rules between fields are checked after the
  // last, so e.g. model.in_chans, data.mean and data.std can change together.
  void apply_overrides(const std::vector<std::string>& assignments);

  // The fully resolved config as YAML; parse(to_yaml()) gives back an equal config.
  std::string to_yaml() const;
  // Writes to_yaml() to `path` (temp file + rename, so a crash never leaves half a file).
  void save(const std::string& path) const;

  // Equality of the four sections (name and source are not compared).
  bool operator==(const RunConfig& o) const;
  bool operator!=(const RunConfig& o) const { return !(*this == o); }
};

// The model team's struct, for building the model (ln_eps is narrowed to float there).
model::VitConfig to_vit_config(const ModelFields& m);

}  // namespace vkvit::train
