// Plain C++ reference for softmax cross-entropy with label smoothing, in double precision
// (PyTorch nn.CrossEntropyLoss(label_smoothing=eps) semantics; see ops/cross_entropy.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/cross_entropy.h"

namespace vkvit::ops::ref {

namespace {
double row_lse(const double* x, uint32_t K) {
  double m = -INFINITY;
  for (uint32_t k = 0; k < K; ++k) m = std::max(m, x[k]);
  double s = 0;
  for (uint32_t k = 0; k < K; ++k) s += std::exp(x[k] - m);
  return m + std::log(s);
}
// Row b's soft target as timm's mixup_target: off = eps / K, on = 1 - eps + off, one-hot rows of
// both labels weighted by lam and 1 - lam.
std::vector<double> soft_target(uint32_t y, uint32_t y_b, double lam, uint32_t K, double eps) {
  const double off = eps / K, on = 1.0 - eps + off;
  std::vector<double> q(K);
  for (uint32_t k = 0; k < K; ++k) q[k] = lam * (k == y ? on : off) + (1.0 - lam) * (k == y_b ? on : off);
  return q;
}
}  // namespace

double cross_entropy_forward_mixed(double* losses, const double* logits, const uint32_t* labels,
                                   const uint32_t* labels_b, const double* lam, uint64_t B, uint32_t K, double eps) {
  double total = 0;
  for (uint64_t b = 0; b < B; ++b) {
    const double* x = logits + b * K;
    const std::vector<double> q = soft_target(std::min(labels[b], K - 1), std::min(labels_b[b], K - 1), lam[b], K, eps);
    const double lse = row_lse(x, K);
    double loss = 0;
    for (uint32_t k = 0; k < K; ++k) loss -= q[k] * (x[k] - lse);
    losses[b] = loss;
    total += loss;
  }
  return B ? total / B : 0.0;
}

void cross_entropy_backward_mixed(double* dlogits, const double* logits, const uint32_t* labels,
                                  const uint32_t* labels_b, const double* lam, double dloss, uint64_t B, uint32_t K,
                                  double eps) {
  for (uint64_t b = 0; b < B; ++b) {
    const double* x = logits + b * K;
    const std::vector<double> q = soft_target(std::min(labels[b], K - 1), std::min(labels_b[b], K - 1), lam[b], K, eps);
    const double lse = row_lse(x, K);
    for (uint32_t k = 0; k < K; ++k) dlogits[b * K + k] += (std::exp(x[k] - lse) - q[k]) * dloss / B;
  }
}

double cross_entropy_forward(double* losses, double* correct, const double* logits, const uint32_t* labels, uint64_t B,
                             uint32_t K, double eps) {
  double total = 0;
  for (uint64_t b = 0; b < B; ++b) {
    const double* x = logits + b * K;
    const uint32_t y = std::min(labels[b], K - 1);  // the shaders' clamp
    const double lse = row_lse(x, K);
    // -sum_k q_k log p_k with q = (1 - eps) onehot + eps / K, written out term by term.
    double loss = 0;
    for (uint32_t k = 0; k < K; ++k) {
      const double q = (k == y ? 1.0 - eps : 0.0) + eps / K;
      loss -= q * (x[k] - lse);
    }
    const uint32_t argmax = static_cast<uint32_t>(std::max_element(x, x + K) - x);  // first maximum
    losses[b] = loss;
    correct[b] = argmax == labels[b] ? 1.0 : 0.0;
    total += loss;
  }
  return B ? total / B : 0.0;
}

void cross_entropy_backward(double* dlogits, const double* logits, const uint32_t* labels, double dloss, uint64_t B,
                            uint32_t K, double eps) {
  for (uint64_t b = 0; b < B; ++b) {
    const double* x = logits + b * K;
    const uint32_t y = std::min(labels[b], K - 1);
    const double lse = row_lse(x, K);
    for (uint32_t k = 0; k < K; ++k) {
      const double q = (k == y ? 1.0 - eps : 0.0) + eps / K;
      dlogits[b * K + k] += (std::exp(x[k] - lse) - q) * dloss / B;
    }
  }
}

}  // namespace vkvit::ops::ref
