#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "base/error.h"
#include "base/log.h"
#include "ops/adamw.h"
#include "ops/ema.h"
#include "ops/grad_norm.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/loader_config.h"
#include "train/memory_plan.h"
#include "train/metrics.h"
#include "train/mixup.h"
#include "train/param_groups.h"
#include "train/plots.h"
#include "train/pretrained.h"
#include "train/progress.h"
#include "train/run_dir.h"
#include "train/run_start.h"
#include "train/schedule.h"
#include "train/step_io.h"
#include "train/train_step.h"
#include "vk/fault.h"
#include "vk/recorder.h"

namespace vkvit::train {

namespace fs = std::filesystem;

namespace {

// What changes from step to step: how far the run is, and this epoch's running figures.
struct RunState {
  uint64_t step = 0;        // applied updates so far (AdamW's t is step + 1 for the next one)
  uint64_t epoch = 0;       // the epoch in progress, 0-based
  uint64_t epoch_step = 0;  // applied updates in this epoch, a resumed epoch's earlier ones included
  uint64_t nonfinite_in_a_row = 0;
  double lr = 0;            // the step in progress's learning rate
  RunningMean epoch_loss;   // this epoch's train loss, weighted by images
  Throughput epoch_speed;
};

// One step of the pipelined loop: its batch and what the fault hook saw when it was submitted.
// VKVIT_FAULT_NAN_AT_STEP poisons a step's batch by its step number and attempt; a step submitted
// ahead assumes the one before it is applied unless that one was poisoned itself.
struct PendingStep {
  data::Batch batch;
  uint64_t step = 0, attempt = 0;
  bool poisoned = false;
};

// The training run, one method per phase. run() reads like the loop it is:
//   for each epoch: start it, train it (pipelined on one process, or data-parallel), end it
//   (evaluate, summary, checkpoints); a --max-steps stop saves mid-epoch and returns.
// Construction does the rest of the setup: folders scanned, loaders and model built, weights
// initialised or resumed, the run folder opened.
class Trainer {
 public:
  Trainer(vk::Context& ctx, const RunConfig& cfg, const TrainOptions& options, RunPosition& position);
  TrainResult run();

 private:
  void start_from(const ResumePoint& at);
  void start_ema();
  void open_run_folder();
  void announce() const;

  void start_epoch();
  bool train_epoch_pipelined();    // true: --max-steps stopped the run
  bool train_epoch_distributed();  // true: --max-steps stopped the run
  bool train_epoch_accumulated();  // train.accum_steps > 1; true: --max-steps stopped the run
  bool record_micro_batches(uint64_t& images);  // false: the epoch ran out within the step
  void record_micro_batch(int slot, uint32_t j, float share, bool accumulate);
  void submit_update_and_wait();
  void end_epoch();

  void start_step();
  bool next_batch(int slot);
  void submit_gradients(int slot, uint64_t fault_step, uint64_t attempt);
  void submit_update(int slot);
  void record_ema(vk::Recorder& r);
  bool step_rejected(float loss, float norm);
  bool apply_step(float loss, float norm, uint64_t images);  // true: --max-steps reached
  void stop_at_max_steps();

  SummaryRow evaluate_epoch(SummaryRow row);
  EvalResult evaluate_with_bar(const char* label);
  EvalResult evaluate_ema();
  void save_best(const SummaryRow& row, CheckpointMeta meta);
  void print_epoch(const SummaryRow& row) const;
  CheckpointMeta checkpoint_meta() const;
  void save_last(const CheckpointMeta& meta);

