// nn.Linear on ops::matmul: the weight stays in PyTorch's (out, in) layout, so the forward reads it
// transposed (trans_b) and the weight gradient is dy^T x (trans_a), both accumulated with beta = 1.
#include "ops/linear.h"

#include "ops/bias_grad.h"
#include "ops/cast.h"
#include "ops/matmul.h"
#include "ops/matmul_f16.h"

namespace vkvit::ops {

namespace {
bool present(const vk::View& v) { return v.buffer != VK_NULL_HANDLE; }
}  // namespace

void linear_forward(vk::Recorder& rec, const vk::View& y, const vk::View& x, const vk::View& w, const vk::View& b,
                    uint32_t M, uint32_t N, uint32_t K) {
  MatmulShape s;
  s.M = M;
  s.N = N;
  s.K = K;
  s.trans_b = true;  // (M, K) x (N, K)^T
  matmul(rec, y, x, w, s, b);
}

void linear_backward(vk::Recorder& rec, const vk::View& dx, const vk::View& dw, const vk::View& db,
                     const vk::View& dy, const vk::View& x, const vk::View& w, uint32_t M, uint32_t N, uint32_t K) {
  if (present(dx)) {
    MatmulShape s;  // dx (M, K) += dy (M, N) x W (N, K)
    s.M = M;
    s.N = K;
    s.K = N;
    s.beta = 1.0f;
    matmul(rec, dx, dy, w, s);
  }
  MatmulShape s;  // dW (N, K) += dy^T (N, M) x x (M, K); dy is stored (M, N), hence trans_a
  s.M = N;
  s.N = K;
  s.K = M;
  s.trans_a = true;
  s.beta = 1.0f;
  matmul(rec, dw, dy, x, s);
  if (present(db)) bias_grad(rec, db, dy, M, N);
}

void linear_forward_f16(vk::Recorder& rec, const vk::View& y, const vk::View& x16, const vk::View& x,
                        const vk::View& w16, const vk::View& b, uint32_t M, uint32_t N, uint32_t K) {
  cast_f32_to_f16(rec, x16, x, uint64_t(M) * K);
  MatmulShape s;
  s.M = M;
  s.N = N;
  s.K = K;
  s.trans_b = true;
  matmul_f16(rec, y, x16, w16, s, b);
}

void linear_backward_f16(vk::Recorder& rec, const vk::View& dx, float dx_beta, const vk::View& dw, const vk::View& db,
                         const vk::View& dy, const vk::View& dy16, const vk::View& x16, const vk::View& w16,
                         uint32_t M, uint32_t N, uint32_t K) {
  cast_f32_to_f16(rec, dy16, dy, uint64_t(M) * N);
  if (present(dx)) {
    MatmulShape s;  // dx (M, K) = dx_beta dx + dy (M, N) x W (N, K)
    s.M = M;
    s.N = K;
    s.K = N;
    s.beta = dx_beta;
    matmul_f16(rec, dx, dy16, w16, s);
  }
  MatmulShape s;  // dW (N, K) += dy^T (N, M) x x (M, K)
  s.M = N;
  s.N = K;
  s.K = M;
  s.trans_a = true;
  s.beta = 1.0f;
  matmul_f16(rec, dw, dy16, x16, s);
  if (present(db)) bias_grad(rec, db, dy, M, N);
}

}  // namespace vkvit::ops
