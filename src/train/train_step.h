// The GPU side of one optimizer step, recorded into the caller's command buffer: zero the
// gradients, forward, cross-entropy with label smoothing, backward, gradient norm (with the clip
// coefficient), AdamW (which skips the update itself when the gradients are not finite). The
// loss, the gradient norm and Adam's state stay on the GPU; callers record copies of what they
// read. Used by the training loop and by the PyTorch parity tests, so both run the same step.
// With a mixed-precision model (Vit::amp()) the step also scales the loss gradient by the loss
// scaler's scale and unscales the gradient norm and the clip coefficient (train/loss_scaler.h);
// the caller feeds each step's outcome back with scaler().update(finite norm).
// With Mixup / CutMix (train/mixup.h) the caller records record_mix after the batch's upload and
// before the gradients: the batch is mixed and that step's loss is the soft-target one.
// With stochastic depth (train.drop_path) the caller records record_drop_path before the
// gradients: that step's forward and backward scale each block branch per image.
// Gradient accumulation (train.accum_steps): record_gradients once per micro-batch, the first
// zeroing the gradients and the others adding to them, each weighted 1/k; then record_update once.
// Parameter groups (train/param_groups.h): layer-wise lr scales and frozen tensors reach AdamW as
// its per-block lr-scale table; frozen tensors are left out of the gradient norm (torch's
// clip_grad_norm_ sees only parameters with a .grad) and their gradients are skipped where the
// model can (Vit::set_frozen).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "model/vit.h"
#include "ops/adamw.h"
#include "train/loss_scaler.h"
#include "train/mixup.h"
#include "train/param_groups.h"
#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::train {

// Stochastic depth as DeiT trains with it (timm's drop_path_rate; huggingface/pytorch-image-models,
// timm/models/vision_transformer.py and timm/layers/drop.py): block `layer` of `depth` drops each
// of its two branches with probability rate * layer / (depth - 1), linear over depth as
// torch.linspace(0, rate, depth) (0 for a one-block model).
double drop_path_prob(double rate, int layer, int depth);
// One step's scales for model::Vit::set_drop_path, (depth, 2, batch): for each block, branch and
// image, 1 / keep with probability keep = 1 - drop_path_prob, else 0 (1 where keep is 1, with no
// draw). The generator is keyed by (seed, step, rank), as Mixup's: a resumed run repeats the
// draws, and each data-parallel rank draws its own images' masks.
std::vector<float> draw_drop_path(double rate, int depth, uint32_t batch, uint64_t seed, uint64_t step,
                                  uint64_t rank);

class TrainStep {
 public:
  // groups: null or inactive (no scale but 1) for the plain step.
  TrainStep(vk::Context& ctx, model::Vit& vit, uint32_t max_batch, const ParamGroups* groups = nullptr);

  // One step on the batch already in vit.patches_input() and labels(). `t` is the 1-based count
  // of applied updates (AdamW's bias correction); clip_grad 0 = no clipping.
  void record(vk::Recorder& rec, uint32_t batch, const ops::AdamWHyper& hyper, uint64_t t, float label_smoothing,
              float clip_grad);
  // The same step in two halves, for data-parallel runs that average the gradients in between:
  // the gradients of `grad_weight` times the batch's mean loss (a rank's batch / the global batch,
  // so that the ranks' sums are the global mean's gradients), then norm, clipping and AdamW.
  // `grads_ready` is handed to Vit::backward (data-parallel runs send finished buckets early).
  // `accumulate`: add to the gradients already there (a micro-batch after an optimizer step's first).
  void record_gradients(vk::Recorder& rec, uint32_t batch, float label_smoothing, float grad_weight,
                        const std::function<void(uint64_t first)>& grads_ready = {}, bool accumulate = false);
  void record_update(vk::Recorder& rec, const ops::AdamWHyper& hyper, uint64_t t, float clip_grad);
  // Mixes the batch whose upload to vit.patches_input() is recorded, with `mixer`'s draws for
  // `step`: on the GPU (ops::mix_batch) where ops::mix_batch_on_gpu says so, else in `staged` (the
  // upload's mapped source, read by the copy at submission) on the host. Uploads the draws and
  // targets within the command buffer; the next record_gradients / record uses the two-label loss.
  // Whether record_mix mixes a batch of `batch` images on the GPU (true) or on the host.
  static bool mixes_on_gpu(const vk::Context& ctx, const BatchMixer& mixer, uint32_t batch);
  void record_mix(vk::Recorder& rec, const BatchMixer& mixer, float* staged, const std::vector<uint32_t>& labels,
                  uint32_t batch, uint64_t step);

  // Stochastic depth for the next record_gradients / record: draws `step`'s scales (draw_drop_path)
  // and records their upload (Vit::set_drop_path). rate 0: records nothing, so the step is the
  // one without drop path, command for command.
  void record_drop_path(vk::Recorder& rec, double rate, uint64_t seed, uint64_t rank, uint32_t batch, uint64_t step);
  // Floats [first, first + count) of the flat parameter layout.
  struct Run {
    uint64_t first = 0, count = 0;
  };

  const vk::View& labels() const { return labels_; }  // (max_batch) uint32 class indices
  const vk::View& loss() const { return loss_; }      // (1) mean loss of the recorded step
  const vk::View& norm() const { return norm_; }      // (ops::kGradNormFloats) [norm, clip coefficient]
  const vk::View& m() const { return m_; }            // Adam's first moment, the parameter layout
  const vk::View& v() const { return v_; }            // second moment
  bool amp() const { return vit_.amp(); }
  LossScaler& scaler() { return scaler_; }            // used when amp()

 private:
  model::Vit& vit_;
  LossScaler scaler_;
  float dloss_value_ = 1.0f;  // what dloss_ holds: the loss scale (amp) times the gradient weight
  bool next_mixed_ = false;   // record_mix ran since the last record_gradients
  std::unique_ptr<vk::Arena> arena_;
  std::vector<Run> runs_;                  // what trains: AdamW's ranges (one: everything)
  std::vector<vk::View> norm_grads_;       // the trainable tensors' gradients, in contiguous runs
  std::unique_ptr<vk::Buffer> lr_scales_;  // parameter groups: AdamW's per-block lr scales
  void record_words(vk::Recorder& rec, const vk::View& dst, const void* words, uint64_t count, const char* label);
  vk::View labels_, labels_b_, lam_, mixes_, losses_, loss_, correct_, lse_, dlogits_, dloss_, norm_, norm_scratch_, m_, v_, decay_mask_;
};

}  // namespace vkvit::train