  vk::Context& ctx_;
  const RunConfig cfg_;
  const TrainOptions& options_;
  RunPosition& position_;
  dist::Comm& world_;
  const bool distributed_, root_, quiet_;
  const uint32_t ranks_, batch_;
  const uint32_t accum_;  // train.accum_steps: micro-batches per optimizer step
  const RunSplits splits_;
  data::Loader train_loader_;
  std::unique_ptr<data::Loader> val_loader_;
  std::unique_ptr<model::Vit> vit_;
  const ParamGroups groups_;  // train.layer_decay, train.freeze
  std::unique_ptr<TrainStep> train_step_;
  std::optional<RunDir> run_;
  ResumePoint resumed_;  // where this process started (step 0 for a new run)
  double peak_lr_ = 0;
  uint64_t steps_per_epoch_ = 0;  // optimizer steps
  std::vector<float> micro_weights_;  // accumulation: each micro-batch's weight in the step's loss
  std::optional<LrSchedule> schedule_;
  std::unique_ptr<GradientSync> sync_;  // data-parallel runs
  ops::AdamWHyper hyper_;
  RunState state_;
  TrainResult result_;
  std::unique_ptr<TrainProgressDisplay> display_;
  StepIo io_;
  const BatchMixer mixer_;  // train.mixup / train.cutmix: each batch is mixed after its upload
  PendingStep pending_[StepIo::kSlots];
  std::unique_ptr<vk::Buffer> ema_;  // train.model_ema: the averaged weights, the parameter layout
  // Recorders come after the buffers their work uses: when an error unwinds with a step still in
  // flight (the next step is submitted before the wait), each waits for its work in its destructor
  // before those buffers go (a lost device found by the wait left step k + 1 running on lavapipe
  // while StepIo's staging was freed).
  vk::Recorder rec0_, rec1_;
  vk::Recorder* recs_[StepIo::kSlots] = {&rec0_, &rec1_};
};

Trainer::Trainer(vk::Context& ctx, const RunConfig& cfg, const TrainOptions& options, RunPosition& position)
    : ctx_(ctx),
      cfg_(cfg),
      options_(options),
      position_(position),
      world_(dist::Comm::world()),
      distributed_(world_.distributed()),
      root_(world_.is_root()),
      quiet_(options.quiet || !root_),
      ranks_(static_cast<uint32_t>(world_.size())),
      batch_(static_cast<uint32_t>(cfg.train.batch_size)),
      accum_(static_cast<uint32_t>(cfg.train.accum_steps)),
      splits_(scan_splits(cfg, world_)),
      train_loader_(splits_.train, sharded(loader_config(cfg, true), world_)),
      vit_((check_memory_plan(ctx, to_vit_config(cfg.model), batch_, cfg.train, cfg.name),
            std::make_unique<model::Vit>(ctx, to_vit_config(cfg.model), batch_, cfg.train.amp))),
      groups_(param_groups(vit_->layout(), vit_->config().depth, cfg.train.layer_decay, cfg.train.freeze)),
      train_step_(std::make_unique<TrainStep>(ctx, *vit_, batch_, &groups_)),
      io_(ctx, *vit_, batch_, 1 + ops::kGradNormFloats + accum_),
      mixer_(batch_mixer(cfg, uint64_t(world_.rank()))),
      rec0_(ctx),
      rec1_(ctx) {
  if (!splits_.val.empty())
    val_loader_ = std::make_unique<data::Loader>(splits_.val, sharded(loader_config(cfg, false), world_));
  if (options.resume.empty()) {
    vit_->init(cfg.train.seed);
    if (!cfg.train.pretrained.empty() && root_) load_pretrained(cfg, splits_.classes, *vit_, quiet_);
    broadcast_device(world_, ctx_, vit_->params_view());  // every rank starts from rank 0's weights
    start_from({});
  } else {
    start_from(resume_run(ctx, cfg, splits_, options.resume, *vit_, *train_step_, world_));
  }
  if (cfg.train.model_ema) start_ema();
  open_run_folder();
  steps_per_epoch_ = train_loader_.batches_per_epoch();
  if (accum_ > 1) {
    // Ranks agree on the count (a shard may hold a batch less); the tail short of a step is dropped.
    double batches = double(steps_per_epoch_);
    if (distributed_) world_.allreduce_max(&batches, 1);
    steps_per_epoch_ = uint64_t(batches) / accum_;
    if (steps_per_epoch_ == 0)
      throw Error("train.accum_steps " + std::to_string(accum_) + " x train.batch_size " + std::to_string(batch_) +
                  " is more than an epoch's " + std::to_string(uint64_t(batches)) + " batches");
  }
  const uint64_t steps_per_epoch = steps_per_epoch_;
  TrainConfig schedule_cfg = cfg.train;
  if (cfg.train.lr_scaling == "linear") schedule_cfg.lr *= ranks_;  // the linear scaling rule
  peak_lr_ = schedule_cfg.lr;
  schedule_.emplace(LrSchedule::from_config(schedule_cfg, steps_per_epoch));
  if (distributed_)
    sync_ = GradientSync::with_tuning(ctx, world_, vit_->layout(), vit_->grads_view(),
                                      groups_.active() ? groups_.frozen : std::vector<bool>{});
  hyper_ = adamw_hyper(cfg.train);
  announce();
  // The bar or the periodic lines (train/progress.h); erased on the way out when an error stops the run.
  display_ = std::make_unique<TrainProgressDisplay>(progress_mode(quiet_), static_cast<uint64_t>(cfg.train.epochs),
                                                    steps_per_epoch, static_cast<uint64_t>(cfg.train.log_every),
                                                    options.max_steps);
}

void Trainer::start_from(const ResumePoint& at) {
  resumed_ = at;
  state_.step = at.step;
  result_.best_top1 = at.best_top1;
  if (!options_.resume.empty())
    log_info("resuming from " + options_.resume + " at epoch " + std::to_string(at.epoch) + ", step " +
             std::to_string(at.step) +
             (at.position ? ", image " + std::to_string(at.position) + " of the epoch" : ""));
}

// The model EMA starts as a copy of the weights (timm's ModelEmaV3 deep-copies the model), or,
// resuming, as the checkpoint saved it; a checkpoint of a run without EMA starts it from the
// resumed weights. Data-parallel ranks hold identical weights, hence identical EMAs: rank 0's is
// sent to all.
void Trainer::start_ema() {
  const uint64_t n = vit_->layout().total_floats();
  ema_ = std::make_unique<vk::Buffer>(ctx_, n * 4, vk::MemoryKind::device, "model EMA");
  uint8_t loaded = 0;
  if (!options_.resume.empty() && root_) {
    std::vector<float> saved;
    loaded = load_ema_weights(options_.resume, n, saved) ? 1 : 0;
    if (loaded) ctx_.upload(ema_->view(), saved.data(), n * 4);
    else log_info(options_.resume + " holds no model EMA; the EMA starts from its weights");
  }
  if (distributed_) world_.broadcast(&loaded, 1);
  if (loaded) {
    if (distributed_) broadcast_device(world_, ctx_, ema_->view());
    return;
  }
  vk::Recorder rec(ctx_);
  rec.copy(vit_->params_view(), ema_->view());
  rec.submit_and_wait();
}

// Rank 0 creates (or, resuming, reopens) the run folder; the other ranks learn its name, which
// they give when they stop.
void Trainer::open_run_folder() {
  if (root_) {
    const bool reopen = !options_.resume.empty() && options_.output.empty();
    run_.emplace(reopen ? RunDir::open(fs::path(options_.resume).parent_path().string())
                        : RunDir::create(cfg_, options_.output));
    position_.run_dir = run_->path();
    if (reopen) run_->rewind(resumed_.step, resumed_.epoch);
  }
  if (distributed_) broadcast_string(world_, position_.run_dir);
  result_.run_dir = position_.run_dir;
}

void Trainer::announce() const {
  if (quiet_) return;
  std::fprintf(stderr, "vkvit: training %s (%llu parameters) on %s: %zu train / %zu val images, %llu steps per epoch\n",
               cfg_.name.c_str(), static_cast<unsigned long long>(vit_->param_count()), ctx_.info().name.c_str(),
               splits_.train.size(), splits_.val.size(),
               static_cast<unsigned long long>(steps_per_epoch_));
  if (accum_ > 1)
    std::fprintf(stderr, "vkvit: %u micro-batches of %u images per optimizer step (train.accum_steps); %llu steps per epoch\n",
                 accum_, batch_, static_cast<unsigned long long>(steps_per_epoch_));
  if (groups_.active()) {
    const size_t frozen = size_t(std::count(groups_.frozen.begin(), groups_.frozen.end(), true));
    std::fprintf(stderr, "vkvit: %zu of %zu parameter tensors frozen (train.freeze); layer decay ", frozen,
                 groups_.frozen.size());
    if (cfg_.train.layer_decay > 0) std::fprintf(stderr, "%g (train.layer_decay)\n", cfg_.train.layer_decay);
    else std::fprintf(stderr, "off\n");
  }
  if (!distributed_) return;
  std::fprintf(stderr,
               "vkvit: %u ranks x batch %u = global batch %llu; gradients averaged in %zu bucket%s, %.1f MB "
               "per step; peak lr %.3g%s\n",
               ranks_, batch_, static_cast<unsigned long long>(uint64_t(batch_) * ranks_), sync_->buckets(),
               sync_->buckets() == 1 ? "" : sync_->overlap() ? "s overlapping the backward pass" : "s",
               double(sync_->bytes_per_step()) / 1e6, peak_lr_,
               cfg_.train.lr_scaling == "linear" ? " (train.lr x ranks, train.lr_scaling: linear)" : "");
}

TrainResult Trainer::run() {
  for (state_.epoch = resumed_.epoch; state_.epoch < static_cast<uint64_t>(cfg_.train.epochs); ++state_.epoch) {
    start_epoch();
    const bool stopped = accum_ > 1     ? train_epoch_accumulated()
                         : distributed_ ? train_epoch_distributed()
                                        : train_epoch_pipelined();
    if (stopped) {
      stop_at_max_steps();
      return result_;
    }
    end_epoch();
  }
  return result_;
}

// A resumed run's first epoch continues at the checkpoint's loader position with its running loss.
void Trainer::start_epoch() {
  const bool resumed_mid_epoch = state_.epoch == resumed_.epoch && resumed_.position > 0;
  train_loader_.start_epoch(state_.epoch, resumed_mid_epoch ? resumed_.position : 0);
  state_.epoch_loss.reset();
  state_.epoch_speed.reset();
  state_.epoch_step = 0;
  if (resumed_mid_epoch) {
    state_.epoch_loss.restore(resumed_.epoch_loss_sum, double(resumed_.epoch_images));
    state_.epoch_step = resumed_.epoch_images / (uint64_t(batch_) * ranks_ * accum_);
  }
  state_.epoch_speed.start();
  state_.lr = schedule_->at(state_.step);
}

// One process: each step is two submissions, the gradients (upload, forward, loss, backward) and
// the update (norm, clipping, AdamW, the EMA, the loss and norm copied out). While the GPU runs
// step k the host assembles batch k + 1 and, unless step k's outcome changes what it records (amp:
// the loss scale), submits its gradients too; only then does it wait for step k's loss. The update is
// recorded last because its lr and AdamW step count depend on whether step k was applied. The GPU
// thus always has the next step queued, and no batch is read ahead of --max-steps (the
// checkpoint's position stays exact). VKVIT_STEP_OVERLAP=0: the same submissions, each after the
// wait for the one before.
bool Trainer::train_epoch_pipelined() {
  const bool overlap = ctx_.tuning().step_overlap;
  int cur = 0;
  bool have = next_batch(cur);
  if (have) submit_gradients(cur, state_.step + 1, state_.nonfinite_in_a_row);
  while (have) {
    start_step();
    submit_update(cur);
    const int next = cur ^ 1;
    const bool last_before_stop = options_.max_steps > 0 && state_.step + 1 >= options_.max_steps;
    const bool read_ahead = overlap && !last_before_stop;
    bool have_next = false, next_submitted = false;
    if (read_ahead) {
      have_next = next_batch(next);
      if (have_next && !train_step_->amp()) {
        const PendingStep& c = pending_[cur];
        submit_gradients(next, c.poisoned ? c.step : c.step + 1, c.poisoned ? c.attempt + 1 : 0);
        next_submitted = true;
      }
    }
    recs_[cur]->wait();
    const float* out = io_.readback(cur);
    if (apply_step(out[0], out[1 + ops::kGradNormIndex], pending_[cur].batch.size)) return true;
    if (!read_ahead) have_next = next_batch(next);
    if (have_next && !next_submitted) submit_gradients(next, state_.step + 1, state_.nonfinite_in_a_row);
    cur = next;
    have = have_next;
  }
  return false;
}

// Data-parallel: each rank's gradients (weighted by its share of the global batch) go out to host
// memory, are summed over the ranks, and every rank applies the same update.
bool Trainer::train_epoch_distributed() {
  data::Batch& batch = pending_[0].batch;
  for (;;) {
    const bool have_batch = next_batch(0);
    // The global batch: the images of every rank's batch (a rank whose shard ran out early,
    // after failed files, takes part with none; the epoch ends when all have run out).
    uint64_t images = have_batch ? batch.size : 0;
    world_.allreduce_sum(&images, 1);
    if (images == 0) return false;
    start_step();
    const float share = float(have_batch ? batch.size : 0) / float(images);
    if (have_batch) {
      io_.record_upload(rec0_, 0, batch, vit_->patches_input(), &train_step_->labels());
      if (mixer_.enabled())
        train_step_->record_mix(rec0_, mixer_, io_.patches(0), batch.labels, batch.size, state_.step + 1);
      train_step_->record_drop_path(rec0_, cfg_.train.drop_path, cfg_.train.seed, uint64_t(world_.rank()), batch.size,
                                    state_.step + 1);
      if (vk::fault::nan_at(state_.step + 1, state_.nonfinite_in_a_row)) rec0_.fill(vit_->patches_input().slice(0, 1), NAN);
      sync_->begin_step();
      train_step_->record_gradients(rec0_, batch.size, static_cast<float>(cfg_.train.label_smoothing), share,
                                    [&](uint64_t first) { sync_->grads_ready(rec0_, first); });
      io_.record_readback(rec0_, 0, train_step_->loss(), 0);
      rec0_.submit();
      sync_->allreduce(&rec0_, [&] { return io_.readback(0)[0] * share; });
    } else {
      sync_->allreduce(nullptr, {});
    }
    sync_->record_copy_back(rec0_);
    submit_update_and_wait();
    if (apply_step(sync_->loss(), io_.readback(0)[1 + ops::kGradNormIndex], images)) return true;
  }
}

// The update half of a step whose gradients (summed across ranks) are recorded in rec0_: AdamW,
// the EMA and the norm's readback, submitted and waited for.
void Trainer::submit_update_and_wait() {
  train_step_->record_update(rec0_, hyper_, state_.step + 1, static_cast<float>(cfg_.train.clip_grad));
  record_ema(rec0_);
  io_.record_readback(rec0_, 0, train_step_->norm(), 1);
  if (vk::fault::device_lost_at(state_.step + 1)) rec0_.inject_wait_result(VK_ERROR_DEVICE_LOST);
  rec0_.submit_and_wait();
}

// Gradient accumulation (train.accum_steps = k > 1): an optimizer step is k micro-batches, each
// one's loss gradient weighted 1/k (and, data-parallel, by the rank's share of the global
// micro-batch), their gradients added up; norm, clipping, AdamW and the EMA run once, after the
// last, and data-parallel ranks sum the gradients once, during the last one's backward pass. The
// logged loss is the same weighted sum of the micro-batches' losses. An epoch's micro-batches that
// do not fill a step are not read. One submission at a time (no step is read ahead).
bool Trainer::train_epoch_accumulated() {
  for (;;) {
    if (state_.epoch_step >= steps_per_epoch_) return false;
    start_step();
    uint64_t images = 0;
    if (!record_micro_batches(images)) return false;
    float loss = 0;
    if (sync_) {
      // A rank without a batch in the whole step takes part with zeros.
      const bool recorded = std::any_of(micro_weights_.begin(), micro_weights_.end(), [](float w) { return w > 0; });
      if (recorded) rec0_.submit();
      sync_->allreduce(recorded ? &rec0_ : nullptr, [&] {
        float sum = 0;
        for (uint32_t j = 0; j < accum_; ++j) sum += io_.readback(0)[1 + ops::kGradNormFloats + j] * micro_weights_[j];
        return sum;
      });
      sync_->record_copy_back(rec0_);
    }
    submit_update_and_wait();
    if (sync_) {
      loss = sync_->loss();
    } else {
      for (uint32_t j = 0; j < accum_; ++j) loss += io_.readback(0)[1 + ops::kGradNormFloats + j] * micro_weights_[j];
    }
    if (apply_step(loss, io_.readback(0)[1 + ops::kGradNormIndex], images)) return true;
  }
}

// Records the step's k micro-batches into rec0_, each flushed as soon as it is recorded, so that
// the host assembles the next in the other staging slot while the GPU runs it; `images`: the
// global count. The last micro-batch is left recording. false: the loader ran out first, the
// partial step was waited for and is dropped.
bool Trainer::record_micro_batches(uint64_t& images) {
  micro_weights_.assign(accum_, 0.0f);
  int parts[StepIo::kSlots] = {-1, -1};
  bool started = false;  // some micro-batch of this rank's step has zeroed the gradients
  for (uint32_t j = 0; j < accum_; ++j) {
    const int slot = int(j % StepIo::kSlots);
    rec0_.wait_flushed(parts[slot]);  // micro-batch j - 2's upload has read the slot
    const bool have = next_batch(slot);
    uint64_t micro_images = have ? pending_[slot].batch.size : 0;
    if (distributed_) world_.allreduce_sum(&micro_images, 1);
    if (micro_images == 0) {
      if (j > 0) rec0_.submit_and_wait();
      return false;
    }
    images += micro_images;
    const bool last = j + 1 == accum_;
    if (last && sync_) sync_->begin_step();
    if (have) {
      micro_weights_[j] = float(pending_[slot].batch.size) / float(micro_images) / float(accum_);
      record_micro_batch(slot, j, micro_weights_[j], started);
      started = true;
    } else if (last && sync_ && started) {
      sync_->grads_ready(rec0_, 0);  // this rank's earlier micro-batches still count
    }
    if (!last) {
      parts[slot] = rec0_.flush();
      if (parts[slot] < 0 && started) {  // no part (profiling, or nothing new recorded): wait here instead
        rec0_.submit_and_wait();
        parts[0] = parts[1] = -1;  // a wait ends every part's id
      }
    }
  }
  return true;
}

// One micro-batch of the accumulated step from staging `slot`: upload, mix and drop path (keyed
// by the micro-batch's own number, so that no two share their draws), gradients added with weight
// `share`, its loss copied out. The NaN fault hook poisons a step's first micro-batch.
void Trainer::record_micro_batch(int slot, uint32_t j, float share, bool accumulate) {
  const data::Batch& batch = pending_[slot].batch;
  io_.record_upload(rec0_, slot, batch, vit_->patches_input(), &train_step_->labels());
  if (mixer_.enabled())
    train_step_->record_mix(rec0_, mixer_, io_.patches(slot), batch.labels, batch.size, state_.step * accum_ + j + 1);
  train_step_->record_drop_path(rec0_, cfg_.train.drop_path, cfg_.train.seed, uint64_t(world_.rank()), batch.size,
                                state_.step * accum_ + j + 1);
  if (j == 0 && vk::fault::nan_at(state_.step + 1, state_.nonfinite_in_a_row))
    rec0_.fill(vit_->patches_input().slice(0, 1), NAN);
  std::function<void(uint64_t)> hook;
  if (sync_ && j + 1 == accum_) hook = [&](uint64_t first) { sync_->grads_ready(rec0_, first); };
  train_step_->record_gradients(rec0_, batch.size, static_cast<float>(cfg_.train.label_smoothing), share, hook,
                                accumulate);
  io_.record_readback(rec0_, 0, train_step_->loss(), 1 + ops::kGradNormFloats + j);
}

void Trainer::start_step() {
  position_.step = state_.step + 1;
  position_.epoch = state_.epoch + 1;
  state_.lr = schedule_->at(state_.step);
  hyper_.lr = state_.lr;
}

bool Trainer::next_batch(int slot) { return train_loader_.next(pending_[slot].batch, io_.patches(slot)); }

// Records and flushes the gradients half of the step whose batch is in `slot`.
void Trainer::submit_gradients(int slot, uint64_t fault_step, uint64_t attempt) {
  PendingStep& p = pending_[slot];
  vk::Recorder& r = *recs_[slot];
  p.step = fault_step;
  p.attempt = attempt;
  io_.record_upload(r, slot, p.batch, vit_->patches_input(), &train_step_->labels());
  if (mixer_.enabled()) train_step_->record_mix(r, mixer_, io_.patches(slot), p.batch.labels, p.batch.size, fault_step);
  train_step_->record_drop_path(r, cfg_.train.drop_path, cfg_.train.seed, uint64_t(world_.rank()), p.batch.size,
                                fault_step);
  // VKVIT_FAULT_NAN_AT_STEP: a NaN in the batch, written by the GPU inside this very step.
  p.poisoned = vk::fault::nan_at(fault_step, attempt);
  if (p.poisoned) r.fill(vit_->patches_input().slice(0, 1), NAN);
  train_step_->record_gradients(r, p.batch.size, static_cast<float>(cfg_.train.label_smoothing), 1.0f);
  r.flush();
}

// Records and submits the update half of the step in `slot`, with the loss and norm copied out.
void Trainer::submit_update(int slot) {
  vk::Recorder& r = *recs_[slot];
  train_step_->record_update(r, hyper_, state_.step + 1, static_cast<float>(cfg_.train.clip_grad));
  record_ema(r);
  io_.record_readback(r, slot, train_step_->loss(), 0);
  io_.record_readback(r, slot, train_step_->norm(), 1);
  if (vk::fault::device_lost_at(state_.step + 1)) r.inject_wait_result(VK_ERROR_DEVICE_LOST);
  r.submit();
}

// The EMA update after the step's AdamW, with the decay of the update that would make it
// state_.step + 1 applied updates. It reads the same clip coefficient AdamW does, so the GPU skips
// both together (an amp overflow, non-finite gradients), and a skipped step leaves the step count
// where it was for the next decay.
void Trainer::record_ema(vk::Recorder& r) {
  if (!ema_) return;
  const double decay = ops::ema_decay(cfg_.train.model_ema_decay, cfg_.train.model_ema_warmup, state_.step + 1);
  ops::ema_update(r, ema_->view(), vit_->params_view(), train_step_->norm(), vit_->layout().total_floats(), decay);
}

// Whether the GPU skipped this step's update: an fp16 overflow under amp, or a non-finite loss or
// norm (more than train.max_nonfinite_steps of those in a row end the run).
bool Trainer::step_rejected(float loss, float norm) {
  const bool finite = std::isfinite(loss) && std::isfinite(norm);
  // amp (GradScaler's rule): an fp16 overflow in the gradients of a finite loss skips the step and
  // halves the loss scale, without counting as divergence while the scale is >= 1.
  LossScaler& scaler = train_step_->scaler();
  if (train_step_->amp() && !scaler.update(finite) && std::isfinite(loss) && scaler.scale() >= 1.0f) {
    log_info("step " + std::to_string(state_.step + 1) + ": fp16 gradient overflow; the update was skipped, loss scale now " +
             std::to_string(scaler.scale()));
    return true;
  }
  if (finite) {
    state_.nonfinite_in_a_row = 0;
    return false;
  }
  ++state_.nonfinite_in_a_row;
  const uint64_t limit = static_cast<uint64_t>(cfg_.train.max_nonfinite_steps);
  if (root_)
    log_warn("step " + std::to_string(state_.step + 1) + ": non-finite loss or gradient norm; the update was skipped (" +
             std::to_string(state_.nonfinite_in_a_row) + " in a row, the run stops after " + std::to_string(limit) + ")");
  // Every rank sees the same summed loss and norm, so all reach this at the same step; rank 0 alone
  // reports it, and the others wait in their next collective until its abort ends them.
  if (state_.nonfinite_in_a_row > limit && root_)
    throw TrainingDivergedError("training diverged: more than " + std::to_string(limit) +
                                " steps in a row had a non-finite loss or gradient norm (the last at step " +
                                std::to_string(state_.step + 1) + "); lower train.lr or set train.clip_grad; " +
                                last_good_checkpoint(position_.run_dir, options_.resume));
  return true;
}

// What the host does with a step's loss and gradient norm once the GPU has run it: skip or count
// it, log it. The step counter only advances for applied updates.
bool Trainer::apply_step(float loss, float norm, uint64_t images) {
  if (step_rejected(loss, norm)) return false;
  ++state_.step;
  ++state_.epoch_step;
  state_.epoch_loss.add(loss, double(images));
  state_.epoch_speed.add_images(images);
  if (run_) run_->append_step({state_.step, state_.epoch + 1, loss, state_.lr, norm});
  if (options_.max_steps > 0 && state_.step >= options_.max_steps) return true;
  display_->step(state_.epoch + 1, state_.epoch_step, state_.step, state_.epoch_loss.mean(), state_.lr,
                 state_.epoch_speed.images_per_s(), state_.epoch_speed.seconds());
  return false;
}

// --max-steps: last.safetensors mid-epoch, so that --resume continues with the very next batch.
void Trainer::stop_at_max_steps() {
  state_.epoch_speed.stop();
  result_.train_images_per_s = state_.epoch_speed.images_per_s();
  CheckpointMeta meta = checkpoint_meta();
  meta.epoch = state_.epoch;  // epochs completed: this one is not
  // The ranks' shards interleave: the run stands where the furthest-behind shard does.
  uint64_t position = train_loader_.position();
  world_.allreduce_min(&position, 1);
  meta.position = position;
  meta.epoch_loss_sum = state_.epoch_loss.sum();
  meta.epoch_images = static_cast<uint64_t>(state_.epoch_loss.weight());
  if (run_) save_last(meta);
  display_->clear();
  if (!quiet_)
    std::fprintf(stderr, "vkvit: stopped after step %llu (--max-steps) in epoch %llu; continue with --resume %s\n",
                 static_cast<unsigned long long>(state_.step), static_cast<unsigned long long>(state_.epoch + 1),
                 run_->file("last.safetensors").c_str());
  result_.stopped_early = true;
}

// The epoch's summary row (evaluated when due), its line on stderr, last.safetensors and, for a
// new best top-1, best.safetensors.
void Trainer::end_epoch() {
  state_.epoch_speed.stop();
  result_.train_images_per_s = state_.epoch_speed.images_per_s();
  SummaryRow row;
  row.epoch = state_.epoch + 1;
  row.train_loss = state_.epoch_loss.mean();
  row.lr = state_.lr;
  row.img_per_s = state_.epoch_speed.images_per_s();
  uint64_t skipped = train_loader_.skipped_this_epoch();
  world_.allreduce_sum(&skipped, 1);
  row.skipped_files = skipped;
  row = evaluate_epoch(row);
  if (run_) {
    run_->append_summary(row);
    update_curves(*run_);  // runs/<run>/curves.png from every summary.csv row (train/plots.h)
  }
  print_epoch(row);
  // The best val top-1 chooses best.safetensors: the EMA's with train.model_ema.
  const double top1 = ema_ ? row.ema_val_top1 : row.val_top1;
  const bool best = std::isfinite(top1) && top1 > result_.best_top1;
  if (best) result_.best_top1 = top1;
  const CheckpointMeta meta = checkpoint_meta();
  if (run_) {
    save_last(meta);
    if (best) save_best(row, meta);
  }
}

// best.safetensors after a new best val top-1: the model's weights, or with train.model_ema the
// EMA's, which then chose it (timm keeps its EMA as the best checkpoint), said in a line.
void Trainer::save_best(const SummaryRow& row, CheckpointMeta meta) {
  if (!ema_) {
    save_checkpoint(run_->file("best.safetensors"), *vit_, meta);
    return;
  }
  const uint64_t n = vit_->layout().total_floats();
  std::vector<float> ema(n);
  ctx_.download(ema_->view(), ema.data(), n * 4);
  meta.weights = "ema";
  save_checkpoint_weights(run_->file("best.safetensors"), *vit_, ema, meta);
  if (!quiet_)
    std::fprintf(stderr, "vkvit: best.safetensors now holds the model EMA's weights (EMA val top1 %.2f%%, epoch %d)\n",
                 row.ema_val_top1, row.epoch);
}

// Evaluates after every train.eval_every epochs and after the last one; the row's val fields stay
// NaN otherwise. On a terminal the evaluation gets its own bar (rank 0's shard) in place of the
// finished epoch's; plain-line and quiet runs show nothing until the summary.
SummaryRow Trainer::evaluate_epoch(SummaryRow row) {
  row.val_loss = row.val_top1 = row.val_top5 = NAN;
  const bool last_epoch = state_.epoch + 1 == static_cast<uint64_t>(cfg_.train.epochs);
  const bool due = cfg_.train.eval_every > 0 && (state_.epoch + 1) % cfg_.train.eval_every == 0;
  row.has_ema = ema_ != nullptr;
  row.ema_val_loss = row.ema_val_top1 = row.ema_val_top5 = NAN;
  if (!val_loader_ || !(last_epoch || due)) return row;
  display_->clear();
  result_.last_eval = evaluate_with_bar("eval");
  row.val_loss = result_.last_eval.loss;
  row.val_top1 = result_.last_eval.top1;
  row.val_top5 = result_.last_eval.top5;
  row.skipped_files += result_.last_eval.skipped;  // the EMA's pass reads the same files
  if (ema_) {
    result_.last_ema_eval = evaluate_ema();
    row.ema_val_loss = result_.last_ema_eval.loss;
    row.ema_val_top1 = result_.last_ema_eval.top1;
    row.ema_val_top5 = result_.last_ema_eval.top5;
  }
  return row;
}

EvalResult Trainer::evaluate_with_bar(const char* label) {
  ImageProgressBar bar(progress_mode(quiet_), label);
  val_loader_->set_progress_callback([&bar](uint64_t done, uint64_t total) { bar.update(done, total); });
  EvalResult r = evaluate(ctx_, *vit_, *val_loader_, &world_);
  val_loader_->set_progress_callback({});
  bar.clear();
  return r;
}

// The EMA weights take the model's place for one evaluation. The model's own wait in the gradient
// buffer meanwhile: between steps it holds nothing (every step zeroes it first, and no step is in
// flight at an epoch's end), so the EMA is evaluated without a second model or more memory.
EvalResult Trainer::evaluate_ema() {
  const vk::View params = vit_->params_view(), parked = vit_->grads_view();
  vk::Recorder rec(ctx_);
  rec.copy(params, parked);
  rec.copy(ema_->view(), params);
  rec.submit_and_wait();
  EvalResult r = evaluate_with_bar("eval ema");
  rec.copy(parked, params);
  rec.submit_and_wait();
  return r;
}

void Trainer::print_epoch(const SummaryRow& row) const {
  if (quiet_) return;
  display_->clear();  // the summary takes the bar's place
  std::fprintf(stderr, "epoch %llu/%d: train loss %.4f, %.0f img/s, %llu files skipped",
               static_cast<unsigned long long>(row.epoch), cfg_.train.epochs, row.train_loss, row.img_per_s,
               static_cast<unsigned long long>(row.skipped_files));
  if (std::isfinite(row.val_top1)) std::fprintf(stderr, "; val %s", format_eval(result_.last_eval).c_str());
  if (std::isfinite(row.ema_val_top1)) std::fprintf(stderr, "; EMA val %s", format_eval(result_.last_ema_eval).c_str());
  std::fprintf(stderr, "\n");
}

// The checkpoint of the run as it stands at an epoch's end (the caller adjusts a mid-epoch one).
CheckpointMeta Trainer::checkpoint_meta() const {
  CheckpointMeta meta;
  meta.config = cfg_;
  meta.classes = splits_.classes;
  meta.epoch = state_.epoch + 1;
  meta.step = state_.step;
  meta.best_top1 = result_.best_top1;
  return meta;
}

// last.safetensors with the optimizer state inside (one atomic file).
void Trainer::save_last(const CheckpointMeta& meta) {
  const uint64_t n = vit_->layout().total_floats();
  std::vector<float> m(n), v(n);
  ctx_.download(train_step_->m(), m.data(), n * 4);
  ctx_.download(train_step_->v(), v.data(), n * 4);
  std::vector<float> ema;
  if (ema_) {
    ema.resize(n);
    ctx_.download(ema_->view(), ema.data(), n * 4);
  }
  save_checkpoint(run_->file("last.safetensors"), *vit_, train_step_->amp() ? train_step_->scaler().saved_in(meta) : meta,
                  &m, &v, ema_ ? &ema : nullptr);
}

}  // namespace

TrainResult train(vk::Context& ctx, RunConfig cfg, const TrainOptions& options) {
  RunPosition position;
  if (!cfg.train.pretrained.empty()) take_class_count_from_folder(cfg, 0);  // the folder's classes, not W's
  try {
    TrainResult r = Trainer(ctx, cfg, options, position).run();
    // The plan's promise, checked where it can be (VKVIT_LOG=info; the guards test reads it). The
    // plan is a counting pass over a shell model: only built when the line is printed.
    if (log_level() >= LogLevel::info)
      log_info("device memory: peak " + std::to_string(ctx.peak_allocated_bytes()) + " bytes, memory plan " +
               std::to_string(plan_memory(ctx, to_vit_config(cfg.model), uint32_t(cfg.train.batch_size), cfg.train).total) +
               " bytes");
    return r;
  } catch (const OutOfMemoryError& e) {
    // Everything the run allocated is freed by now: the advice sees the device as the run found it.
    throw OutOfMemoryError(e.detail(), batch_advice(ctx, to_vit_config(cfg.model), uint32_t(cfg.train.batch_size), cfg.train, cfg.name));
  } catch (const DeviceLostError&) {
    // Nothing on the device can be trusted, and nothing more is read from it: the run ends here,
    // with what is on disk.
    const std::string where = position.step ? " during step " + std::to_string(position.step) + " (epoch " +
                                                  std::to_string(position.epoch) + ")"
                                            : "";
    throw DeviceLostError("the GPU was lost (VK_ERROR_DEVICE_LOST)" + where + "; " +
                          last_good_checkpoint(position.run_dir, options.resume) +
                          " once the driver has recovered (see the system log)");
  }
}

}  // namespace vkvit::train
