// The memory plan of a training run; see memory_plan.h.
#include "train/memory_plan.h"

#include <algorithm>

#include "base/error.h"
#include "dist/comm.h"
#include "model/vit.h"
#include "model/vit_params.h"
#include "ops/grad_norm.h"
#include "vk/memory.h"

namespace vkvit::train {

namespace {

uint64_t device_heap_bytes(const vk::Context& ctx) {
  uint64_t heap = 0;
  for (const vk::MemoryHeapInfo& h : ctx.info().heaps)
    if (h.device_local) heap = std::max(heap, h.bytes);
  return heap;
}

bool plan_fits(const MemoryPlan& p, uint64_t available, uint64_t max_allocation) {
  return p.total <= available && p.largest <= max_allocation;
}

}  // namespace

MemoryPlan plan_memory(vk::Context& ctx, const model::VitConfig& vcfg, uint32_t b, const TrainConfig& train) {
  const bool amp = train.amp;
  MemoryPlan p;
  const model::ParamLayout layout = model::vit_param_layout(vcfg);
  const uint64_t n = layout.total_floats(), K = uint64_t(vcfg.num_classes);
  const uint64_t per_image = uint64_t(vcfg.num_patches()) * vcfg.patch_dim();
  const auto [act, act_largest] = model::Vit::activation_plan(ctx, vcfg, b, amp);
  const uint64_t chunk_limit = std::max<uint64_t>(ctx.info().max_memory_allocation_size, 1);
  p.activations = act + (act <= chunk_limit ? 0 : (act / chunk_limit + 1) * act_largest);
  p.parameters = n * 4;
  // The training loop's and the evaluation's staging, two slots each (trainer.cpp's StepIo), with
  // each slot rounded up to 256 bytes.
  const uint64_t upload = 2 * ((per_image + 1) * b * 4 + 256);
  p.staging = 2 * upload + 2 * ((1 + ops::kGradNormFloats) * 4 + 256) + 2 * (uint64_t(b) * K * 4 + 256);
  if (dist::Comm::world().distributed()) p.staging += (n + 1) * 4;  // GradientSync's host copy of the gradients
  // TrainStep's arena: per-image loss and mixup buffers and logit gradients, m and v, the norm scratch and
  // the decay table (at most two entries per tensor), with its alignment slack.
  const vk::View stand_in{VK_NULL_HANDLE, 0, n * 4};
  const uint64_t optimizer = (12 * uint64_t(b) + uint64_t(b) * K + 4 + ops::kGradNormFloats +
                              ops::grad_norm_scratch_floats(ctx, {stand_in}) + 2 * n + 2 * layout.params().size()) * 4 +
                             16 * 256;
  const uint64_t context_staging = std::max<uint64_t>(n * 4, 1 << 20);  // checkpoint and resume transfers
  const uint64_t buffers = 10 + p.activations / chunk_limit;
  const uint64_t fp16_params = amp ? n * 2 : 0;  // train.amp: the fp16 copy of the weights
  // train.model_ema: one more parameter-layout buffer; layer decay or freezing: AdamW's lr-scale
  // table (one float per 64 parameters, ops/adamw.h); drop path: one scale per block, branch and
  // image; accumulation: one loss per micro-batch in the readback.
  const bool groups = train.layer_decay > 0 || !train.freeze.empty();
  p.recipe = (train.model_ema ? n * 4 : 0) + (groups ? (n / 64 + 1) * 4 + 256 : 0) +
             (train.drop_path > 0 ? uint64_t(vcfg.depth) * 2 * b * 4 + 256 : 0) + uint64_t(train.accum_steps) * 4;
  p.largest = std::max({act_largest, upload, p.parameters, context_staging});
  p.total = p.activations + 2 * p.parameters + fp16_params + optimizer + p.staging + p.recipe + context_staging +
            buffers * (64 << 10);
  return p;
}

// Refuses a batch whose plan cannot fit before anything is allocated: the message names the
// largest buffer (the activations), its size and the device's limits; train() adds the batch
// that fits.
void check_memory_plan(vk::Context& ctx, const model::VitConfig& vcfg, uint32_t B, const TrainConfig& train,
                       const std::string& run_name) {
  const uint64_t heap = device_heap_bytes(ctx), max_alloc = ctx.info().max_memory_allocation_size;
  if (heap == 0) return;  // a device that reports no device-local heap: let allocation decide
  const uint64_t used = ctx.allocated_bytes();
  const MemoryPlan p = plan_memory(ctx, vcfg, B, train);
  if (plan_fits(p, heap > used ? heap - used : 0, max_alloc)) return;
  throw OutOfMemoryError("out of device memory: training " + run_name + " at batch " + std::to_string(B) + " needs about " + vk::format_bytes(p.total) +
                         " (activations " + vk::format_bytes(p.activations) + ", largest single allocation " +
                         vk::format_bytes(p.largest) + "; parameters, gradients, Adam m and v " +
                         "4 x " + vk::format_bytes(p.parameters) + "; batch staging " + vk::format_bytes(p.staging) +
                         ") but " + ctx.info().name + " has a " + vk::format_bytes(heap) + " memory heap" +
                         (used ? " (" + vk::format_bytes(used) + " of it in use)" : std::string()) + " and allows " +
                         vk::format_bytes(max_alloc) + " per allocation");
}

// The batch to suggest after an out-of-memory error at batch B: the largest whose plan fits in
// nine tenths of the heap (the rest is the driver's and other programs').
std::string batch_advice(vk::Context& ctx, const model::VitConfig& vcfg, uint32_t B, const TrainConfig& train,
                         const std::string& run_name) {
  const uint64_t heap = device_heap_bytes(ctx), max_alloc = ctx.info().max_memory_allocation_size;
  const uint64_t used = ctx.allocated_bytes();
  const uint64_t available = heap / 10 * 9 > used ? heap / 10 * 9 - used : 0;
  if (B > 1 && plan_fits(plan_memory(ctx, vcfg, B, train), available, max_alloc))
    return "the memory plan of batch " + std::to_string(B) + " fits this device, so other programs may hold its memory; "
           "free it or use a smaller batch, e.g. -b " + std::to_string(B / 2);
  uint32_t lo = 0, hi = B > 1 ? B - 1 : 0;  // invariant: lo fits (0 trivially), everything above hi does not
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    if (plan_fits(plan_memory(ctx, vcfg, mid, train), available, max_alloc)) lo = mid;
    else hi = mid - 1;
  }
  if (lo == 0)
    return "even a batch of 1 needs about " + vk::format_bytes(plan_memory(ctx, vcfg, 1, train).total) + " for " + run_name +
           ": use a smaller model (model.dim, model.depth, a larger model.patch_size) or a device with more memory";
  return run_name + " trains on this device with a batch of at most " + std::to_string(lo) + ": use -b " +
         std::to_string(lo) + " (train.batch_size)";
}

}  // namespace vkvit::train
