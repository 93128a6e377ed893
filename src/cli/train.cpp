// `vkvit train`: train a ViT from a YAML run config on an ImageFolder dataset.
#include <cstdio>
#include <utility>

#include "base/error.h"
#include "cli/commands.h"
#include "dist/comm.h"
#include "train/config.h"
#include "train/pretrained.h"
#include "train/progress.h"
#include "train/trainer.h"

namespace vkvit::cli {

namespace {
struct TrainArgs {
  std::string config;
  std::string data_dir, output, resume, pretrained;
  int batch_size = 0, epochs = 0, num_classes = 0;
  double lr = 0;
  long long seed = -1;
  std::string aa;
  double reprob = -1;
  bool model_ema = false;
  double model_ema_decay = -1;
  double mixup = -1, cutmix = -1;
  double drop_path = -1;
  int accum_steps = 0;
  double layer_decay = -1;
  std::vector<std::string> freeze;
  bool linear_probe = false;
  std::vector<std::string> overrides;
  bool quiet = false;
  uint64_t max_steps = 0;
};

// The flags of timm's recipe (augmentation, regularisation, optimizer steps, parameter groups),
// each the short form of a config key.
void add_recipe_flags(CLI::App* cmd, TrainArgs& a) {
  cmd->add_option("--aa", a.aa, "RandAugment string as timm's --aa, e.g. rand-m9-mstd0.5-inc1 (data.auto_augment)");
  cmd->add_option("--reprob", a.reprob, "Random erasing probability as timm's --reprob (data.reprob)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--model-ema", a.model_ema,
                "Keep a moving average of the weights, evaluated each epoch; best.safetensors holds it "
                "(train.model_ema)");
  cmd->add_option("--model-ema-decay", a.model_ema_decay, "EMA decay as timm's --model-ema-decay (train.model_ema_decay)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--mixup", a.mixup, "Mixup alpha as timm's --mixup, 0 = off (train.mixup)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--cutmix", a.cutmix, "CutMix alpha as timm's --cutmix, 0 = off (train.cutmix)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--drop-path", a.drop_path, "Stochastic depth rate as timm's --drop-path, 0 = off (train.drop_path)")
      ->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--accum-steps", a.accum_steps,
                  "Micro-batches per optimizer step (gradient accumulation; train.accum_steps)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--layer-decay", a.layer_decay, "Layer-wise lr decay as timm's --layer-decay (train.layer_decay)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--freeze", a.freeze,
                  "Freeze the tensors matching these fnmatch patterns, in order, !pattern unfreezes "
                  "(train.freeze), e.g. --freeze 'patch_embed.*' cls_token pos_embed 'blocks.[0-5].*'");
  cmd->add_flag("--linear-probe", a.linear_probe, "Train the head only: --freeze '*' '!head.*'");
}

// "key=value" with the value printed exactly (%.17g).
std::string number_override(const char* key, double value) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s=%.17g", key, value);
  return buf;
}

// The flags given, as config overrides applied to cfg (flags not given leave the config alone).
void apply_flags(train::RunConfig& cfg, TrainArgs& a) {
  std::vector<std::string> ov = a.overrides;
  if (!a.data_dir.empty()) ov.push_back("data.dir=" + a.data_dir);
  if (a.batch_size) ov.push_back("train.batch_size=" + std::to_string(a.batch_size));
  if (a.epochs) ov.push_back("train.epochs=" + std::to_string(a.epochs));
  if (a.lr > 0) ov.push_back(number_override("train.lr", a.lr));
  if (a.seed >= 0) ov.push_back("train.seed=" + std::to_string(a.seed));
  if (!a.aa.empty()) ov.push_back("data.auto_augment=" + a.aa);
  // The numeric recipe flags: -1 when not given.
  for (const auto& [key, value] :
       {std::pair{"data.reprob", a.reprob}, std::pair{"train.mixup", a.mixup}, std::pair{"train.cutmix", a.cutmix},
        std::pair{"train.model_ema_decay", a.model_ema_decay}, std::pair{"train.drop_path", a.drop_path},
        std::pair{"train.layer_decay", a.layer_decay}})
    if (value >= 0) ov.push_back(number_override(key, value));
  if (a.model_ema) ov.push_back("train.model_ema=true");
  if (a.accum_steps) ov.push_back("train.accum_steps=" + std::to_string(a.accum_steps));
  if (a.linear_probe && !a.freeze.empty())
    throw CLI::ValidationError("--linear-probe", "freezes everything but head.*; give it or --freeze, not both");
  if (a.linear_probe) a.freeze = {"*", "!head.*"};
  if (!a.freeze.empty()) cfg.train.freeze = a.freeze;  // patterns may hold YAML's special characters
  if (!ov.empty()) cfg.apply_overrides(ov);
  if (!a.pretrained.empty()) {
    if (!a.resume.empty())
      throw Error("--pretrained starts a new run from weights and --resume continues a run; give one of them");
    cfg.train.pretrained = train::absolute_pretrained(a.pretrained);  // config.yaml repeats the run anywhere
  }
  if (a.num_classes) train::take_class_count_from_folder(cfg, a.num_classes);
}

