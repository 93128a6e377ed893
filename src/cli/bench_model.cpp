// `vkvit bench train-step` and `vkvit bench infer`: the speed of the whole model on the chosen
// device, to put beside PyTorch's on the same machine (tests/bench/compare.sh).
//   train-step  train::TrainStep, the trainer's own step (zero grads, forward, label-smoothed
//               cross-entropy, backward, grad norm, AdamW), recorded into one command buffer and
//               submitted and waited for once per step, as the training loop does. A config's
//               recipe options that change the step are timed with it, as the trainer records
//               them: train.mixup / cutmix (the batch mixed after its upload, the two-label
//               loss), drop_path, model_ema (the EMA pass after AdamW), accum_steps (k forward +
//               backward passes per update; one "step" is then the whole optimizer step of
//               k batches), layer_decay and freeze (the parameter groups). The loader's options
//               (crop, RandAugment, erasing) are not part of the GPU step: `vkvit bench loader`.
//   infer       model::Vit::forward only.
// Weights come from vit.init and the inputs are random patches and labels put on the device once
// before timing: no decoding, no loader, no upload per step, so the figure is the GPU step alone
// (the trainer adds a ~100 KB staging copy and a 3-float readback per step on top). Mixing changes
// the input in place, so with mixup / CutMix each batch is copied from mapped staging memory
// first, as the trainer's is.
// The last stdout line is machine-readable (RESULT key=value ...) for the comparison script.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/bench_common.h"
#include "cli/commands.h"
#include "model/vit.h"
#include "ops/ema.h"
#include "train/config.h"
#include "train/mixup.h"
#include "train/train_step.h"
#include "vk/memory.h"
#include "vk/profiler.h"
#include "vk/recorder.h"

namespace vkvit::cli {

namespace {

struct ModelBenchOptions {
  std::string config;  // a run config (model + train sections), or
  std::string preset;  // a model preset with the default optimizer settings
  int batch = 0;       // 0 = the config's train.batch_size
  int steps = 10;
  int warmup = 2;
  bool amp = false;  // mixed precision (train.amp): fp16 linear layers, loss scaling
  std::vector<std::string> overrides;  // --set key=value over the config, as `vkvit train --set`
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The config and optimizer settings the step runs with: from a run config, or a preset with
// TrainConfig's defaults (timm/DeiT values: label smoothing 0.1, no clipping).
struct BenchSetup {
  std::string model_name;
  model::VitConfig vit;
  train::TrainConfig optim;
  train::BatchMixer mixer{train::MixupParams{}, train::PatchGeometry{}, 0, 0};  // train.mixup / cutmix; off for a preset
};

BenchSetup resolve(const ModelBenchOptions& o) {
  if (o.config.empty() == o.preset.empty()) throw Error("bench: give exactly one of --config FILE or --preset NAME");
  if (!o.overrides.empty() && o.config.empty()) throw Error("bench: --set needs --config FILE (a preset has no run config)");
  BenchSetup s;
  if (!o.config.empty()) {
    train::RunConfig cfg = train::RunConfig::load(o.config);
    if (!o.overrides.empty()) cfg.apply_overrides(o.overrides);
    s.model_name = o.config;
    s.vit = train::to_vit_config(cfg.model);
    s.optim = cfg.train;
    s.mixer = train::batch_mixer(cfg, 0);
  } else {
    s.model_name = o.preset;
    s.vit = model::VitConfig::preset(o.preset);
  }
  if (o.batch > 0) s.optim.batch_size = o.batch;
  return s;
}

// Median wall and process CPU times of the timed steps.
struct StepTimes {
  double ms = 0, cpu_ms = 0, min_ms = 0, max_ms = 0;
};

// One model on the device with its inputs, and its train step when timing train-step.
class ModelBench {
 public:
  ModelBench(const GlobalOptions& global, const ModelBenchOptions& o, bool train_step)
      : o_(o),
        s_(resolve(o)),
        B_(static_cast<uint32_t>(s_.optim.batch_size)),
        mode_(train_step ? "train-step" : "infer"),
        ctx_(global.context_options()),
        vit_(ctx_, s_.vit, B_, o.amp || s_.optim.amp) {
    vit_.init(s_.optim.seed);
    // A config's train.layer_decay and train.freeze time the step with its parameter groups.
    groups_ = train::param_groups(vit_.layout(), s_.vit.depth, s_.optim.layer_decay, s_.optim.freeze);
    if (!train_step) return;
    step_ = std::make_unique<train::TrainStep>(ctx_, vit_, B_, &groups_);
    if (s_.mixer.enabled())
      staging_ = std::make_unique<vk::Buffer>(ctx_, vit_.patches_input().size, vk::MemoryKind::host_staging,
                                              "bench batch staging");
    if (s_.optim.model_ema) {
      ema_ = std::make_unique<vk::Buffer>(ctx_, vit_.layout().total_floats() * 4, vk::MemoryKind::device, "model EMA");
      ctx_.upload(ema_->view(), vit_.read_params().data(), ema_->view().size);  // the EMA starts as the weights
    }
  }

