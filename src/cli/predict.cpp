// `vkvit predict`: classify image files and folders with a checkpoint; results on stdout or a
// file (CSV or JSON), logs on stderr.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "base/log.h"
#include "cli/commands.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "model/vit.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/progress.h"
#include "train/evaluate.h"
#include "train/loader_config.h"

namespace vkvit::cli {

namespace fs = std::filesystem;

// Image files named directly, or found under folders (recursively, hidden entries skipped,
// symlinked folders not followed so a link loop cannot trap the walk), in sorted order. Links to
// nothing are listed too: they fail to read and are skipped by name, so none disappears silently.
std::vector<std::string> collect_images(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (!data::is_image_extension(name)) continue;
        // Regular files, and links that lead nowhere (their read fails as a skip naming them).
        std::error_code sec;
        if (it->is_regular_file(ec) || (it->is_symlink(sec) && !fs::exists(it->path(), sec)))
          found.push_back(it->path().string());
      }
      if (ec) throw Error(p + ": cannot list the folder: " + ec.message());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      files.push_back(p);
    } else {
      throw Error(p + ": no such file or folder");
    }
  }
  if (files.empty()) throw Error("no image files found in the given paths (extensions: jpg jpeg png bmp webp tif tiff pgm ppm)");
  return files;
}

namespace {

struct PredictArgs {
  std::string checkpoint, results_file, output_type = "prob", format;
  int topk = 5, batch_size = 0;
  std::vector<std::string> paths;
};

struct Prediction {
  std::string file;
  std::vector<std::pair<uint32_t, double>> topk;  // (class index, score)
};

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string to_csv(const std::vector<Prediction>& preds, const std::vector<std::string>& classes, int k) {
  std::ostringstream out;
  out << "file";
  for (int i = 1; i <= k; ++i) out << ",label_" << i << ",score_" << i;
  out << "\n";
  out.precision(6);
  for (const auto& p : preds) {
    out << csv_field(p.file);
    for (const auto& [idx, score] : p.topk) out << "," << csv_field(classes[idx]) << "," << score;
    out << "\n";
  }
  return out.str();
}

std::string to_json(const std::vector<Prediction>& preds, const std::vector<std::string>& classes) {
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const auto& p : preds) {
    nlohmann::ordered_json e;
    e["file"] = p.file;
    e["topk"] = nlohmann::ordered_json::array();
    for (const auto& [idx, score] : p.topk)
      e["topk"].push_back({{"index", idx}, {"label", classes[idx]}, {"score", score}});
    j.push_back(e);
  }
  // JSON is UTF-8: a file name in another encoding gets U+FFFD for its stray bytes instead of
  // failing the whole run (the CSV keeps the name's bytes as they are).
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}


// --results-file's extension decides the format; without a file, --format (csv by default).
std::string results_format(const PredictArgs& a) {
  if (a.results_file.empty()) return a.format.empty() ? "csv" : a.format;
  const std::string ext = fs::path(a.results_file).extension().string();
  if (ext == ".json") return "json";
  if (ext == ".csv") return "csv";
  throw Error(a.results_file + ": --results-file must end in .csv or .json");
}

// The top k scores of each image of the batch, in the loader's order.
void add_predictions(const data::Batch& batch, const float* logits, uint32_t K, int k, const std::string& output_type,
                     std::vector<Prediction>& preds) {
  for (uint32_t b = 0; b < batch.size; ++b) {
    const float* row = logits + uint64_t(b) * K;
    const std::vector<double> score = output_type == "prob" ? train::softmax(row, K) : std::vector<double>(row, row + K);
    Prediction p{batch.paths[b], {}};
    for (uint32_t c : train::top_classes(score, uint32_t(k))) p.topk.push_back({c, score[c]});
    preds.push_back(std::move(p));
  }
}

void write_results(const std::string& results_file, const std::string& text) {
  if (results_file.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  std::ofstream out(results_file, std::ios::binary);
  if (!(out << text)) throw Error(results_file + ": cannot write the results file");
}

void run_predict(const PredictArgs& args, const GlobalOptions& global) {
  train::ImageProgressBar bar(train::progress_mode(false), "predict");  // drawn on a terminal only
  train::CheckpointMeta meta = train::read_checkpoint_meta(args.checkpoint);
  if (args.batch_size) meta.config.train.batch_size = args.batch_size;
  const std::string format = results_format(args);
  std::vector<data::Sample> samples;
  for (const auto& f : collect_images(args.paths)) samples.push_back({f, 0});

  vk::Context ctx(global.context_options());
  const uint32_t K = static_cast<uint32_t>(meta.config.model.num_classes);
  const int k = std::min<int>(args.topk, static_cast<int>(K));
  model::Vit vit(ctx, train::to_vit_config(meta.config.model), static_cast<uint32_t>(meta.config.train.batch_size));
  train::load_checkpoint_weights(args.checkpoint, vit);
  data::Loader loader(samples, train::loader_config(meta.config, false));
  loader.set_progress_callback([&bar](uint64_t done, uint64_t total) { bar.update(done, total); });
  std::vector<Prediction> preds;
  train::infer(ctx, vit, loader, [&](const data::Batch& batch, const float* logits) {
    add_predictions(batch, logits, K, k, args.output_type, preds);
  });
  bar.clear();
  write_results(args.results_file, format == "json" ? to_json(preds, meta.classes) : to_csv(preds, meta.classes, k));
  const uint64_t skipped = loader.skipped_this_epoch();
  log(skipped ? LogLevel::warn : LogLevel::info,
      std::to_string(preds.size()) + " images classified, " + std::to_string(skipped) + " skipped (unreadable)");
}
}  // namespace

void add_predict_command(CLI::App& app, GlobalOptions& global) {
  auto args = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Classify image files and folders with a checkpoint");
  cmd->add_option("--checkpoint", args->checkpoint, "vkvit checkpoint (.safetensors)")->required();
  cmd->add_option("--topk", args->topk, "Classes per image")->check(CLI::PositiveNumber);
  cmd->add_option("--output-type", args->output_type, "Scores as softmax probabilities or raw logits")
      ->check(CLI::IsMember({"prob", "logit"}));
  cmd->add_option("--results-file", args->results_file, "Write results here (.csv or .json) instead of stdout");
  cmd->add_option("--format", args->format, "csv or json on stdout (default csv)")->check(CLI::IsMember({"csv", "json"}));
  cmd->add_option("-b,--batch-size", args->batch_size, "Batch size (default: the checkpoint's)")->check(CLI::PositiveNumber);
  cmd->add_option("paths", args->paths, "Image files or folders (searched recursively)")->required();
  cmd->footer("Example:\n  vkvit predict --checkpoint runs/x/best.safetensors --topk 3 --results-file preds.csv photos/");
  cmd->callback([args, &global] { run_predict(*args, global); });
}

}  // namespace vkvit::cli
