// Softmax cross-entropy with label smoothing, the classification loss of ViT training.
// Semantics of PyTorch's nn.CrossEntropyLoss(label_smoothing=eps, reduction='mean')
// (https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html): the target of row b
// is q = (1 - eps) * onehot(label_b) + eps / K, and
//   loss_b = -sum_k q_k log softmax(logits_b)_k = (1 - eps) (lse_b - x_{b,y}) + eps (lse_b - mean_k x_{b,k}),
//   loss   = mean_b loss_b,
// where lse_b = log sum_k exp(x_{b,k}). The forward also records whether argmax_k x_{b,k} equals the
// label (first index wins ties, as torch.argmax), so the trainer's accuracy needs no extra pass.
//
// Labels are uint32 class indices in a device buffer. The shaders clamp a label >= K to K - 1 so a
// bad label never reads out of bounds (its row is then never counted correct), but the loss of such
// a row is meaningless: callers check labels on the host with validate_labels() before upload (the
// data loader has them there anyway), which ends in one readable line.
//
// Mixup / CutMix (train/mixup.h) give each row two labels and a weight: the target is the soft
// q = lam * smooth(y) + (1 - lam) * smooth(y_b) of timm's mixup_target (smooth(y) = the q above),
// and loss_b = -sum_k q_k log softmax_k is exactly lam loss(y) + (1 - lam) loss(y_b), since the
// loss is linear in the target (timm's SoftTargetCrossEntropy on that target). `correct` still
// compares the argmax with the first label: a train accuracy of mixed images means little.
//
// dloss is a 1-float device buffer rather than a push constant so that the gradient scale can be
// produced on the GPU (a mixed-precision loss scale) without a host round trip; it is 1 normally.
#pragma once
#include <cstdint>

#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::ops {

// Throws vkvit::Error naming the first row whose label is not in [0, K).
void validate_labels(const uint32_t* labels /* (B) */, uint64_t B, uint32_t K);

// losses: loss_b; loss: mean_b loss_b, reduced in a fixed order (bitwise reproducible);
// correct: 1.0f where argmax == label else 0.0f; lse: log-sum-exp of each row, saved for backward.
void cross_entropy_forward(vk::Recorder& rec, const vk::View& losses /* (B) */, const vk::View& loss /* (1) */,
                           const vk::View& correct /* (B) */, const vk::View& lse /* (B) */,
                           const vk::View& logits /* (B, K) */, const vk::View& labels /* (B) uint32 */,
                           uint32_t B, uint32_t K, float eps);

// The training step's loss and its gradient in one pass over the logits: cross_entropy_forward's
// outputs (bit for bit) and dlogits += (softmax(logits) - q) * dloss[0] / B.
void cross_entropy_forward_backward(vk::Recorder& rec, const vk::View& losses /* (B) */, const vk::View& loss /* (1) */,
                                    const vk::View& correct /* (B) */, const vk::View& lse /* (B) */,
                                    const vk::View& dlogits /* (B, K) */, const vk::View& logits /* (B, K) */,
                                    const vk::View& labels /* (B) uint32 */, const vk::View& dloss /* (1) */,
                                    uint32_t B, uint32_t K, float eps);

// Mixup / CutMix: the second label and the weight of the first, per row.
struct MixedLabels {
  vk::View labels_b;  // (B) uint32
  vk::View lam;       // (B) float in [0, 1]
};
// cross_entropy_forward_backward with soft two-label targets (see above).
void cross_entropy_forward_backward(vk::Recorder& rec, const vk::View& losses /* (B) */, const vk::View& loss /* (1) */,
                                    const vk::View& correct /* (B) */, const vk::View& lse /* (B) */,
                                    const vk::View& dlogits /* (B, K) */, const vk::View& logits /* (B, K) */,
                                    const vk::View& labels /* (B) uint32 */, const MixedLabels& mixed,
                                    const vk::View& dloss /* (1) */, uint32_t B, uint32_t K, float eps);

namespace ref {
// Same semantics (labels >= K clamped like the shaders); returns the mean loss.
double cross_entropy_forward(double* losses /* (B) */, double* correct /* (B) */, const double* logits /* (B, K) */,
                             const uint32_t* labels /* (B) */, uint64_t B, uint32_t K, double eps);
// dlogits += (softmax - q) * dloss / B
void cross_entropy_backward(double* dlogits /* (B, K) */, const double* logits /* (B, K) */,
                            const uint32_t* labels /* (B) */, double dloss, uint64_t B, uint32_t K, double eps);
// Two-label soft targets, built as timm's mixup_target builds them (one-hot rows with on/off
// values, weighted) and applied term by term; returns the mean loss.
double cross_entropy_forward_mixed(double* losses /* (B) */, const double* logits /* (B, K) */,
                                   const uint32_t* labels /* (B) */, const uint32_t* labels_b /* (B) */,
                                   const double* lam /* (B) */, uint64_t B, uint32_t K, double eps);
// dlogits += (softmax - q) * dloss / B with the soft q.
void cross_entropy_backward_mixed(double* dlogits /* (B, K) */, const double* logits /* (B, K) */,
                                  const uint32_t* labels /* (B) */, const uint32_t* labels_b /* (B) */,
                                  const double* lam /* (B) */, double dloss, uint64_t B, uint32_t K, double eps);
}  // namespace ref

}  // namespace vkvit::ops