  // Random inputs of the right scale (normalized pixels are roughly N(0, 1)) and labels.
  void upload_random_inputs() {
    std::mt19937 rng(static_cast<uint32_t>(s_.optim.seed));
    std::normal_distribution<float> pixel(0.0f, 1.0f);
    std::vector<float> patches(uint64_t(B_) * s_.vit.num_patches() * s_.vit.patch_dim());  // (B, Np, C*P*P)
    for (float& v : patches) v = pixel(rng);
    ctx_.upload(vit_.patches_input(), patches.data(), patches.size() * 4);
    if (!step_) return;
    std::uniform_int_distribution<uint32_t> label(0, static_cast<uint32_t>(s_.vit.num_classes) - 1);
    labels_.resize(B_);  // (B)
    for (uint32_t& v : labels_) v = label(rng);
    ctx_.upload(step_->labels(), labels_.data(), labels_.size() * 4);
    if (staging_) patches_ = std::move(patches);
  }

  void print_header() {
    const vk::DeviceInfo& info = ctx_.info();
    std::printf("# vkvit bench %s\n", mode_);
    std::printf("# device: %s (%s %s)\n", info.name.c_str(), info.driver_name.c_str(), info.driver_version.c_str());
    std::printf("# model: %s (image %d, patch %d, %d tokens, dim %d, depth %d, heads %d, mlp %d, %d classes, %s pool, %s), "
                "%llu parameters\n",
                s_.model_name.c_str(), s_.vit.image_size, s_.vit.patch_size, s_.vit.tokens(), s_.vit.dim, s_.vit.depth,
                s_.vit.heads, s_.vit.mlp_dim, s_.vit.num_classes, s_.vit.pool.c_str(), s_.vit.mixer.c_str(),
                static_cast<unsigned long long>(vit_.param_count()));
    std::printf("# batch %u, %d timed steps after %d warm-up steps (the first builds the pipelines)%s\n", B_, o_.steps,
                o_.warmup, vit_.amp() ? "; amp: fp16 linear layers (loss scale held at its initial value)" : "");
    if (step_) std::printf("# recipe in the step: %s\n", recipe().c_str());
    std::fflush(stdout);
  }

  // The first steps compile every pipeline (seconds on lavapipe without a warm Mesa shader cache):
  // they are run and thrown away, and so is their profile.
  StepTimes time_steps() {
    const ops::AdamWHyper hyper = adamw_hyper(s_.optim);
    vk::Recorder rec(ctx_);
    std::vector<double> wall_ms, cpu_ms;
    uint64_t t = 0;  // AdamW's step count, as the trainer's
    for (int i = -o_.warmup; i < o_.steps; ++i) {
      if (i == 0) ctx_.profiler().clear();
      const double c0 = process_cpu_ms();
      const auto t0 = std::chrono::steady_clock::now();
      if (step_)
        record_step(rec, hyper, ++t);
      else
        vit_.forward(rec, B_, /*for_backward=*/false);
      rec.submit_and_wait();
      const auto t1 = std::chrono::steady_clock::now();
      if (i < 0) continue;
      wall_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      cpu_ms.push_back(process_cpu_ms() - c0);
    }
    return StepTimes{median(wall_ms), median(cpu_ms), *std::min_element(wall_ms.begin(), wall_ms.end()),
                     *std::max_element(wall_ms.begin(), wall_ms.end())};
  }

