// Inference over a loader: the logits of every batch (predict, explain), or the scores of a whole
// split (the trainer's evaluation and `vkvit eval`).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "dist/comm.h"
#include "model/vit.h"
#include "vk/context.h"

namespace vkvit::train {

struct EvalResult {
  uint64_t images = 0;
  uint64_t skipped = 0;
  double loss = 0;  // mean cross-entropy without label smoothing (as timm's validate)
  double top1 = 0, top5 = 0;  // percent
  std::vector<double> per_class;  // percent; NaN for a class without samples
  std::vector<uint64_t> confusion;  // (K, K) counts, row = true class, column = top-1 (AccuracyMeter::confusion)
  double images_per_s = 0;
};

// Runs the model over one epoch of `loader` and hands every batch with its logits (size, K) to `fn`.
void infer(vk::Context& ctx, model::Vit& vit, data::Loader& loader,
           const std::function<void(const data::Batch& batch, const float* logits)>& fn);

// Runs the model over every batch of `loader` (one epoch, eval order) and scores it. With a
// distributed `comm`, each rank's loader reads its shard and the scores are summed over the ranks,
// so every rank returns the whole split's result.
EvalResult evaluate(vk::Context& ctx, model::Vit& vit, data::Loader& loader, dist::Comm* comm = nullptr);

// "loss 0.4123  top1 85.20%  top5 99.10%  (10000 images, 9000 img/s)"
std::string format_eval(const EvalResult& r);

}  // namespace vkvit::train
