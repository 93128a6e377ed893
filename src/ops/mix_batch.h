// Mixup / CutMix of a patchified batch on the GPU, in place: one elementwise pass over the batch
// with each image's draw (train/mixup.h holds the semantics, the draws and the host reference
// mix_patches). Image i mixes with image B-1-i, from the originals.
#pragma once
#include <cstdint>

#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// Each image's draw as the shader reads it: kind (0 none, 1 mixup, 2 CutMix), lambda's float
// bits, then the CutMix box's y0, y1, x0, x1 (half-open, in image pixels).
constexpr uint32_t kMixWords = 6;

struct MixBatchShape {
  uint32_t batch = 0, image_size = 0, patch_size = 0, channels = 0;
  uint64_t per_image() const { return uint64_t(channels) * image_size * image_size; }
};

// Whether the pass can run: the whole batch in one storage binding (pairs are half a batch
// apart) and its index in 32 bits. Callers mix on the host otherwise.
bool mix_batch_fits(const vk::Context& ctx, const MixBatchShape& shape);

// Where the trainer mixes: with this pass when it fits and the kernel choice says so (GPUs:
// KernelChoice::mix_batch); on a CPU driver the mapped staging is ordinary memory and the host
// loop (train::mix_patches) is cheaper than the pass (BENCHMARKS.md, "Mixup/CutMix: where the
// batch is mixed"); on a discrete GPU the host would read uncached staging memory.
bool mix_batch_on_gpu(const vk::Context& ctx, const MixBatchShape& shape);

// images: (batch, per_image) floats, patchified; mixes: (batch, kMixWords) uint32.
void mix_batch(vk::Recorder& rec, const vk::View& images, const vk::View& mixes, const MixBatchShape& shape);

}  // namespace vkvit::ops
