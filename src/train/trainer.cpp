#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "data/image_folder.h"
#include "ops/adamw.h"
#include "ops/cross_entropy.h"
#include "ops/grad_norm.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/memory_plan.h"
#include "train/metrics.h"
#include "train/plots.h"
#include "train/progress.h"
#include "train/run_dir.h"
#include "train/schedule.h"
#include "train/train_step.h"
#include "vk/error.h"
#include "vk/fault.h"
#include "vk/log.h"
#include "vk/recorder.h"

namespace vkvit::train {

namespace fs = std::filesystem;

data::LoaderConfig loader_config(const TrainConfig& cfg, bool train) {
  data::LoaderConfig lc;
  lc.batch_size = static_cast<uint32_t>(cfg.train.batch_size);
  lc.workers = static_cast<uint32_t>(cfg.data.workers);
  lc.train = train;
  lc.seed = cfg.train.seed;
  lc.patch_size = cfg.model.patch_size;
  data::TransformConfig& t = lc.transform;
  t.image_size = cfg.model.image_size;
  t.channels = cfg.model.in_chans;
  t.mean.assign(cfg.data.mean.begin(), cfg.data.mean.end());
  t.std.assign(cfg.data.std.begin(), cfg.data.std.end());
  t.crop_pct = static_cast<float>(cfg.data.crop_pct);
  t.interpolation = cfg.data.interpolation;
  t.random_resized_crop = cfg.data.random_resized_crop;
  t.scale_min = static_cast<float>(cfg.data.scale[0]);
  t.scale_max = static_cast<float>(cfg.data.scale[1]);
  t.ratio_min = static_cast<float>(cfg.data.ratio[0]);
  t.ratio_max = static_cast<float>(cfg.data.ratio[1]);
  t.hflip = static_cast<float>(cfg.data.hflip);
  lc.limits.max_pixels = cfg.data.max_pixels;
  return lc;
}

namespace {

// Host-visible buffers around one step: the loader assembles each batch straight into mapped
// `upload` memory, and the step's own command buffers copy it to the model's input and copy its
// results (logits, loss, gradient norm) into mapped `readback` memory, so no upload or download
// needs a submission (and a wait) of its own.
// Two slots of each, so that the next batch is assembled (and its step submitted) while the GPU
// still runs the step before it, whose results stay in the other slot until the host reads them.
class StepIo {
 public:
  static constexpr int kSlots = 2;

  StepIo(vk::Context& ctx, const model::Vit& vit, uint32_t max_batch, uint64_t readback_floats)
      : per_image_(vit.config().num_patches() * vit.config().patch_dim()),
        upload_slot_(align((per_image_ + 1) * max_batch * 4)),
        readback_slot_(align(std::max<uint64_t>(readback_floats, 1) * 4)),
        upload_(ctx, kSlots * upload_slot_, vk::MemoryKind::host_staging, "batch staging"),
        readback_(ctx, kSlots * readback_slot_, vk::MemoryKind::host_readback, "step readback"),
        max_batch_(max_batch) {}

  float* patches(int slot) { return reinterpret_cast<float*>(static_cast<char*>(upload_.mapped()) + slot * upload_slot_); }
  float* readback(int slot) {
    return reinterpret_cast<float*>(static_cast<char*>(readback_.mapped()) + slot * readback_slot_);
  }

  // Records the copies of `batch` (patches already in patches(slot); labels from the batch) to
  // the model input and, when given, the labels buffer.
  void record_upload(vk::Recorder& rec, int slot, const data::Batch& batch, const vk::View& input, const vk::View* labels) {
    const uint64_t base = slot * upload_slot_, patch_bytes = uint64_t(batch.size) * per_image_ * 4;
    rec.copy(upload_.view().bytes(base, patch_bytes), input.bytes(0, patch_bytes));
    if (labels) {
      const uint64_t at = base + uint64_t(max_batch_) * per_image_ * 4;
      std::memcpy(static_cast<char*>(upload_.mapped()) + at, batch.labels.data(), batch.size * 4);
      rec.copy(upload_.view().bytes(at, batch.size * 4), labels->bytes(0, batch.size * 4));
    }
  }
  // Records a copy of `src` into readback(slot) at float `at`.
  void record_readback(vk::Recorder& rec, int slot, const vk::View& src, uint64_t at) {
    rec.copy(src, readback_.view().bytes(slot * readback_slot_ + at * 4, src.size));
  }

