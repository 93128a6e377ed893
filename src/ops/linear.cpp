// nn.Linear on ops::matmul: the weight stays in PyTorch's (out, in) layout, so the forward reads it
// transposed (trans_b) and the weight gradient is dy^T x (trans_a), both accumulated with beta = 1.
#include "ops/linear.h"

#include "ops/bias_grad.h"
#include "ops/matmul.h"

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

}  // namespace vkvit::ops
