// Bias gradient of a linear layer: db += column sums of dy. Deterministic (fixed reduction order,
// no float atomics), so two runs of a training step give bit-identical gradients.
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// db[n] += sum_m dy[m, n]
void bias_grad(vk::Recorder& rec, const vk::View& db /* (N) */, const vk::View& dy /* (M, N) */, uint64_t M,
               uint32_t N);

namespace ref {
void bias_grad(double* db, const double* dy, uint64_t M, uint64_t N);
}  // namespace ref

}  // namespace vkvit::ops