  void print_results(const StepTimes& times) {
    // A sanity check that the steps trained: on one fixed batch the loss falls from about ln(K).
    float loss = NAN;
    if (step_) ctx_.download(step_->loss(), &loss, 4);

    // Counted FLOPs: the matmuls of the forward pass (VitConfig::flops_per_image: patch projection,
    // qkv, Q K^T, P V, proj, fc1, fc2, head; 2 per multiply-add; norms, softmax, GELU and the
    // optimizer not counted). A train step is counted as 3x forward: backward is two products
    // (dX and dW) per forward product, as in the usual 6 * params * tokens estimate.
    const double fwd_flops = static_cast<double>(s_.vit.flops_per_image());
    const double flops = fwd_flops * (step_ ? 3.0 : 1.0);
    const double ms = times.ms, cpu = times.cpu_ms;
    const double images = double(B_) * accum();  // per timed step
    const double img_s = images / (ms * 1e-3);
    const double gflops = flops * images / (ms * 1e6);
    std::printf("FLOPs per image: %.4g forward (matmuls; FFTs estimated)", fwd_flops);
    if (step_) std::printf(" x 3 = %.4g per train-step image", flops);
    std::printf("\n");
    std::printf("median step: %.3f ms wall (min %.3f, max %.3f), %.3f ms process CPU\n", ms, times.min_ms, times.max_ms,
                cpu);
    std::printf("throughput: %.2f img/s, %.3f GFLOP/s (%.2f img per CPU-second)\n", img_s, gflops, images / (cpu * 1e-3));
    std::printf("peak device memory: %s (now %s; activations %s)\n", vk::format_bytes(ctx_.peak_allocated_bytes()).c_str(),
                vk::format_bytes(ctx_.allocated_bytes()).c_str(), vk::format_bytes(vit_.activation_bytes()).c_str());
    if (step_) std::printf("loss of the last step: %.4f (ln K = %.4f)\n", loss, std::log(double(s_.vit.num_classes)));
    print_profile();
    std::printf("RESULT impl=vkvit mode=%s model=%s batch=%u steps=%d ms=%.3f cpu_ms=%.3f img_per_s=%.3f "
                "gflop_per_s=%.4f flops_per_img=%.6g peak_mib=%.1f amp=%d accum=%u\n",
                mode_, s_.model_name.c_str(), B_, o_.steps, ms, cpu, img_s, gflops, flops,
                ctx_.peak_allocated_bytes() / 1048576.0, vit_.amp() ? 1 : 0, accum());
    std::fflush(stdout);
  }

 private:
  uint32_t accum() const { return step_ ? static_cast<uint32_t>(s_.optim.accum_steps) : 1u; }  // >= 1 (config check)

  // One optimizer step as the trainer records it (Trainer::train_epoch and record_micro_batch):
  // per micro-batch the upload and mix when mixing, the drop-path draws, forward and backward
  // (gradients added after the first); then norm, clipping, AdamW and the EMA. The plain step
  // (no option on) is TrainStep::record, command for command.
  void record_step(vk::Recorder& rec, const ops::AdamWHyper& hyper, uint64_t t) {
    const float smoothing = static_cast<float>(s_.optim.label_smoothing);
    const uint32_t k = accum();
    for (uint32_t j = 0; j < k; ++j) {
      const uint64_t draw = (t - 1) * k + j + 1;  // the micro-batch's own number, as the trainer's
      if (staging_) {
        std::memcpy(staging_->mapped(), patches_.data(), patches_.size() * 4);
        rec.copy(staging_->view(), vit_.patches_input());
        step_->record_mix(rec, s_.mixer, static_cast<float*>(staging_->mapped()), labels_, B_, draw);
      }
      step_->record_drop_path(rec, s_.optim.drop_path, uint64_t(s_.optim.seed), 0, B_, draw);
      step_->record_gradients(rec, B_, smoothing, 1.0f / float(k), {}, /*accumulate=*/j > 0);
      // One staging buffer: the next micro-batch's host mix must wait until this one's upload has
      // read it (the trainer alternates two slots for the same reason).
      if (staging_ && j + 1 < k) {
        const int part = rec.flush();
        if (part < 0) rec.submit_and_wait();
        else rec.wait_flushed(part);
      }
    }
    step_->record_update(rec, hyper, t, static_cast<float>(s_.optim.clip_grad));
    if (ema_)
      ops::ema_update(rec, ema_->view(), vit_.params_view(), step_->norm(), vit_.layout().total_floats(),
                      ops::ema_decay(s_.optim.model_ema_decay, s_.optim.model_ema_warmup, t));
  }

