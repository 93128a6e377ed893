// Subgroup size: not used. cross_entropy.comp and cross_entropy_mean.comp reduce through shared
// memory and barriers only, so they are correct at every subgroup size.
#include "ops/cross_entropy.h"

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops {

namespace {
// One workgroup per row; a power of two for the shared-memory tree reduction. 64 lanes cover the
// usual K (10..1000) in a few strided reads each; for K < 64 the next power of two, whose tree
// is the 64-lane tree without its levels over empty lanes (the same bits; on lavapipe each
// level is a barrier over every subgroup; BENCHMARKS.md "Cross-entropy, gradient norm, AdamW").
constexpr uint32_t kRowGroup = 64;
uint32_t row_group(uint32_t K) {
  uint32_t g = 1;
  while (g < K && g < kRowGroup) g *= 2;
  return g;
}
// The mean over the batch: one workgroup, a power of two.
constexpr uint32_t kMeanGroup = 256;

struct RowPush {
  uint32_t rows;  // rows in this chunk
  uint32_t K;
  float eps;
  float inv_batch;  // 1 / B of the whole batch (the backward in the same pass)
};
static_assert(sizeof(RowPush) == 16);

struct MeanPush {
  uint32_t n;
};
static_assert(sizeof(MeanPush) == 4);

// Mirrors shaders/cross_entropy.comp's layout(constant_id = 0) WORKGROUP_SIZE (common/index.glsl)
// layout(constant_id = 1) WITH_GRAD and layout(constant_id = 2) MIXED.
struct RowSpec {
  vk::SpecField<0, uint32_t> workgroup_size;
  vk::SpecField<1, bool> with_grad;
  vk::SpecField<2, bool> mixed;
  vk::SpecConstants to_spec() const { return vk::SpecConstants(workgroup_size, with_grad, mixed); }
};

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

namespace {
// The row pass (with the backward when dlogits is given, two-label targets when mixed has its
// views) and the mean of the losses.
void cross_entropy_rows(vk::Recorder& rec, const vk::View& losses, const vk::View& loss, const vk::View& correct,
                        const vk::View& lse, const vk::View& dlogits, const vk::View& logits, const vk::View& labels,
                        const MixedLabels& mixed, const vk::View& dloss, uint32_t B, uint32_t K, float eps) {
  vk::PipelineCache& pc = rec.context().pipelines();
  const bool with_grad = dlogits.buffer != VK_NULL_HANDLE;
  const bool is_mixed = mixed.labels_b.buffer != VK_NULL_HANDLE;
  const vk::Kernel& rows_k =
      pc.get(shaders::cross_entropy, 9, sizeof(RowPush), RowSpec{row_group(K), with_grad, is_mixed});
  // Whole rows per chunk, so that the (B, K) logits binding stays within maxStorageBufferRange.
  for_each_chunk(rec.context(), B, uint64_t(K) * 4, [&](uint64_t first, uint64_t rows) {
    RowPush push{static_cast<uint32_t>(rows), K, eps, 1.0f / float(B)};
    const vk::View logits_c = logits.slice(first * K, rows * K);
    // Bindings a variant never reads or writes (the backward's, the second labels') get the
    // logits as stand-ins.
    rec.dispatch(rows_k,
                 {losses.slice(first, rows), correct.slice(first, rows), lse.slice(first, rows), logits_c,
                  labels.slice(first, rows), with_grad ? dlogits.slice(first * K, rows * K) : logits_c,
                  with_grad ? dloss.slice(0, 1) : logits_c, is_mixed ? mixed.labels_b.slice(first, rows) : logits_c,
                  is_mixed ? mixed.lam.slice(first, rows) : logits_c},
                 push, rec.groups_1d(rows), "cross_entropy");
  });
  const vk::Kernel& mean_k = pc.get(shaders::cross_entropy_mean, 2, sizeof(MeanPush), vk::WorkgroupSpec{kMeanGroup});
  rec.dispatch(mean_k, {loss.slice(0, 1), losses.slice(0, B)}, MeanPush{B}, vk::Groups{1, 1, 1},
               "cross_entropy_mean");
}
}  // namespace

void cross_entropy_forward(vk::Recorder& rec, const vk::View& losses, const vk::View& loss, const vk::View& correct,
                           const vk::View& lse, const vk::View& logits, const vk::View& labels, uint32_t B, uint32_t K,
                           float eps) {
  check_sizes("cross_entropy_forward", K, eps);
  if (B == 0) return;
  cross_entropy_rows(rec, losses, loss, correct, lse, vk::View{}, logits, labels, MixedLabels{}, vk::View{}, B, K, eps);
}

void cross_entropy_forward_backward(vk::Recorder& rec, const vk::View& losses, const vk::View& loss,
                                    const vk::View& correct, const vk::View& lse, const vk::View& dlogits,
                                    const vk::View& logits, const vk::View& labels, const vk::View& dloss, uint32_t B,
                                    uint32_t K, float eps) {
  check_sizes("cross_entropy_forward_backward", K, eps);
  if (B == 0) return;
  cross_entropy_rows(rec, losses, loss, correct, lse, dlogits, logits, labels, MixedLabels{}, dloss, B, K, eps);
}

void cross_entropy_forward_backward(vk::Recorder& rec, const vk::View& losses, const vk::View& loss,
                                    const vk::View& correct, const vk::View& lse, const vk::View& dlogits,
                                    const vk::View& logits, const vk::View& labels, const MixedLabels& mixed,
                                    const vk::View& dloss, uint32_t B, uint32_t K, float eps) {
  check_sizes("cross_entropy_forward_backward", K, eps);
  if (mixed.labels_b.buffer == VK_NULL_HANDLE || mixed.lam.buffer == VK_NULL_HANDLE)
    throw Error("internal: mixed cross-entropy without its second labels or weights");
  if (B == 0) return;
  cross_entropy_rows(rec, losses, loss, correct, lse, dlogits, logits, labels, mixed, dloss, B, K, eps);
}

}  // namespace vkvit::ops
