// `vkvit eval`: score a checkpoint on an ImageFolder split (timm validate.py's numbers).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "data/image_folder.h"
#include "model/vit.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "vk/error.h"

namespace vkvit::cli {

namespace {
struct EvalArgs {
  std::string checkpoint, data_dir, results_file;
  int batch_size = 0, workers = -1;
};

double round_to(double v, int digits) {
  const double s = std::pow(10.0, digits);
  return std::round(v * s) / s;
}
}  // namespace

void add_eval_command(CLI::App& app, GlobalOptions& global) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint on an ImageFolder (root/<class>/<image>)");
  cmd->add_option("--checkpoint", args->checkpoint, "vkvit checkpoint (.safetensors)")->required();
  cmd->add_option("--data-dir", args->data_dir, "Folder of class folders to score (e.g. datasets/fashion-mnist/val)")->required();
  cmd->add_option("--results-file", args->results_file, "Also write the results as JSON to this file");
  cmd->add_option("-b,--batch-size", args->batch_size, "Batch size (default: the checkpoint's)")->check(CLI::PositiveNumber);
  cmd->add_option("--workers", args->workers, "Decode threads (default: the checkpoint's)")->check(CLI::NonNegativeNumber);
  cmd->footer("Prints JSON: top1, top1_err, top5, top5_err, loss, per-class accuracy, param_count, img_size, crop_pct.");
  cmd->callback([args, &global] {
    train::CheckpointMeta meta = train::read_checkpoint_meta(args->checkpoint);
    if (args->batch_size) meta.config.train.batch_size = args->batch_size;
    if (args->workers >= 0) meta.config.data.workers = args->workers;
    data::ImageFolder folder = data::ImageFolder::scan(args->data_dir);
    if (folder.classes != meta.classes)
      throw Error(args->data_dir + ": its class folders (" + std::to_string(folder.classes.size()) +
                  ") are not the checkpoint's classes (" + std::to_string(meta.classes.size()) +
                  "); point --data-dir at a folder with the same class folders");
    vk::Context ctx(global.context_options());
    model::Vit vit(ctx, train::to_vit_config(meta.config.model), static_cast<uint32_t>(meta.config.train.batch_size));
    train::load_checkpoint_weights(args->checkpoint, vit);
    data::Loader loader(folder.samples, train::loader_config(meta.config, false));
    const train::EvalResult r = train::evaluate(ctx, vit, loader);

    nlohmann::ordered_json j;
    j["checkpoint"] = args->checkpoint;
    j["images"] = r.images;
    j["skipped_files"] = r.skipped;
    j["top1"] = round_to(r.top1, 3);
    j["top1_err"] = round_to(100.0 - r.top1, 3);
    j["top5"] = round_to(r.top5, 3);
    j["top5_err"] = round_to(100.0 - r.top5, 3);
    j["loss"] = round_to(r.loss, 5);
    nlohmann::ordered_json per_class;
    for (size_t k = 0; k < meta.classes.size(); ++k)
      per_class[meta.classes[k]] = std::isfinite(r.per_class[k]) ? nlohmann::json(round_to(r.per_class[k], 3)) : nlohmann::json();
    j["per_class_top1"] = per_class;
    j["param_count"] = vit.param_count();
    j["img_size"] = meta.config.model.image_size;
    j["crop_pct"] = meta.config.data.crop_pct;
    j["interpolation"] = meta.config.data.interpolation;
    j["images_per_s"] = round_to(r.images_per_s, 1);
    // JSON is UTF-8: a path in another encoding gets U+FFFD for its stray bytes instead of failing
    // after the whole evaluation.
    const std::string text = j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::printf("%s\n", text.c_str());
    if (!args->results_file.empty()) {
      std::ofstream out(args->results_file);
      if (!(out << text << "\n")) throw Error(args->results_file + ": cannot write the results file");
    }
  });
}

}  // namespace vkvit::cli