  // The options of the recipe that the timed step includes, for the header.
  std::string recipe() const {
    std::string r;
    auto add = [&r](const std::string& part) { r += (r.empty() ? "" : ", ") + part; };
    if (s_.mixer.enabled())
      add("mixup " + format_number(s_.optim.mixup) + " / cutmix " + format_number(s_.optim.cutmix) +
          " (batch mixed on the " + (train::TrainStep::mixes_on_gpu(ctx_, s_.mixer, B_) ? "GPU)" : "host)"));
    if (s_.optim.drop_path > 0) add("drop path " + format_number(s_.optim.drop_path));
    if (s_.optim.model_ema) add("model EMA");
    if (accum() > 1) add(std::to_string(accum()) + " micro-batches per step (accum_steps)");
    if (groups_.active()) add("parameter groups (layer_decay / freeze)");
    return r.empty() ? "none (plain step)" : r;
  }
  static std::string format_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }

  static ops::AdamWHyper adamw_hyper(const train::TrainConfig& optim) {
    ops::AdamWHyper hyper;
    hyper.lr = optim.lr;
    hyper.beta1 = optim.betas[0];
    hyper.beta2 = optim.betas[1];
    hyper.eps = optim.eps;
    hyper.weight_decay = optim.weight_decay;
    return hyper;
  }

  // Printed here rather than by the context at exit, so that it covers the timed steps only and
  // comes before the RESULT line. Timestamps around every dispatch slow the step down a little.
  void print_profile() {
    if (!ctx_.profiling() || ctx_.profiler().empty()) return;
    std::printf("# per-op GPU time over the %d timed steps (divide by %d for per step):\n", o_.steps, o_.steps);
    ctx_.profiler().print(stdout);
    ctx_.profiler().clear();
  }

  const ModelBenchOptions& o_;
  const BenchSetup s_;
  const uint32_t B_;
  const char* const mode_;
  vk::Context ctx_;
  model::Vit vit_;
  train::ParamGroups groups_;
  std::unique_ptr<train::TrainStep> step_;
  std::unique_ptr<vk::Buffer> staging_;  // mixup / CutMix: the batch, re-uploaded each step
  std::unique_ptr<vk::Buffer> ema_;      // train.model_ema: the averaged weights
  std::vector<float> patches_;           // the unmixed batch (with staging_)
  std::vector<uint32_t> labels_;         // (B)
};

void run_model_bench(const GlobalOptions& global, const ModelBenchOptions& o, bool train_step) {
  ModelBench bench(global, o, train_step);
  bench.upload_random_inputs();
  bench.print_header();
  bench.print_results(bench.time_steps());
}

void add_mode(CLI::App* bench, GlobalOptions& global, const char* name, const char* help, bool train_step) {
  auto o = std::make_shared<ModelBenchOptions>();
  auto* cmd = bench->add_subcommand(name, help);
  auto* config = cmd->add_option("--config,-c", o->config, "Run config (YAML): model, batch size and optimizer settings");
  auto* preset = cmd->add_option("--preset", o->preset, "Model preset (vit_tiny_patch16_224, vit_fmnist_tiny, ...)");
  config->excludes(preset);
  cmd->add_option("-b,--batch", o->batch, "Batch size (default: the config's train.batch_size, 128 for a preset)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--steps", o->steps, "Timed steps (median reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed steps first (pipeline compilation)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--amp", o->amp, "Mixed precision (as train.amp: true): fp16 linear layers, fp32 accumulation");
  cmd->add_option("--set", o->overrides,
                  "Override a config key as `vkvit train --set`, e.g. --set train.drop_path=0.1 (repeatable)");
  cmd->footer(std::string("Example:\n  vkvit bench ") + name + " --config configs/fmnist_vit_tiny.yaml --steps 20\n"
              "  vkvit --profile bench " + name + " --preset vit_tiny_patch16_224 -b 8 --steps 3");
  cmd->callback([&global, o, train_step] { run_model_bench(global, *o, train_step); });
}

}  // namespace

void add_model_bench_commands(CLI::App* bench, GlobalOptions& global) {
  add_mode(bench, global, "train-step", "Time one training step of a whole model (forward, loss, backward, AdamW)", true);
  add_mode(bench, global, "infer", "Time the forward pass of a whole model", false);
}

}  // namespace vkvit::cli
