// How much device memory a training run takes, checked before anything is allocated: the
// model's own counting pass (Vit::activation_plan) plus every buffer the trainer adds. An
// out-of-memory error names the largest buffer, the device's limits and the largest batch that fits.
#pragma once
#include <cstdint>
#include <string>

#include "model/vit_config.h"
#include "train/config.h"
#include "vk/context.h"

namespace vkvit::train {

// Device memory a training run takes at batch `b`, from the model's memory plan and the buffers
// the trainer adds; an upper bound (each buffer is allowed some rounding), so a batch it accepts
// trains. Everything counts against the device-local heap, as on lavapipe's single heap.
struct MemoryPlan {
  uint64_t activations = 0;   // the activation arena (with chunking slack)
  uint64_t largest = 0;       // the largest single allocation or tensor
  uint64_t parameters = 0;    // one flat parameter-layout buffer (params, grads, Adam m and v)
  uint64_t staging = 0;       // batch upload and readback buffers (training and evaluation)
  uint64_t recipe = 0;        // what train's options add: the model EMA, AdamW's lr-scale table, drop path scales
  uint64_t total = 0;
};

// `train` gives batch-independent options that take memory (amp, model_ema, layer_decay, freeze,
// drop_path, accum_steps); its batch_size is not read.
MemoryPlan plan_memory(vk::Context& ctx, const model::VitConfig& vcfg, uint32_t b, const TrainConfig& train);

// Throws OutOfMemoryError when the plan of batch B cannot fit the device (a device that reports no
// device-local heap is left to the allocator).
void check_memory_plan(vk::Context& ctx, const model::VitConfig& vcfg, uint32_t B, const TrainConfig& train,
                       const std::string& run_name);

// The advice after an out-of-memory error at batch B: the largest batch whose plan fits in nine
// tenths of the heap, or what else to change.
std::string batch_advice(vk::Context& ctx, const model::VitConfig& vcfg, uint32_t B, const TrainConfig& train,
                         const std::string& run_name);

}  // namespace vkvit::train
