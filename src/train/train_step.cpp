// One optimizer step on the GPU; see train_step.h.
#include "train/train_step.h"

#include <algorithm>
#include <string>

#include "base/error.h"
#include "data/rng.h"
#include "ops/cross_entropy.h"
#include "ops/grad_norm.h"
#include "ops/mix_batch.h"

namespace vkvit::train {

double drop_path_prob(double rate, int layer, int depth) {
  return depth > 1 ? rate * layer / (depth - 1) : 0.0;
}

std::vector<float> draw_drop_path(double rate, int depth, uint32_t batch, uint64_t seed, uint64_t step,
                                  uint64_t rank) {
  constexpr uint64_t kDropPathStream = 0x64726f7070617468ull;  // "droppath": apart from the other streams
  std::mt19937_64 rng(data::mix_seed(seed ^ kDropPathStream, step, rank));
  std::vector<float> scales(uint64_t(depth) * 2 * batch, 1.0f);
  for (int l = 0; l < depth; ++l) {
    const double keep = 1.0 - drop_path_prob(rate, l, depth);
    if (keep >= 1.0) continue;
    // timm divides the kept branch by keep; one multiplication by 1 / keep here (within an ulp).
    const float kept = static_cast<float>(1.0 / keep);
    for (uint64_t i = 0; i < 2 * uint64_t(batch); ++i)
      scales[uint64_t(l) * 2 * batch + i] = data::uniform01(rng) < keep ? kept : 0.0f;
  }
  return scales;
}

namespace {
// The floats [first, first + count) of the flat layout that train: the whole buffer, or with
// frozen tensors the runs of adjacent trainable ones (padding between them included).
std::vector<TrainStep::Run> trainable_runs(const model::Vit& vit, const ParamGroups* groups) {
  const bool any_frozen = groups && std::find(groups->frozen.begin(), groups->frozen.end(), true) != groups->frozen.end();
  if (!any_frozen) return {{0, vit.layout().total_floats()}};
  std::vector<TrainStep::Run> runs;
  bool open = false;
  for (size_t i = 0; i < vit.params().size(); ++i) {
    const model::ParamInfo& p = vit.params()[i];
    if (groups->frozen[i]) {
      open = false;
      continue;
    }
    if (!open) runs.push_back({p.offset, 0});
    runs.back().count = p.offset + p.count - runs.back().first;
    open = true;
  }
  return runs;
}

// The gradients the norm counts (torch's clip_grad_norm_ sees parameters with a .grad only).
std::vector<vk::View> run_views(const vk::View& flat, const std::vector<TrainStep::Run>& runs) {
  std::vector<vk::View> views;
  for (const TrainStep::Run& r : runs) views.push_back(flat.slice(r.first, r.count));
  return views;
}

// AdamW runs once per trainable run up to this many (a linear probe: one, the head; a frozen
// stem: one, the rest); beyond, once over everything, its lr-scale table keeping frozen tensors.
constexpr size_t kMaxUpdateRuns = 16;
}  // namespace

TrainStep::TrainStep(vk::Context& ctx, model::Vit& vit, uint32_t B, const ParamGroups* groups)
    : vit_(vit), runs_(trainable_runs(vit, groups)), norm_grads_(run_views(vit.grads_view(), runs_)) {
  // Test hook: VKVIT_LOSS_SCALE_GROWTH_INTERVAL=N grows the loss scale after N good steps instead
  // of 2000, so that tests of short runs see the growth rule (and its state across a resume).
  if (const auto interval = ctx.tuning().loss_scale_growth_interval) scaler_.set_growth_interval(*interval);
  const uint64_t K = vit.config().num_classes;
  const uint64_t n = vit.layout().total_floats();
  std::vector<ops::ParamRange> ranges;
  for (size_t i = 0; i < vit.params().size(); ++i) {
    const model::ParamInfo& p = vit.params()[i];
    ranges.push_back({p.offset, p.count, p.decay, groups ? groups->lr_scale.at(i) : 1.0});
  }
  const std::vector<uint32_t> mask = ops::adamw_decay_mask(ranges, n);
  const uint64_t scratch = ops::grad_norm_scratch_floats(ctx, norm_grads_);
  if (groups && groups->active()) {
    vit.set_frozen(groups->frozen);
    // The scale table, unless every trainable scale is 1 and AdamW runs over trainable runs only.
    bool other_than_one = runs_.size() > kMaxUpdateRuns;
    for (size_t i = 0; i < ranges.size(); ++i) other_than_one |= !groups->frozen[i] && ranges[i].lr_scale != 1.0;
    if (runs_.size() > kMaxUpdateRuns) runs_ = {{0, n}};
    if (other_than_one) {
      const std::vector<float> blocks = ops::adamw_lr_scale_blocks(ranges, n);
      lr_scales_ = std::make_unique<vk::Buffer>(ctx, blocks.size() * 4, vk::MemoryKind::device, "AdamW lr scales");
      ctx.upload(lr_scales_->view(), blocks.data(), blocks.size() * 4);
    }
  }

  const uint64_t pad = 256;  // per-view alignment slack
  const uint64_t floats = (6 + ops::kMixWords) * B + 1 + B * K + 1 + ops::kGradNormFloats + scratch + 2 * n + mask.size();
  arena_ = std::make_unique<vk::Arena>(ctx, "optimizer state", floats * 4 + 16 * pad);
  labels_ = arena_->alloc(B * 4, "labels");
  labels_b_ = arena_->alloc(B * 4, "mixup partner labels");
  lam_ = arena_->alloc_floats(B, "mixup weights");
  mixes_ = arena_->alloc(uint64_t(B) * ops::kMixWords * 4, "mixup draws");
  losses_ = arena_->alloc_floats(B, "per-image losses");
  loss_ = arena_->alloc_floats(1, "loss");
  correct_ = arena_->alloc_floats(B, "correct flags");
  lse_ = arena_->alloc_floats(B, "log-sum-exp");
  dlogits_ = arena_->alloc_floats(B * K, "logit gradients");
  dloss_ = arena_->alloc_floats(1, "loss gradient");
  norm_ = arena_->alloc_floats(ops::kGradNormFloats, "gradient norm");
  norm_scratch_ = arena_->alloc_floats(scratch, "gradient norm scratch");
  m_ = arena_->alloc_floats(n, "Adam m");
  v_ = arena_->alloc_floats(n, "Adam v");
  decay_mask_ = arena_->alloc(mask.size() * 4, "weight-decay mask");
  ctx.upload(decay_mask_, mask.data(), mask.size() * 4);
  const float one = 1.0f;
  ctx.upload(dloss_, &one, 4);
  vk::Recorder rec(ctx);
  rec.fill(m_, 0.0f);
  rec.fill(v_, 0.0f);
  rec.submit_and_wait();
}

void TrainStep::record(vk::Recorder& rec, uint32_t batch, const ops::AdamWHyper& hyper, uint64_t t,
                       float label_smoothing, float clip_grad) {
  record_gradients(rec, batch, label_smoothing, 1.0f);
  record_update(rec, hyper, t, clip_grad);
}

void TrainStep::record_gradients(vk::Recorder& rec, uint32_t batch, float label_smoothing, float grad_weight,
                                 const std::function<void(uint64_t first)>& grads_ready, bool accumulate) {
  const uint32_t K = static_cast<uint32_t>(vit_.config().num_classes);
  if (!accumulate) rec.fill(vit_.grads_view(), 0.0f);
  rec.fill(dlogits_, 0.0f);
  // amp: the loss gradient carries the loss scale, so every gradient after it is scaled too.
  const float dloss = (vit_.amp() ? scaler_.scale() : 1.0f) * grad_weight;
  if (dloss != dloss_value_) {
    rec.fill(dloss_, dloss);
    dloss_value_ = dloss;
  }
  vit_.forward(rec, batch);
  if (next_mixed_)
    ops::cross_entropy_forward_backward(rec, losses_, loss_, correct_, lse_, dlogits_, vit_.logits(), labels_,
                                        ops::MixedLabels{labels_b_, lam_}, dloss_, batch, K, label_smoothing);
  else
    ops::cross_entropy_forward_backward(rec, losses_, loss_, correct_, lse_, dlogits_, vit_.logits(), labels_, dloss_,
                                        batch, K, label_smoothing);
  next_mixed_ = false;
  vit_.backward(rec, batch, dlogits_, grads_ready);
}

// vkCmdUpdateBuffer: the words travel in the command buffer (no staging, no wait), at most
// 65536 bytes a command.
void TrainStep::record_words(vk::Recorder& rec, const vk::View& dst, const void* words, uint64_t count,
                             const char* label) {
  if (count * 4 > dst.size) throw Error(std::string("internal: too many ") + label + " for the step");
  for (uint64_t at = 0; at < count * 4; at += 65536) {
    const uint64_t bytes = std::min<uint64_t>(65536, count * 4 - at);
    const vk::View part = dst.bytes(at, bytes);
    rec.external({part}, label, [&](VkCommandBuffer cb) {
      vkCmdUpdateBuffer(cb, part.buffer, part.offset, bytes, static_cast<const char*>(words) + at);
    });
  }
}

namespace {
ops::MixBatchShape mix_shape(const BatchMixer& mixer, uint32_t batch) {
  const PatchGeometry& g = mixer.geometry();
  return ops::MixBatchShape{batch, uint32_t(g.image_size), uint32_t(g.patch_size), uint32_t(g.channels)};
}
}  // namespace

bool TrainStep::mixes_on_gpu(const vk::Context& ctx, const BatchMixer& mixer, uint32_t batch) {
  return ops::mix_batch_on_gpu(ctx, mix_shape(mixer, batch));
}

void TrainStep::record_mix(vk::Recorder& rec, const BatchMixer& mixer, float* staged,
                           const std::vector<uint32_t>& labels, uint32_t batch, uint64_t step) {
  const std::vector<SampleMix> mixes = mixer.draw(batch, step);
  const PatchGeometry& g = mixer.geometry();
  const ops::MixBatchShape shape = mix_shape(mixer, batch);
  if (ops::mix_batch_on_gpu(rec.context(), shape)) {
    const std::vector<uint32_t> words = encode_mixes(mixes);
    record_words(rec, mixes_, words.data(), words.size(), "mixup draws");
    ops::mix_batch(rec, vit_.patches_input(), mixes_, shape);
  } else {
    mix_patches(staged, batch, g, mixes);
  }
  const MixTargets targets = mix_targets(labels, batch, mixes);
  record_words(rec, labels_b_, targets.labels_b.data(), batch, "mixup labels");
  record_words(rec, lam_, targets.lam.data(), batch, "mixup weights");
  next_mixed_ = true;
}

void TrainStep::record_drop_path(vk::Recorder& rec, double rate, uint64_t seed, uint64_t rank, uint32_t batch,
                                 uint64_t step) {
  if (rate <= 0) return;
  vit_.set_drop_path(rec, draw_drop_path(rate, vit_.config().depth, batch, seed, step, rank), batch);
}

void TrainStep::record_update(vk::Recorder& rec, const ops::AdamWHyper& hyper, uint64_t t, float clip_grad) {
  if (vit_.amp()) {
    // The norm of the scaled gradients, then the true norm and a coefficient that unscales and clips.
    ops::grad_norm(rec, norm_, norm_scratch_, norm_grads_, 0.0f);
    record_unscale(rec, norm_, scaler_.scale(), clip_grad);
  } else {
    ops::grad_norm(rec, norm_, norm_scratch_, norm_grads_, clip_grad);
  }
  for (const Run& r : runs_)
    ops::adamw_step(rec, vit_.params_view(), m_, v_, vit_.grads_view(), norm_, decay_mask_, r.count, hyper, t,
                    lr_scales_ ? lr_scales_->view() : vk::View{}, r.first);
}

}  // namespace vkvit::train
