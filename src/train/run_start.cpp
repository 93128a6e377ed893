#include "train/run_start.h"

#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"

namespace vkvit::train {

namespace fs = std::filesystem;

namespace {

std::vector<data::Sample> split_samples(const std::string& root, const std::vector<std::string>& expect_classes,
                                        std::vector<std::string>* classes_out) {
  data::ImageFolder folder = data::ImageFolder::scan(root);
  if (!expect_classes.empty() && folder.classes != expect_classes)
    throw Error(root + ": its class folders differ from the training classes (" + std::to_string(folder.classes.size()) +
                " vs " + std::to_string(expect_classes.size()) + "); use the same class folders in every split");
  if (classes_out) *classes_out = folder.classes;
  return folder.samples;
}

// Rank 0's reading of the checkpoint: weights and Adam's moments uploaded, the loss scale restored.
ResumePoint read_resume_point(vk::Context& ctx, const RunConfig& cfg, const RunSplits& splits, const std::string& path,
                              model::Vit& vit, TrainStep& train_step) {
  const CheckpointMeta meta = read_checkpoint_meta(path);
  if (meta.config.model != cfg.model)
    throw Error(path + ": its model differs from the config's model section (checkpoint vs config: " +
                meta.config.model.differences(cfg.model) + "); resume with the config it was trained with");
  if (meta.classes != splits.classes)
    throw Error(path + ": its classes differ from the folders in " +
                (fs::path(cfg.data.dir) / cfg.data.train_split).string());
  load_checkpoint_weights(path, vit);
  const uint64_t n = vit.layout().total_floats();
  std::vector<float> m, v;
  load_optimizer_state(path, n, m, v);
  if (train_step.amp()) train_step.scaler().restore_from(meta, path);
  ctx.upload(train_step.m(), m.data(), n * 4);
  ctx.upload(train_step.v(), v.data(), n * 4);
  return {meta.step,           meta.epoch,     meta.position, meta.epoch_images, train_step.scaler().good_steps(),
          meta.epoch_loss_sum, meta.best_top1, train_step.scaler().scale()};
}

}  // namespace

RunSplits scan_splits(const RunConfig& cfg, dist::Comm& world) {
  if (cfg.data.dir.empty()) throw Error("no dataset folder: set data.dir in " + cfg.source + " or pass --data-dir");
  RunSplits s;
  const std::string train_root = (fs::path(cfg.data.dir) / cfg.data.train_split).string();
  const std::string val_root = (fs::path(cfg.data.dir) / cfg.data.val_split).string();
  s.train = split_samples(train_root, {}, &s.classes);
  if (s.classes.size() != static_cast<size_t>(cfg.model.num_classes))
    throw Error(train_root + " has " + std::to_string(s.classes.size()) + " classes but model.num_classes is " +
                std::to_string(cfg.model.num_classes) + "; set model.num_classes=" + std::to_string(s.classes.size()));
  if (fs::exists(val_root)) s.val = split_samples(val_root, s.classes, nullptr);
  else if (world.is_root()) log_warn("no validation split at " + val_root + ": training without evaluation");
  check_ranks_agree(world, cfg, s.classes, s.train, s.val);
  return s;
}

data::LoaderConfig sharded(data::LoaderConfig lc, const dist::Comm& world) {
  lc.shard_index = static_cast<uint32_t>(world.rank());
  lc.shard_count = static_cast<uint32_t>(world.size());
  return lc;
}

ops::AdamWHyper adamw_hyper(const TrainConfig& train) {
  ops::AdamWHyper hyper;
  hyper.beta1 = train.betas[0];
  hyper.beta2 = train.betas[1];
  hyper.eps = train.eps;
  hyper.weight_decay = train.weight_decay;
  return hyper;
}

ResumePoint resume_run(vk::Context& ctx, const RunConfig& cfg, const RunSplits& splits, const std::string& path,
                       model::Vit& vit, TrainStep& train_step, dist::Comm& world) {
  ResumePoint at;
  if (world.is_root()) at = read_resume_point(ctx, cfg, splits, path, vit, train_step);
  if (!world.distributed()) return at;
  world.broadcast(&at, sizeof at);
  broadcast_device(world, ctx, vit.params_view());
  broadcast_device(world, ctx, train_step.m());
  broadcast_device(world, ctx, train_step.v());
  if (train_step.amp() && !world.is_root()) train_step.scaler().restore(at.loss_scale, at.loss_scale_good_steps, path);
  return at;
}

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

void broadcast_string(dist::Comm& world, std::string& s) {
  uint64_t length = s.size();
  world.broadcast(&length, sizeof length);
  s.resize(length);
  world.broadcast(s.data(), length);
}

}  // namespace vkvit::train
