// `vkvit info CKPT`: what a checkpoint holds, read from the file alone (no Vulkan device needed):
// the architecture from the config stored in its metadata, parameter count and forward FLOPs, the
// class names, how far its run had got, and whether it carries the optimizer state that
// `vkvit train --resume` needs. `--json` prints the same as one JSON object for scripts.
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/commands.h"
#include "model/safetensors.h"
#include "model/vit_config.h"
#include "model/vit_params.h"
#include "train/checkpoint.h"
#include "vk/memory.h"

namespace vkvit::cli {

namespace fs = std::filesystem;

namespace {

struct InfoArgs {
  std::string checkpoint;
  bool json = false;
};

// Everything the command reports, gathered once for both output forms.
struct Facts {
  std::string path;
  uint64_t file_bytes = 0, tensors = 0, param_count = 0, config_param_count = 0, flops = 0;
  train::CheckpointMeta meta;
  model::VitConfig vit;
  std::vector<std::string> mixers;  // one per block
  bool optimizer_state = false;
  bool carries_ema = false;  // last.safetensors of a run with train.model_ema
};

// Which weights the file's main tensors are (what eval, predict and convert use), and whether a
// model EMA rides beside them.
std::string weights_summary(const Facts& f) {
  if (f.meta.weights == "ema") return "the model EMA's (best.safetensors of a run with train.model_ema)";
  if (f.carries_ema) return "the model's; the model EMA rides beside them for --resume (vkvit.ema)";
  return "the model's";
}

Facts gather(const std::string& path) {
  Facts f;
  f.path = path;
  // One strict read (a bad file is one line naming it and the reason), then the metadata from it.
  const model::SafeTensors st = model::read_safetensors(path);
  f.meta = train::checkpoint_meta(st, path);
  f.vit = train::to_vit_config(f.meta.config.model);
  std::error_code ec;
  f.file_bytes = fs::file_size(path, ec);
  for (const model::Tensor& t : st.tensors) {
    if (train::is_training_state(t.name)) continue;
    ++f.tensors;
    f.param_count += t.numel();
  }
  f.config_param_count = model::vit_param_layout(f.vit).param_count();
  f.flops = f.vit.flops_per_image();
  for (int l = 0; l < f.vit.depth; ++l) f.mixers.push_back(f.vit.mixer_at(l));
  f.optimizer_state = st.find(train::kAdamM) && st.find(train::kAdamV);
  f.carries_ema = st.find(train::kEmaWeights) != nullptr;
  return f;
}

// 292490 -> "292,490"
std::string grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string format_flops(uint64_t flops) {
  const char* units[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP"};
  double v = double(flops);
  int u = 0;
  while (v >= 1000 && u < 4) v /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return buf;
}

// "attention" when every block has it, else runs: "global_filter x2, attention x2".
std::string mixer_summary(const std::vector<std::string>& mixers) {
  std::string out;
  for (size_t i = 0; i < mixers.size();) {
    size_t j = i;
    while (j < mixers.size() && mixers[j] == mixers[i]) ++j;
    if (!out.empty()) out += ", ";
    out += mixers[i];
    if (j - i != mixers.size()) out += " x" + std::to_string(j - i);
    i = j;
  }
  return out;
}

// All names up to 20 classes; past that the first 8, "...", and the last 2.
std::string class_summary(const std::vector<std::string>& classes) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (classes.size() <= 20) {
    for (const auto& c : classes) add(c);
    return out;
  }
  for (size_t i = 0; i < 8; ++i) add(classes[i]);
  add("...");
  for (size_t i = classes.size() - 2; i < classes.size(); ++i) add(classes[i]);
  return out;
}

void print_text(const Facts& f) {
  const train::CheckpointMeta& m = f.meta;
  const model::VitConfig& v = f.vit;
  std::printf("file        %s (%s)\n", f.path.c_str(), vk::format_bytes(f.file_bytes).c_str());
  std::printf("config      %s%s\n", m.config.name.c_str(),
              m.config.model.preset.empty() ? "" : (" (model preset " + m.config.model.preset + ")").c_str());
  std::printf("model       image %dx%dx%d, patch %d (%dx%d grid, %d tokens), dim %d, depth %d, heads %d, mlp %d\n",
              v.image_size, v.image_size, v.in_chans, v.patch_size, v.grid(), v.grid(), v.tokens(), v.dim, v.depth,
              v.heads, v.mlp_dim);
  std::printf("            mixer %s, pool %s, pos_embed %s, %s-norm, ln_eps %g, %d classes\n",
              mixer_summary(f.mixers).c_str(), v.pool.c_str(), v.pos_embed.c_str(), v.norm.c_str(),
              m.config.model.ln_eps, v.num_classes);
  std::printf("parameters  %s in %" PRIu64 " tensor%s\n", grouped(f.param_count).c_str(), f.tensors, f.tensors == 1 ? "" : "s");
  if (f.param_count != f.config_param_count)
    std::printf("            (the stored config's model has %s: the file does not load as that model)\n",
                grouped(f.config_param_count).c_str());
  std::printf("forward     %s per image (a training step costs about 3x)\n", format_flops(f.flops).c_str());
  std::printf("weights     %s\n", weights_summary(f).c_str());
  std::printf("classes     %zu: %s\n", m.classes.size(), class_summary(m.classes).c_str());
  // CheckpointMeta::epoch counts completed epochs; a mid-epoch save is inside the next one.
  std::string progress = std::to_string(m.epoch) + (m.epoch == 1 ? " epoch" : " epochs") + " done, step " +
                         std::to_string(m.step);
  if (m.position > 0) progress += ", stopped mid-epoch at image " + std::to_string(m.position) + " of epoch " + std::to_string(m.epoch + 1);
  char best[64];
  if (m.best_top1 >= 0) std::snprintf(best, sizeof best, ", best val top-1 %.2f%%", m.best_top1);
  else std::snprintf(best, sizeof best, ", not evaluated yet");
  std::printf("training    %s%s\n", progress.c_str(), best);
  if (m.loss_scale > 0)
    std::printf("amp         on, loss scale %g (%" PRIu64 " good steps since its last change)\n", m.loss_scale,
                m.loss_scale_good_steps);
  else
    std::printf("amp         %s\n", m.config.train.amp ? "on (no loss scale saved)" : "off");
  if (f.optimizer_state) {
    // A run folder's own config.yaml is the config to resume with; elsewhere the user names one.
    const fs::path beside = fs::path(f.path).parent_path() / "config.yaml";
    std::error_code ec;
    const std::string config = fs::exists(beside, ec) ? beside.string() : "CONFIG";
    std::printf("resumable   yes: holds Adam's m and v (vkvit train --config %s --resume %s)\n", config.c_str(),
                f.path.c_str());
  } else {
    std::printf("resumable   no: weights only (best.safetensors or converted weights: for eval, predict, convert)\n");
  }
}

nlohmann::ordered_json to_json(const Facts& f) {
  const train::CheckpointMeta& m = f.meta;
  const model::VitConfig& v = f.vit;
  nlohmann::ordered_json j;
  j["file"] = f.path;
  j["file_bytes"] = f.file_bytes;
  j["config_name"] = m.config.name;
  j["preset"] = m.config.model.preset;
  nlohmann::ordered_json model;
  model["image_size"] = v.image_size;
  model["patch_size"] = v.patch_size;
  model["in_chans"] = v.in_chans;
  model["dim"] = v.dim;
  model["depth"] = v.depth;
  model["heads"] = v.heads;
  model["mlp_dim"] = v.mlp_dim;
  model["mixer"] = m.config.model.mixer;
  model["mixers"] = f.mixers;
  model["pool"] = v.pool;
  model["pos_embed"] = v.pos_embed;
  model["norm"] = v.norm;
  model["ln_eps"] = m.config.model.ln_eps;  // the config's double: 1e-06, not float's 9.99e-07
  model["num_classes"] = v.num_classes;
  model["num_patches"] = v.num_patches();
  j["model"] = model;
  j["param_count"] = f.param_count;
  j["tensors"] = f.tensors;
  j["flops_per_image"] = f.flops;
  j["classes"] = m.classes;
  j["epoch"] = m.epoch;
  j["step"] = m.step;
  j["position"] = m.position;  // images into epoch `epoch` (0-based) when saved mid-epoch, else 0
  j["best_top1"] = m.best_top1 >= 0 ? nlohmann::ordered_json(m.best_top1) : nlohmann::ordered_json();
  j["amp"] = m.config.train.amp;
  j["loss_scale"] = m.loss_scale > 0 ? nlohmann::ordered_json(m.loss_scale) : nlohmann::ordered_json();
  j["weights"] = f.meta.weights == "ema" ? "ema" : "model";  // what the main tensors are
  j["carries_ema"] = f.carries_ema;
  j["optimizer_state"] = f.optimizer_state;
  j["resumable"] = f.optimizer_state;
  return j;
}

}  // namespace

void add_info_command(CLI::App& app, GlobalOptions&) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Describe a checkpoint: architecture, size, classes, training progress");
  cmd->add_option("CKPT", args->checkpoint, "vkvit checkpoint (.safetensors)")->required();
  cmd->add_flag("--json", args->json, "One JSON object on stdout instead of text");
  cmd->footer("Reads the file only (no Vulkan device needed); a file that is not a vkvit checkpoint is one error line.\n"
              "Examples:\n"
              "  vkvit info runs/RUN/last.safetensors\n"
              "  vkvit info --json runs/RUN/best.safetensors | python3 -m json.tool");
  cmd->callback([args] {
    const Facts f = gather(args->checkpoint);
    if (args->json)
      std::printf("%s\n", to_json(f).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    else
      print_text(f);
  });
}

}  // namespace vkvit::cli
