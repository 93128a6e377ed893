// `vkvit eval`: score a checkpoint on an ImageFolder split (timm validate.py's numbers), with the
// confusion matrix in the JSON and as a picture (train/plots.h).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/log.h"
#include "cli/commands.h"
#include "data/image_folder.h"
#include "dist/comm.h"
#include "model/vit.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/plots.h"
#include "train/progress.h"
#include "train/evaluate.h"
#include "train/loader_config.h"

namespace vkvit::cli {

namespace {
namespace fs = std::filesystem;

struct EvalArgs {
  std::string checkpoint, data_dir, results_file, confusion;
  int batch_size = 0, workers = -1;
};

double round_to(double v, int digits) {
  const double s = std::pow(10.0, digits);
  return std::round(v * s) / s;
}

// Where confusion.png goes: --confusion, else <results stem>_confusion.png beside --results-file
// (so two evaluations written side by side keep their own pictures), else nowhere.
std::string confusion_path(const EvalArgs& a) {
  if (!a.confusion.empty()) return a.confusion;
  if (a.results_file.empty()) return "";
  const fs::path r(a.results_file);
  return (r.parent_path() / (r.stem().string() + "_confusion.png")).string();
}

// The JSON text with "confusion" written one matrix row per line: the default layout would give
// every count a line of its own (K^2 lines), unreadable on a terminal. Still one JSON document.
std::string dump_results(nlohmann::ordered_json j, const std::vector<uint64_t>& confusion, size_t K) {
  const std::string mark = "@@vkvit-confusion@@";
  j["confusion"] = confusion.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(mark);
  // JSON is UTF-8: a path in another encoding gets U+FFFD for its stray bytes instead of failing
  // after the whole evaluation.
  std::string text = j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  if (confusion.empty()) return text;
  std::string rows = "[";
  for (size_t i = 0; i < K; ++i) {
    rows += i ? ",\n    [" : "\n    [";
    for (size_t k = 0; k < K; ++k) rows += (k ? "," : "") + std::to_string(confusion[i * K + k]);
    rows += "]";
  }
  rows += "\n  ]";
  const std::string quoted = "\"confusion\": \"" + mark + "\"";
  const size_t at = text.rfind(quoted);
  return text.replace(at, quoted.size(), "\"confusion\": " + rows);
}

// confusion_path, refused before the evaluation runs when it does not name a PNG.
std::string checked_confusion_path(const EvalArgs& a) {
  const std::string picture = confusion_path(a);
  std::string ext = fs::path(picture).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!picture.empty() && ext != ".png")
    throw Error(picture + ": the confusion picture is written as PNG; give --confusion a name ending in .png");
  return picture;
}

// The checkpoint's metadata with --batch-size and --workers in place of its own.
train::CheckpointMeta read_meta(const EvalArgs& a) {
  train::CheckpointMeta meta = train::read_checkpoint_meta(a.checkpoint);
  if (a.batch_size) meta.config.train.batch_size = a.batch_size;
  if (a.workers >= 0) meta.config.data.workers = a.workers;
  return meta;
}

void check_same_classes(const data::ImageFolder& folder, const train::CheckpointMeta& meta, const std::string& data_dir) {
  if (folder.classes != meta.classes)
    throw Error(data_dir + ": its class folders (" + std::to_string(folder.classes.size()) +
                ") are not the checkpoint's classes (" + std::to_string(meta.classes.size()) +
                "); point --data-dir at a folder with the same class folders");
}

// Under mpirun each rank scores its shard of the folder and rank 0 reports the sums.
data::LoaderConfig sharded_loader_config(const train::RunConfig& config, const dist::Comm& world) {
  data::LoaderConfig lc = train::loader_config(config, false);
  lc.shard_index = static_cast<uint32_t>(world.rank());
  lc.shard_count = static_cast<uint32_t>(world.size());
  return lc;
}

nlohmann::ordered_json results_json(const EvalArgs& a, const train::CheckpointMeta& meta, const train::EvalResult& r,
                                    uint64_t param_count) {
  nlohmann::ordered_json j;
  j["checkpoint"] = a.checkpoint;
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
  j["classes"] = meta.classes;
  j["param_count"] = param_count;
  j["img_size"] = meta.config.model.image_size;
  j["crop_pct"] = meta.config.data.crop_pct;
  j["interpolation"] = meta.config.data.interpolation;
  j["images_per_s"] = round_to(r.images_per_s, 1);
  return j;
}

void write_results_file(const std::string& results_file, const std::string& text) {
  if (results_file.empty()) return;
  std::ofstream out(results_file);
  if (!(out << text << "\n")) throw Error(results_file + ": cannot write the results file");
}

void write_confusion_picture(const std::string& picture, const EvalArgs& a, const std::vector<std::string>& classes,
                             const train::EvalResult& r) {
  if (picture.empty()) return;
  if (r.confusion.empty()) {
    log_warn("no confusion picture: the matrix is not counted for more than " +
             std::to_string(train::kMaxConfusionClasses) + " classes");
    return;
  }
  char title[96];
  std::snprintf(title, sizeof title, ": top-1 %.2f%% of %llu images", r.top1, static_cast<unsigned long long>(r.images));
  train::write_confusion_png(picture, r.confusion, classes,
                             fs::path(a.checkpoint).filename().string() + " on " +
                                 fs::path(a.data_dir).lexically_normal().string() + title);
  log_info("confusion matrix picture: " + picture);
}

void run_eval(const EvalArgs& args, const GlobalOptions& global) {
  const std::string picture = checked_confusion_path(args);
  // On a terminal only, and from rank 0 (whose shard stands for the whole split).
  dist::Comm& world = dist::Comm::world();
  train::ImageProgressBar bar(world.is_root() ? train::progress_mode(false) : train::ProgressMode::off, "eval");
  const train::CheckpointMeta meta = read_meta(args);
  const data::ImageFolder folder = data::ImageFolder::scan(args.data_dir);
  check_same_classes(folder, meta, args.data_dir);
  vk::Context ctx(global.context_options());
  model::Vit vit(ctx, train::to_vit_config(meta.config.model), static_cast<uint32_t>(meta.config.train.batch_size));
  train::load_checkpoint_weights(args.checkpoint, vit);
  data::Loader loader(folder.samples, sharded_loader_config(meta.config, world));
  loader.set_progress_callback([&bar](uint64_t done, uint64_t total) { bar.update(done, total); });
  const train::EvalResult r = train::evaluate(ctx, vit, loader, &world);
  bar.clear();
  if (!world.is_root()) return;
  const std::string text = dump_results(results_json(args, meta, r, vit.param_count()), r.confusion, meta.classes.size());
  std::printf("%s\n", text.c_str());
  write_results_file(args.results_file, text);
  write_confusion_picture(picture, args, meta.classes, r);
}
}  // namespace