void print_result(const train::TrainResult& r) {
  std::printf("run folder: %s\n", r.run_dir.c_str());
  if (r.last_eval.images)
    std::printf("val top1 %.2f%%  top5 %.2f%%  loss %.4f  (best %stop1 %.2f%%)\n", r.last_eval.top1, r.last_eval.top5,
                r.last_eval.loss, r.last_ema_eval.images ? "EMA " : "", r.best_top1);
  if (r.last_ema_eval.images)
    std::printf("EMA val top1 %.2f%%  top5 %.2f%%  loss %.4f  (best.safetensors holds the EMA)\n", r.last_ema_eval.top1,
                r.last_ema_eval.top5, r.last_ema_eval.loss);
  // Only what was measured: a run stopped by --max-steps before its first evaluation ran none.
  if (r.last_eval.images) std::printf("train %.1f img/s, eval %.1f img/s\n", r.train_images_per_s, r.last_eval.images_per_s);
  else std::printf("train %.1f img/s (no evaluation ran)\n", r.train_images_per_s);
}

}  // namespace

void add_train_command(CLI::App& app, GlobalOptions& global) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a ViT on an ImageFolder dataset (root/<split>/<class>/<image>)");
  cmd->add_option("--config,-c", args->config, "Run config (YAML), e.g. configs/fmnist_vit_tiny.yaml")->required();
  cmd->add_option("--data-dir", args->data_dir, "Dataset root holding the train and val splits (data.dir)");
  cmd->add_option("--output", args->output, "Run folder (default: <output.dir>/<timestamp>-<config name>)");
  cmd->add_option("--resume", args->resume, "Continue from a run's last.safetensors (weights, optimizer state, position)");
  cmd->add_option("--pretrained,--initial-checkpoint", args->pretrained,
                  "Start a new run from these weights: a vkvit checkpoint, or timm:FILE / torchvision:FILE as "
                  "vkvit convert reads them; the head is re-initialised when the classes differ, the optimizer "
                  "starts fresh (train.pretrained; README: Fine-tuning on your own folder)");
  cmd->add_option("--num-classes", args->num_classes,
                  "Classes, as timm's flag; vkvit takes them from the train folder, so it must match it")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-b,--batch-size", args->batch_size, "Batch size (train.batch_size)")->check(CLI::PositiveNumber);
  cmd->add_option("--epochs", args->epochs, "Epochs (train.epochs)")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", args->lr, "Peak learning rate (train.lr)")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Seed for init, shuffling and augmentation (train.seed)")->check(CLI::NonNegativeNumber);
  add_recipe_flags(cmd, *args);
  cmd->add_option("--set", args->overrides, "Override any config key: --set train.warmup_epochs=1 (repeatable)");
  cmd->add_option("overrides", args->overrides, "Overrides as key=value, like --set");
  cmd->add_flag("--quiet,-q", args->quiet, "Only errors on stderr");
  cmd->add_option("--max-steps", args->max_steps,
                  "Stop after this many optimizer steps in all, saving last.safetensors mid-epoch; --resume "
                  "continues exactly where it stopped")
      ->check(CLI::PositiveNumber);
  cmd->footer(
      "Example:\n  vkvit train --config configs/fmnist_vit_tiny.yaml --data-dir datasets/fashion-mnist --epochs 2\n"
      "Data-parallel (one rank per GPU, global batch = ranks x batch size; README: multi-GPU training):\n"
      "  mpirun -np 4 vkvit train --config configs/imagenet_vit_s16.yaml --data-dir /data/imagenet\n"
      "Fine-tuning (README: Fine-tuning on your own folder):\n"
      "  vkvit train --config runs/RUN/config.yaml --pretrained runs/RUN/best.safetensors --data-dir my_folder "
      "-b 32 --epochs 20 --lr 1e-4");
  cmd->callback([args, &global] {
    train::RunConfig cfg = train::RunConfig::load(args->config);
    apply_flags(cfg, *args);
    train::progress_mode(args->quiet);  // a bad VKVIT_PROGRESS fails now, not after the model is built
    vk::Context ctx(global.context_options());
    train::TrainOptions opts;
    opts.output = args->output;
    opts.resume = args->resume;
    opts.quiet = args->quiet;
    opts.max_steps = args->max_steps;
    const train::TrainResult r = train::train(ctx, cfg, opts);
    if (dist::Comm::world().is_root()) print_result(r);  // rank 0 reports for a data-parallel run
  });
}

}  // namespace vkvit::cli
