#include "ops/cross_entropy.h"

#include "ops/launch.h"
#include "vk/error.h"

namespace vkvit::ops {

namespace {
// One workgroup per row; a power of two for the shared-memory tree reduction. 64 lanes cover the
// usual K (10..1000) in a few strided reads each without leaving most lanes idle for small K.
constexpr uint32_t kRowGroup = 64;
// The mean over the batch: one workgroup, a power of two.
constexpr uint32_t kMeanGroup = 256;

struct RowPush {
  uint32_t rows;  // rows in this chunk
  uint32_t K;
  float eps;
};
static_assert(sizeof(RowPush) == 12);

struct MeanPush {
  uint32_t n;
};
static_assert(sizeof(MeanPush) == 4);

struct BackwardPush {
  uint32_t rows;  // rows in this chunk
  uint32_t K;
  float eps;
  float inv_batch;  // 1 / B of the whole batch, not of the chunk
};
static_assert(sizeof(BackwardPush) == 16);

void check_sizes(const char* what, uint32_t K, float eps) {
  if (K == 0) throw Error(std::string("internal: ") + what + " with K = 0 classes");
  if (!(eps >= 0.0f && eps <= 1.0f))
    throw Error(std::string(what) + ": label smoothing " + std::to_string(eps) + " is outside [0, 1]");
}
}  // namespace

void validate_labels(const uint32_t* labels, uint64_t B, uint32_t K) {
  for (uint64_t b = 0; b < B; ++b)
    if (labels[b] >= K)
      throw Error("label " + std::to_string(labels[b]) + " of batch row " + std::to_string(b) + " is not a class in [0, " +
                  std::to_string(K) + "); check --num-classes against the dataset's classes");
}

void cross_entropy_forward(vk::Recorder& rec, const vk::View& losses, const vk::View& loss, const vk::View& correct,
                           const vk::View& lse, const vk::View& logits, const vk::View& labels, uint32_t B, uint32_t K,
                           float eps) {
  check_sizes("cross_entropy_forward", K, eps);
  if (B == 0) return;
  vk::PipelineCache& pc = rec.context().pipelines();
  const vk::Kernel& rows_k = pc.get("cross_entropy", 5, sizeof(RowPush), {kRowGroup});
  // Whole rows per chunk, so that the (B, K) logits binding stays within maxStorageBufferRange.
  for_each_chunk(rec.context(), B, uint64_t(K) * 4, [&](uint64_t first, uint64_t rows) {
    RowPush push{static_cast<uint32_t>(rows), K, eps};
    rec.dispatch(rows_k,
                 {losses.slice(first, rows), correct.slice(first, rows), lse.slice(first, rows),
                  logits.slice(first * K, rows * K), labels.slice(first, rows)},
                 push, rec.groups_1d(rows), "cross_entropy");
  });
  const vk::Kernel& mean_k = pc.get("cross_entropy_mean", 2, sizeof(MeanPush), {kMeanGroup});
  rec.dispatch(mean_k, {loss.slice(0, 1), losses.slice(0, B)}, MeanPush{B}, vk::Groups{1, 1, 1},
               "cross_entropy_mean");
}

void cross_entropy_backward(vk::Recorder& rec, const vk::View& dlogits, const vk::View& lse, const vk::View& logits,
                            const vk::View& labels, const vk::View& dloss, uint32_t B, uint32_t K, float eps) {
  check_sizes("cross_entropy_backward", K, eps);
  if (B == 0) return;
  const vk::Kernel& k = rec.context().pipelines().get("cross_entropy_backward", 5, sizeof(BackwardPush),
                                                      {kElementwiseGroup});
  for_each_chunk(rec.context(), B, uint64_t(K) * 4, [&](uint64_t first, uint64_t rows) {
    BackwardPush push{static_cast<uint32_t>(rows), K, eps, 1.0f / float(B)};
    rec.dispatch(k,
                 {dlogits.slice(first * K, rows * K), lse.slice(first, rows), logits.slice(first * K, rows * K),
                  labels.slice(first, rows), dloss.slice(0, 1)},
                 push, rec.groups_1d(div_up(rows * K, kElementwiseGroup)), "cross_entropy_backward");
  });
}

}  // namespace vkvit::ops
