#include "train/evaluate.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "base/error.h"
#include "train/metrics.h"
#include "train/step_io.h"

namespace vkvit::train {

namespace {

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

}  // namespace

std::string format_eval(const EvalResult& r) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "loss %.4f  top1 %.2f%%  top5 %.2f%%  (%llu images, %.0f img/s)", r.loss, r.top1,
                r.top5, static_cast<unsigned long long>(r.images), r.images_per_s);
  return buf;
}

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
  const bool overlap = ctx.tuning().step_overlap;
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

}  // namespace vkvit::train