 private:
  static uint64_t align(uint64_t bytes) { return (bytes + 255) / 256 * 256; }
  uint64_t per_image_, upload_slot_, readback_slot_;
  vk::Buffer upload_;    // per slot: (max_batch, Np, patch_dim) patches, then max_batch labels
  vk::Buffer readback_;  // per slot: readback_floats
  uint32_t max_batch_;
};

// Whether the host reads the next batch and submits its work before waiting for the step in
// flight (the default); VKVIT_STEP_OVERLAP=0 waits first, for comparisons and tests.
bool step_overlap() {
  const char* v = std::getenv("VKVIT_STEP_OVERLAP");
  return !(v && std::strcmp(v, "0") == 0);
}

// Mean cross-entropy (no smoothing) of host logits, in double.
double cross_entropy_sum(const float* logits, const uint32_t* labels, uint32_t B, uint32_t K) {
  double total = 0;
  for (uint32_t b = 0; b < B; ++b) {
    const float* row = logits + uint64_t(b) * K;
    double mx = row[0];
    for (uint32_t k = 1; k < K; ++k) mx = std::max<double>(mx, row[k]);
    double s = 0;
    for (uint32_t k = 0; k < K; ++k) s += std::exp(double(row[k]) - mx);
    total += mx + std::log(s) - row[labels[b]];
  }
  return total;
}

std::string format_eval(const EvalResult& r) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "loss %.4f  top1 %.2f%%  top5 %.2f%%  (%llu images, %.0f img/s)", r.loss, r.top1,
                r.top5, static_cast<unsigned long long>(r.images), r.images_per_s);
  return buf;
}

}  // namespace

void infer(vk::Context& ctx, model::Vit& vit, data::Loader& loader,
           const std::function<void(const data::Batch& batch, const float* logits)>& fn) {
  const uint64_t K = static_cast<uint64_t>(vit.config().num_classes);
  if (loader.batch_size() > vit.max_batch())
    throw Error("internal: infer: loader batches of " + std::to_string(loader.batch_size()) +
                " images, model sized for " + std::to_string(vit.max_batch()));
  StepIo io(ctx, vit, loader.batch_size(), uint64_t(loader.batch_size()) * K);
  // Batch k + 1 is assembled and submitted while the GPU runs batch k; then batch k's logits are
  // read (their slot is not touched again until batch k + 2).
  data::Batch batches[StepIo::kSlots];
  vk::Recorder rec0(ctx), rec1(ctx);
  vk::Recorder* recs[StepIo::kSlots] = {&rec0, &rec1};
  auto submit = [&](int slot) {
    io.record_upload(*recs[slot], slot, batches[slot], vit.patches_input(), nullptr);
    vit.forward(*recs[slot], batches[slot].size, /*for_backward=*/false);
    io.record_readback(*recs[slot], slot, vit.logits().slice(0, batches[slot].size * K), 0);
    recs[slot]->submit();
  };
  loader.start_epoch(0);
  int cur = 0;
  bool have = loader.next(batches[cur], io.patches(cur));
  if (have) submit(cur);
  const bool overlap = step_overlap();
  while (have) {
    const int next = cur ^ 1;
    bool have_next = false;
    if (overlap) {
      have_next = loader.next(batches[next], io.patches(next));
      if (have_next) submit(next);
    }
    recs[cur]->wait();
    fn(batches[cur], io.readback(cur));
    if (!overlap) {
      have_next = loader.next(batches[next], io.patches(next));
      if (have_next) submit(next);
    }
    cur = next;
    have = have_next;
  }
}

