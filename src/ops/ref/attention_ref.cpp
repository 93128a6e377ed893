// Plain C++ reference for multi-head attention, in double precision, written as loops over
// (image, head, query, key) without matmul or softmax helpers so that it checks them independently.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/attention.h"

namespace vkvit::ops::ref {

namespace {
// Element (b, n, part, h, c) of qkv (B, N, 3D), part 0 = q, 1 = k, 2 = v.
inline uint64_t qkv_at(uint32_t N, uint32_t D, uint32_t d, uint64_t b, uint64_t n, uint32_t part, uint32_t h,
                       uint32_t c) {
  return (b * N + n) * 3 * D + uint64_t(part) * D + uint64_t(h) * d + c;
}
}  // namespace

void attention_forward(double* out, double* probs, const double* qkv, uint32_t B, uint32_t N, uint32_t D,
                       uint32_t H) {
  const uint32_t d = D / H;
  const double scale = 1.0 / std::sqrt(double(d));
  for (uint64_t b = 0; b < B; ++b)
    for (uint32_t h = 0; h < H; ++h)
      for (uint32_t i = 0; i < N; ++i) {
        double* p = probs + ((b * H + h) * N + i) * N;  // (N) row i of this head's P
        for (uint32_t j = 0; j < N; ++j) {
          double sc = 0;
          for (uint32_t c = 0; c < d; ++c) sc += qkv[qkv_at(N, D, d, b, i, 0, h, c)] * qkv[qkv_at(N, D, d, b, j, 1, h, c)];
          p[j] = scale * sc;
        }
        const double m = *std::max_element(p, p + N);
        double sum = 0;
        for (uint32_t j = 0; j < N; ++j) sum += (p[j] = std::exp(p[j] - m));
        for (uint32_t j = 0; j < N; ++j) p[j] /= sum;
        for (uint32_t c = 0; c < d; ++c) {
          double o = 0;
          for (uint32_t j = 0; j < N; ++j) o += p[j] * qkv[qkv_at(N, D, d, b, j, 2, h, c)];
          out[(b * N + i) * D + uint64_t(h) * d + c] = o;
        }
      }
}

void attention_backward(double* dqkv, const double* probs, const double* qkv, const double* dout, uint32_t B,
                        uint32_t N, uint32_t D, uint32_t H) {
  const uint32_t d = D / H;
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> ds(N);  // (N) one row of dP, then dS
  for (uint64_t b = 0; b < B; ++b)
    for (uint32_t h = 0; h < H; ++h)
      for (uint32_t i = 0; i < N; ++i) {
        const double* p = probs + ((b * H + h) * N + i) * N;
        const double* g = dout + (b * N + i) * D + uint64_t(h) * d;  // (d) dO row i of head h
        // dV[j] += P[i, j] dO[i];  dP[i, j] = dO[i] . V[j]
        for (uint32_t j = 0; j < N; ++j) {
          double dp = 0;
          for (uint32_t c = 0; c < d; ++c) {
            dqkv[qkv_at(N, D, d, b, j, 2, h, c)] += p[j] * g[c];
            dp += g[c] * qkv[qkv_at(N, D, d, b, j, 2, h, c)];
          }
          ds[j] = dp;
        }
        // dS = P * (dP - sum_j dP P)
        double dot = 0;
        for (uint32_t j = 0; j < N; ++j) dot += ds[j] * p[j];
        for (uint32_t j = 0; j < N; ++j) ds[j] = p[j] * (ds[j] - dot);
        // dQ[i] += scale sum_j dS[i, j] K[j];  dK[j] += scale dS[i, j] Q[i]
        for (uint32_t j = 0; j < N; ++j)
          for (uint32_t c = 0; c < d; ++c) {
            dqkv[qkv_at(N, D, d, b, i, 0, h, c)] += scale * ds[j] * qkv[qkv_at(N, D, d, b, j, 1, h, c)];
            dqkv[qkv_at(N, D, d, b, j, 1, h, c)] += scale * ds[j] * qkv[qkv_at(N, D, d, b, i, 0, h, c)];
          }
      }
}

void attention_lse(double* lse, const double* qkv, uint32_t B, uint32_t N, uint32_t D, uint32_t H) {
  const uint32_t d = D / H;
  const double scale = 1.0 / std::sqrt(double(d));
  std::vector<double> s(N);
  for (uint64_t b = 0; b < B; ++b)
    for (uint32_t h = 0; h < H; ++h)
      for (uint32_t i = 0; i < N; ++i) {
        for (uint32_t j = 0; j < N; ++j) {
          double sc = 0;
          for (uint32_t c = 0; c < d; ++c) sc += qkv[qkv_at(N, D, d, b, i, 0, h, c)] * qkv[qkv_at(N, D, d, b, j, 1, h, c)];
          s[j] = scale * sc;
        }
        const double m = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (double x : s) sum += std::exp(x - m);
        lse[(b * H + h) * N + i] = m + std::log(sum);
      }
}

}  // namespace vkvit::ops::ref