void add_eval_command(CLI::App& app, GlobalOptions& global) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint on an ImageFolder (root/<class>/<image>)");
  cmd->add_option("--checkpoint", args->checkpoint, "vkvit checkpoint (.safetensors)")->required();
  cmd->add_option("--data-dir", args->data_dir, "Folder of class folders to score (e.g. datasets/fashion-mnist/val)")->required();
  cmd->add_option("--results-file", args->results_file,
                  "Also write the results as JSON to this file, and the confusion picture beside it as "
                  "<stem>_confusion.png");
  cmd->add_option("--confusion", args->confusion,
                  "Write the confusion-matrix picture (PNG) here instead; without this and --results-file no "
                  "picture is written");
  cmd->add_option("-b,--batch-size", args->batch_size, "Batch size (default: the checkpoint's)")->check(CLI::PositiveNumber);
  cmd->add_option("--workers", args->workers, "Decode threads (default: the checkpoint's)")->check(CLI::NonNegativeNumber);
  cmd->footer("Prints JSON: top1, top1_err, top5, top5_err, loss, per-class accuracy, param_count, img_size, crop_pct,\n"
              "classes and confusion (K rows of K counts: row = true class, column = predicted top-1).\n"
              "Examples:\n"
              "  vkvit eval --checkpoint runs/RUN/best.safetensors --data-dir datasets/fashion-mnist/val\n"
              "  vkvit eval --checkpoint runs/RUN/best.safetensors --data-dir datasets/fashion-mnist/val \\\n"
              "      --results-file runs/RUN/eval.json          # also runs/RUN/eval_confusion.png\n"
              "  vkvit eval --checkpoint best.safetensors --data-dir val --confusion confusion.png");
  cmd->callback([args, &global] { run_eval(*args, global); });
}

}  // namespace vkvit::cli
