// The host side of a GPU step: mapped staging for the batch going in and the results coming out,
// two slots deep so that the host prepares step k + 1 while the GPU runs step k. Shared by the
// trainer and the inference loop (train/evaluate.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "data/loader.h"
#include "model/vit.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::train {

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


}  // namespace vkvit::train