EvalResult evaluate(vk::Context& ctx, model::Vit& vit, data::Loader& loader, dist::Comm* comm) {
  const uint32_t K = static_cast<uint32_t>(vit.config().num_classes);
  AccuracyMeter meter(K);
  EvalResult r;
  double loss_sum = 0;
  std::vector<int32_t> labels;
  const auto start = std::chrono::steady_clock::now();
  infer(ctx, vit, loader, [&](const data::Batch& batch, const float* logits) {
    labels.assign(batch.labels.begin(), batch.labels.end());
    meter.add(logits, labels.data(), batch.size);
    loss_sum += cross_entropy_sum(logits, batch.labels.data(), batch.size, K);
    r.images += batch.size;
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.skipped = loader.skipped_this_epoch();
  if (comm && comm->distributed()) {
    std::vector<uint64_t> counts = meter.counts();
    counts.push_back(r.images);
    counts.push_back(r.skipped);
    comm->allreduce_sum(counts.data(), counts.size());
    r.skipped = counts.back();
    counts.pop_back();
    r.images = counts.back();
    counts.pop_back();
    meter.set_counts(counts);
    comm->allreduce_sum(&loss_sum, 1);
    comm->allreduce_max(&seconds, 1);  // the split is done when the slowest rank is
  }
  r.loss = r.images ? loss_sum / double(r.images) : NAN;
  r.top1 = 100.0 * meter.top1();
  r.top5 = 100.0 * meter.top5();
  for (double a : meter.per_class()) r.per_class.push_back(100.0 * a);
  r.confusion = meter.confusion();
  r.images_per_s = seconds > 0 ? r.images / seconds : 0;
  return r;
}

namespace {

// Where a run that stops now can be continued from, as one clause of an error line.
std::string last_good_checkpoint(const std::string& run_dir, const std::string& resumed_from) {
  // Another rank of a data-parallel run: the folder is rank 0's, maybe on another machine.
  if (!dist::Comm::world().is_root())
    return "rank 0 keeps the run's checkpoints" + (run_dir.empty() ? std::string() : " in " + run_dir) +
           "; continue from its last.safetensors with --resume";
  std::string path;
  if (!run_dir.empty() && fs::exists(fs::path(run_dir) / "last.safetensors"))
    path = (fs::path(run_dir) / "last.safetensors").string();
  else if (!resumed_from.empty())
    path = resumed_from;
  if (path.empty())
    return "no checkpoint was written yet (the first is written at the end of epoch 1, or at --max-steps): start the "
           "run again";
  std::string when;
  try {
    const CheckpointMeta meta = read_checkpoint_meta(path);
    when = " (saved after step " + std::to_string(meta.step) + ")";
  } catch (const Error&) {
    // Named anyway: the loader reports what is wrong with it on --resume.
  }
  const std::string config = run_dir.empty() ? std::string("<config>") : (fs::path(run_dir) / "config.yaml").string();
  return "the last good checkpoint is " + path + when + "; continue with: vkvit train --config " + config +
         " --resume " + path;
}

// How far a run got, for the error lines train() writes when it stops.
struct RunProgress {
  std::string run_dir;
  uint64_t step = 0;   // the step being attempted (1-based, as in steps.csv)
  uint64_t epoch = 0;  // 1-based
};

std::vector<data::Sample> split_samples(const std::string& root, const std::vector<std::string>& expect_classes,
                                        std::vector<std::string>* classes_out) {
  data::ImageFolder folder = data::ImageFolder::scan(root);
  if (!expect_classes.empty() && folder.classes != expect_classes)
    throw Error(root + ": its class folders differ from the training classes (" + std::to_string(folder.classes.size()) +
                " vs " + std::to_string(expect_classes.size()) + "); use the same class folders in every split");
  if (classes_out) *classes_out = folder.classes;
  return folder.samples;
}

}  // namespace

// Where a resumed run starts: read from the checkpoint by rank 0 and sent to every rank.
struct ResumePoint {
  uint64_t step = 0, epoch = 0, position = 0, epoch_images = 0, loss_scale_good_steps = 0;
  double epoch_loss_sum = 0, best_top1 = -1, loss_scale = 0;
};

static TrainResult run_training(vk::Context& ctx, TrainConfig cfg, const TrainOptions& options, RunProgress& progress) {
  // Data-parallel runs: every rank trains, rank 0 alone reads the checkpoint it resumes from and
  // writes the run folder and the log.
  dist::Comm& world = dist::Comm::world();
  const bool dp = world.distributed(), root = world.is_root();
  const bool quiet = options.quiet || !root;
  const uint32_t ranks = static_cast<uint32_t>(world.size());
  if (cfg.data.dir.empty())
    throw Error("no dataset folder: set data.dir in " + cfg.source + " or pass --data-dir");
  const model::VitConfig vcfg = to_vit_config(cfg.model);

  std::vector<std::string> classes;
  const std::string train_root = (fs::path(cfg.data.dir) / cfg.data.train_split).string();
  const std::string val_root = (fs::path(cfg.data.dir) / cfg.data.val_split).string();
  std::vector<data::Sample> train_samples = split_samples(train_root, {}, &classes);
  if (classes.size() != static_cast<size_t>(vcfg.num_classes))
    throw Error(train_root + " has " + std::to_string(classes.size()) + " classes but model.num_classes is " +
                std::to_string(vcfg.num_classes) + "; set model.num_classes=" + std::to_string(classes.size()));
  std::vector<data::Sample> val_samples;
  if (fs::exists(val_root)) val_samples = split_samples(val_root, classes, nullptr);
  else if (root) log_warn("no validation split at " + val_root + ": training without evaluation");
  check_ranks_agree(world, cfg, classes, train_samples, val_samples);

  const uint32_t B = static_cast<uint32_t>(cfg.train.batch_size);
  data::LoaderConfig train_lc = loader_config(cfg, true), val_lc = loader_config(cfg, false);
  train_lc.shard_index = val_lc.shard_index = static_cast<uint32_t>(world.rank());
  train_lc.shard_count = val_lc.shard_count = ranks;
  data::Loader train_loader(train_samples, train_lc);
  std::unique_ptr<data::Loader> val_loader;
  if (!val_samples.empty()) val_loader = std::make_unique<data::Loader>(val_samples, val_lc);

  check_memory_plan(ctx, vcfg, B, cfg.train.amp, cfg.name);
  model::Vit vit(ctx, vcfg, B, cfg.train.amp);
  TrainStep sb(ctx, vit, B);
  const uint64_t n = vit.layout().total_floats();

  uint64_t step = 0, start_epoch = 0, start_position = 0;
  double best_top1 = -1, resumed_loss_sum = 0;
  uint64_t resumed_images = 0;
  if (!options.resume.empty()) {
    ResumePoint at;
    if (root) {
      const CheckpointMeta meta = read_checkpoint_meta(options.resume);
      if (meta.config.model != cfg.model)
        throw Error(options.resume + ": its model differs from the config's model section (checkpoint vs config: " +
                    meta.config.model.differences(cfg.model) + "); resume with the config it was trained with");
      if (meta.classes != classes)
        throw Error(options.resume + ": its classes differ from the folders in " + train_root);
      load_checkpoint_weights(options.resume, vit);
      std::vector<float> m, v;
      load_optimizer_state(options.resume, n, m, v);
      if (sb.amp()) sb.scaler().restore_from(meta, options.resume);
      ctx.upload(sb.m(), m.data(), n * 4);
      ctx.upload(sb.v(), v.data(), n * 4);
      at = {meta.step, meta.epoch, meta.position, meta.epoch_images, sb.scaler().good_steps(),
            meta.epoch_loss_sum, meta.best_top1, sb.scaler().scale()};
    }
    if (dp) {
      world.broadcast(&at, sizeof at);
      broadcast_device(world, ctx, vit.params_view());
      broadcast_device(world, ctx, sb.m());
      broadcast_device(world, ctx, sb.v());
      if (sb.amp() && !root) sb.scaler().restore(at.loss_scale, at.loss_scale_good_steps, options.resume);
    }
    step = at.step;
    start_epoch = at.epoch;
    start_position = at.position;
    resumed_loss_sum = at.epoch_loss_sum;
    resumed_images = at.epoch_images;
    best_top1 = at.best_top1;
    log_info("resuming from " + options.resume + " at epoch " + std::to_string(start_epoch) + ", step " +
             std::to_string(step) + (start_position ? ", image " + std::to_string(start_position) + " of the epoch" : ""));
  } else {
    vit.init(cfg.train.seed);
    broadcast_device(world, ctx, vit.params_view());  // every rank starts from rank 0's weights
  }

  std::optional<RunDir> run;
  if (root) {
    run.emplace(options.resume.empty() || !options.output.empty()
                    ? RunDir::create(cfg, options.output)
                    : RunDir::open(fs::path(options.resume).parent_path().string()));
    progress.run_dir = run->path();
    if (!options.resume.empty() && options.output.empty()) run->rewind(step, start_epoch);
  }
  if (dp) {  // the other ranks name rank 0's run folder when they stop
    uint64_t length = progress.run_dir.size();
    world.broadcast(&length, sizeof length);
    progress.run_dir.resize(length);
    world.broadcast(progress.run_dir.data(), length);
  }
  const uint64_t steps_per_epoch = train_loader.batches_per_epoch();
  OptimConfig schedule_cfg = cfg.train;
  if (cfg.train.lr_scaling == "linear") schedule_cfg.lr *= ranks;  // the linear scaling rule
  const LrSchedule schedule = LrSchedule::from_config(schedule_cfg, steps_per_epoch);
  std::unique_ptr<GradientSync> sync;
  if (dp) sync = GradientSync::from_env(ctx, world, vit.layout(), vit.grads_view());
  ops::AdamWHyper hyper;
  hyper.beta1 = cfg.train.betas[0];
  hyper.beta2 = cfg.train.betas[1];
  hyper.eps = cfg.train.eps;
  hyper.weight_decay = cfg.train.weight_decay;

  if (!quiet)
    std::fprintf(stderr, "vkvit: training %s (%llu parameters) on %s: %zu train / %zu val images, %llu steps per epoch\n",
                 cfg.name.c_str(), static_cast<unsigned long long>(vit.param_count()), ctx.info().name.c_str(),
                 train_samples.size(), val_samples.size(), static_cast<unsigned long long>(steps_per_epoch));
  if (!quiet && dp)
    std::fprintf(stderr,
                 "vkvit: %u ranks x batch %u = global batch %llu; gradients averaged in %zu bucket%s, %.1f MB "
                 "per step; peak lr %.3g%s\n",
                 ranks, B, static_cast<unsigned long long>(uint64_t(B) * ranks), sync->buckets(),
                 sync->buckets() == 1 ? "" : sync->overlap() ? "s overlapping the backward pass" : "s",
                 double(sync->bytes_per_step()) / 1e6,
                 schedule_cfg.lr,
                 cfg.train.lr_scaling == "linear" ? " (train.lr x ranks, train.lr_scaling: linear)" : "");
  // The bar or the periodic lines (train/progress.h); erased on the way out when an error stops the run.
  TrainProgress display(progress_mode(quiet), static_cast<uint64_t>(cfg.train.epochs), steps_per_epoch,
                        static_cast<uint64_t>(cfg.train.log_every), options.max_steps);

  TrainResult result;
  result.run_dir = progress.run_dir;
  result.best_top1 = best_top1;
  StepIo io(ctx, vit, B, 1 + ops::kGradNormFloats);
  // Recorders come after the buffers their work uses: when an error unwinds the stack with a step
  // still in flight (the next step is submitted before the wait), each waits for its work in its
  // destructor before those buffers go (a lost device found by the wait left step k + 1 running
  // on lavapipe while StepIo's staging was freed).
  vk::Recorder rec(ctx);
  data::Batch batch;
  uint64_t nonfinite_in_a_row = 0;
  // last.safetensors with the optimizer state inside (one atomic file); `meta` says how far the
  // run is.
  auto save_last = [&](const CheckpointMeta& meta) {
    std::vector<float> m(n), v(n);
    ctx.download(sb.m(), m.data(), n * 4);
    ctx.download(sb.v(), v.data(), n * 4);
    save_checkpoint(run->file("last.safetensors"), vit, sb.amp() ? sb.scaler().saved_in(meta) : meta, &m, &v);
  };
  CheckpointMeta meta;
  meta.config = cfg;
  meta.classes = classes;

  for (uint64_t epoch = start_epoch; epoch < static_cast<uint64_t>(cfg.train.epochs); ++epoch) {
    const bool resumed_mid_epoch = epoch == start_epoch && start_position > 0;
    train_loader.start_epoch(epoch, resumed_mid_epoch ? start_position : 0);
    RunningMean train_loss;
    if (resumed_mid_epoch) train_loss.restore(resumed_loss_sum, double(resumed_images));
    Throughput speed;
    speed.start();
    double lr = schedule.at(step);
    uint64_t epoch_step = resumed_mid_epoch ? resumed_images / (uint64_t(B) * ranks) : 0;
    const float label_smoothing = static_cast<float>(cfg.train.label_smoothing);
    const float clip_grad = static_cast<float>(cfg.train.clip_grad);
    // What the host does with a step's loss and gradient norm once the GPU has run it: skip or
    // count it, log it, stop at --max-steps (then true: the checkpoint is written).
    auto finish_step = [&](float loss, float norm, uint64_t images) -> bool {
      // amp (GradScaler's rule): an fp16 overflow in the gradients of a finite loss skips the step
      // and halves the loss scale, without counting as divergence while the scale is >= 1.
      if (sb.amp() && !sb.scaler().update(std::isfinite(loss) && std::isfinite(norm)) && std::isfinite(loss) &&
          sb.scaler().scale() >= 1.0f) {
        log_info("step " + std::to_string(step + 1) + ": fp16 gradient overflow; the update was skipped, loss scale now " +
                 std::to_string(sb.scaler().scale()));
        return false;
      }
      if (!std::isfinite(loss) || !std::isfinite(norm)) {
        ++nonfinite_in_a_row;
        const uint64_t limit = static_cast<uint64_t>(cfg.train.max_nonfinite_steps);
        if (root)
          log_warn("step " + std::to_string(step + 1) + ": non-finite loss or gradient norm; the update was skipped (" +
                   std::to_string(nonfinite_in_a_row) + " in a row, the run stops after " + std::to_string(limit) + ")");
        // Every rank sees the same summed loss and norm, so all reach this at the same step; rank 0
        // alone reports it, and the others wait in their next collective until its abort ends them.
        if (nonfinite_in_a_row > limit && root)
          throw TrainingDivergedError(
              "training diverged: more than " + std::to_string(limit) +
              " steps in a row had a non-finite loss or gradient norm (the last at step " + std::to_string(step + 1) +
              "); lower train.lr or set train.clip_grad; " + last_good_checkpoint(progress.run_dir, options.resume));
        return false;  // the step counter only advances for applied updates
      }
      nonfinite_in_a_row = 0;
      ++step;
      ++epoch_step;
      train_loss.add(loss, double(images));
      speed.add_images(images);
      if (run) run->append_step({step, epoch + 1, loss, lr, norm});
      if (options.max_steps > 0 && step >= options.max_steps) {
        meta.epoch = epoch;  // epochs completed: this one is not
        meta.step = step;
        meta.best_top1 = result.best_top1;
        // The ranks' shards interleave: the run stands where the furthest-behind shard does.
        uint64_t position = train_loader.position();
        world.allreduce_min(&position, 1);
        meta.position = position;
        meta.epoch_loss_sum = train_loss.sum();
        meta.epoch_images = static_cast<uint64_t>(train_loss.weight());
        if (run) save_last(meta);
        display.clear();
        if (!quiet)
          std::fprintf(stderr, "vkvit: stopped after step %llu (--max-steps) in epoch %llu; continue with --resume %s\n",
                       static_cast<unsigned long long>(step), static_cast<unsigned long long>(epoch + 1),
                       run->file("last.safetensors").c_str());
        result.stopped_early = true;
        return true;
      }
      display.step(epoch + 1, epoch_step, step, train_loss.mean(), lr, speed.images_per_s(), speed.seconds());
      return false;
    };
    auto start_step = [&] {
      progress.step = step + 1;
      progress.epoch = epoch + 1;
      lr = schedule.at(step);
      hyper.lr = lr;
    };

    if (!dp) {
      // One process: each step is two submissions, the gradients (upload, forward, loss,
      // backward) and the update (norm, clipping, AdamW, the loss and norm copied out). While the
      // GPU runs step k the host assembles batch k + 1 and, unless step k's outcome changes what
      // it records (amp: the loss scale), submits its gradients too; only then does it wait for
      // step k's loss. The update is recorded last because its lr and AdamW step count depend on
      // whether step k was applied. The GPU thus always has the next step queued, and no batch
      // is read ahead of --max-steps (the checkpoint's position stays exact). VKVIT_STEP_OVERLAP=0:
      // the same submissions, each after the wait for the one before.
      // VKVIT_FAULT_NAN_AT_STEP poisons a step's batch by its step number and attempt; a step
      // submitted ahead assumes the one before it is applied unless that one was poisoned itself.
      struct Pending {
        data::Batch batch;
        uint64_t step = 0, attempt = 0;  // the fault hook's view of this step
        bool poisoned = false;
      } slots[StepIo::kSlots];
      vk::Recorder rec1(ctx);
      vk::Recorder* recs[StepIo::kSlots] = {&rec, &rec1};
      auto submit_gradients = [&](int slot, uint64_t fault_step, uint64_t attempt) {
        Pending& p = slots[slot];
        vk::Recorder& r = *recs[slot];
        p.step = fault_step;
        p.attempt = attempt;
        io.record_upload(r, slot, p.batch, vit.patches_input(), &sb.labels());
        // VKVIT_FAULT_NAN_AT_STEP: a NaN in the batch, written by the GPU inside this very step.
        p.poisoned = vk::fault::nan_at(fault_step, attempt);
        if (p.poisoned) r.fill(vit.patches_input().slice(0, 1), NAN);
        sb.record_gradients(r, p.batch.size, label_smoothing, 1.0f);
        r.flush();
      };
      const bool overlap = step_overlap();
      int cur = 0;
      bool have = train_loader.next(slots[cur].batch, io.patches(cur));
      if (have) submit_gradients(cur, step + 1, nonfinite_in_a_row);
      while (have) {
        start_step();
        vk::Recorder& r = *recs[cur];
        sb.record_update(r, hyper, step + 1, clip_grad);
        io.record_readback(r, cur, sb.loss(), 0);
        io.record_readback(r, cur, sb.norm(), 1);
        if (vk::fault::device_lost_at(step + 1)) r.inject_wait_result(VK_ERROR_DEVICE_LOST);
        r.submit();

        const int next = cur ^ 1;
        const bool read_ahead = overlap && !(options.max_steps > 0 && step + 1 >= options.max_steps);
        bool have_next = false, next_submitted = false;
        if (read_ahead) {
          have_next = train_loader.next(slots[next].batch, io.patches(next));
          if (have_next && !sb.amp()) {
            const Pending& c = slots[cur];
            if (c.poisoned) submit_gradients(next, c.step, c.attempt + 1);
            else submit_gradients(next, c.step + 1, 0);
            next_submitted = true;
          }
        }
        r.wait();
        const float loss = io.readback(cur)[0], norm = io.readback(cur)[1 + ops::kGradNormIndex];
        if (finish_step(loss, norm, slots[cur].batch.size)) return result;
        if (!read_ahead) have_next = train_loader.next(slots[next].batch, io.patches(next));
        if (have_next && !next_submitted) submit_gradients(next, step + 1, nonfinite_in_a_row);
        cur = next;
        have = have_next;
      }
    } else {
      for (;;) {
        const bool have_batch = train_loader.next(batch, io.patches(0));
        // The global batch: the images of every rank's batch (a rank whose shard ran out early,
        // after failed files, takes part with none; the epoch ends when all have run out).
        uint64_t images = have_batch ? batch.size : 0;
        world.allreduce_sum(&images, 1);
        if (images == 0) break;
        start_step();
        // Two submissions: this rank's gradients (weighted by its share of the global batch) out
        // to host memory, the sum over the ranks, then the same update on every rank.
        const float share = float(have_batch ? batch.size : 0) / float(images);
        if (have_batch) {
          io.record_upload(rec, 0, batch, vit.patches_input(), &sb.labels());
          if (vk::fault::nan_at(step + 1, nonfinite_in_a_row)) rec.fill(vit.patches_input().slice(0, 1), NAN);
          sync->begin_step();
          sb.record_gradients(rec, batch.size, label_smoothing, share,
                              [&](uint64_t first) { sync->grads_ready(rec, first); });
          io.record_readback(rec, 0, sb.loss(), 0);
          rec.submit();
          sync->allreduce(&rec, [&] { return io.readback(0)[0] * share; });
        } else {
          sync->allreduce(nullptr, {});
        }
        sync->record_copy_back(rec);
        sb.record_update(rec, hyper, step + 1, clip_grad);
        io.record_readback(rec, 0, sb.norm(), 1);
        if (vk::fault::device_lost_at(step + 1)) rec.inject_wait_result(VK_ERROR_DEVICE_LOST);
        rec.submit_and_wait();
        if (finish_step(sync->loss(), io.readback(0)[1 + ops::kGradNormIndex], images)) return result;
      }
    }
    speed.stop();
    result.train_images_per_s = speed.images_per_s();

    SummaryRow row;
    row.epoch = epoch + 1;
    row.train_loss = train_loss.mean();
    row.lr = lr;
    row.img_per_s = speed.images_per_s();
    uint64_t skipped = train_loader.skipped_this_epoch();
    world.allreduce_sum(&skipped, 1);
    row.skipped_files = skipped;
    row.val_loss = row.val_top1 = row.val_top5 = NAN;
    const bool last_epoch = epoch + 1 == static_cast<uint64_t>(cfg.train.epochs);
    if (val_loader && (last_epoch || (cfg.train.eval_every > 0 && (epoch + 1) % cfg.train.eval_every == 0))) {
      // On a terminal the evaluation gets its own bar (rank 0's shard) in place of the finished
      // epoch's; plain-line and quiet runs show nothing until the summary.
      display.clear();
      CountProgress eval_bar(progress_mode(quiet), "eval");
      val_loader->set_progress_callback([&eval_bar](uint64_t done, uint64_t total) { eval_bar.update(done, total); });
      result.last_eval = evaluate(ctx, vit, *val_loader, &world);
      val_loader->set_progress_callback({});
      eval_bar.clear();
      row.val_loss = result.last_eval.loss;
      row.val_top1 = result.last_eval.top1;
      row.val_top5 = result.last_eval.top5;
      row.skipped_files += result.last_eval.skipped;
    }
    if (run) {
      run->append_summary(row);
      update_curves(*run);  // runs/<run>/curves.png from every summary.csv row (train/plots.h)
    }
    if (!quiet) {
      display.clear();  // the summary takes the bar's place
      std::fprintf(stderr, "epoch %llu/%d: train loss %.4f, %.0f img/s, %llu files skipped",
                   static_cast<unsigned long long>(epoch + 1), cfg.train.epochs, row.train_loss, row.img_per_s,
                   static_cast<unsigned long long>(row.skipped_files));
      if (std::isfinite(row.val_top1)) std::fprintf(stderr, "; val %s", format_eval(result.last_eval).c_str());
      std::fprintf(stderr, "\n");
    }

    meta.epoch = epoch + 1;
    meta.step = step;
    meta.position = 0;
    meta.epoch_loss_sum = 0;
    meta.epoch_images = 0;
    const bool best = std::isfinite(row.val_top1) && row.val_top1 > result.best_top1;
    if (best) result.best_top1 = row.val_top1;
    meta.best_top1 = result.best_top1;
    if (run) {
      save_last(meta);
      if (best) save_checkpoint(run->file("best.safetensors"), vit, meta);
    }
  }
  return result;
}

TrainResult train(vk::Context& ctx, TrainConfig cfg, const TrainOptions& options) {
  RunProgress progress;
  try {
    TrainResult r = run_training(ctx, cfg, options, progress);
    // The plan's promise, checked where it can be (VKVIT_LOG=info; the guards test reads it). The
    // plan is a counting pass over a shell model: only built when the line is printed.
    if (log_level() >= LogLevel::info)
      log_info("device memory: peak " + std::to_string(ctx.peak_allocated_bytes()) + " bytes, memory plan " +
               std::to_string(plan_memory(ctx, to_vit_config(cfg.model), uint32_t(cfg.train.batch_size), cfg.train.amp).total) +
               " bytes");
    return r;
  } catch (const OutOfMemoryError& e) {
    // Everything the run allocated is freed by now: the advice sees the device as the run found it.
    throw OutOfMemoryError(e.detail(), batch_advice(ctx, to_vit_config(cfg.model), uint32_t(cfg.train.batch_size), cfg.train.amp, cfg.name));
  } catch (const DeviceLostError&) {
    // Nothing on the device can be trusted, and nothing more is read from it: the run ends here,
    // with what is on disk.
    const std::string where = progress.step ? " during step " + std::to_string(progress.step) + " (epoch " +
                                                  std::to_string(progress.epoch) + ")"
                                            : "";
    throw DeviceLostError("the GPU was lost (VK_ERROR_DEVICE_LOST)" + where + "; " +
                          last_good_checkpoint(progress.run_dir, options.resume) +
                          " once the driver has recovered (see the system log)");
  }
}

}  // namespace vkvit::train
