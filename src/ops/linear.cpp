// nn.Linear on ops::matmul: the weight stays in PyTorch's (out, in) layout, so the forward reads it
// transposed (trans_b) and the weight gradient is dy^T x (trans_a), both accumulated with beta = 1.
#include "ops/linear.h"

#include "ops/bias_grad.h"
#include "ops/cast.h"
#include "ops/gelu.h"
#include "ops/matmul.h"
#include "ops/matmul_f16.h"
#include "ops/residual.h"

namespace vkvit::ops {

namespace {
bool present(const vk::View& v) { return v.buffer != VK_NULL_HANDLE; }

// The three products of a linear layer, shared by the fp32 and fp16 paths.
MatmulShape forward_product(uint32_t M, uint32_t N, uint32_t K) {  // y (M, N) = x (M, K) x W (N, K)^T
  MatmulShape s;
  s.M = M;
  s.N = N;
  s.K = K;
  s.trans_b = true;
  return s;
}
MatmulShape input_grad_product(uint32_t M, uint32_t N, uint32_t K, float beta) {  // dx (M, K) = dy (M, N) x W (N, K)
  MatmulShape s;
  s.M = M;
  s.N = K;
  s.K = N;
  s.beta = beta;
  return s;
}
// dW (N, K) += dy^T (N, M) x x (M, K); dy is stored (M, N), hence trans_a.
MatmulShape weight_grad_product(uint32_t M, uint32_t N, uint32_t K) {
  MatmulShape s;
  s.M = N;
  s.N = K;
  s.K = M;
  s.trans_a = true;
  s.beta = 1.0f;
  return s;
}
}  // namespace

void linear_forward(vk::Recorder& rec, const vk::View& y, const vk::View& x, const vk::View& w, const vk::View& b,
                    uint32_t M, uint32_t N, uint32_t K) {
  matmul(rec, y, x, w, forward_product(M, N, K), b);
}

void linear_gelu_forward(vk::Recorder& rec, const vk::View& y, const vk::View& pre, const vk::View& x,
                         const vk::View& w, const vk::View& b, uint32_t M, uint32_t N, uint32_t K) {
  const bool keep_pre = pre.buffer != VK_NULL_HANDLE;
  if (!matmul_epilogue_supported(MatmulKernel::automatic, rec.context())) {
    const vk::View& z = keep_pre ? pre : y;  // without pre, the GELU runs in place
    matmul(rec, z, x, w, forward_product(M, N, K), b);
    gelu_forward(rec, y, z, uint64_t(M) * N);
    return;
  }
  MatmulShape s = forward_product(M, N, K);
  s.epilogue = keep_pre ? MatmulEpilogue::gelu : MatmulEpilogue::gelu_only;
  matmul(rec, y, x, w, s, b, MatmulKernel::automatic, pre);
}

void linear_residual_forward(vk::Recorder& rec, const vk::View& y, const vk::View& x, const vk::View& w,
                             const vk::View& b, const vk::View& residual, uint32_t M, uint32_t N, uint32_t K) {
  if (!matmul_epilogue_supported(MatmulKernel::automatic, rec.context())) {
    matmul(rec, y, x, w, forward_product(M, N, K), b);
    residual_forward(rec, y, y, residual, uint64_t(M) * N);
    return;
  }
  MatmulShape s = forward_product(M, N, K);
  s.epilogue = MatmulEpilogue::add;
  matmul(rec, y, x, w, s, b, MatmulKernel::automatic, residual);
}

void linear_gelu_backward(vk::Recorder& rec, const vk::View& dpre, const vk::View& dw, const vk::View& db,
                          const vk::View& dy, const vk::View& hidden, const vk::View& w, const vk::View& pre,
                          const vk::View& dhidden, uint32_t M, uint32_t N, uint32_t K) {
  if (matmul_epilogue_supported(MatmulKernel::automatic, rec.context())) {
    MatmulShape s = input_grad_product(M, N, K, 0.0f);
    s.epilogue = MatmulEpilogue::gelu_grad;
    matmul(rec, dpre, dy, w, s, vk::View{}, MatmulKernel::automatic, pre);
  } else {
    matmul(rec, dhidden, dy, w, input_grad_product(M, N, K, 0.0f));
    rec.fill(dpre.slice(0, uint64_t(M) * K), 0.0f);
    gelu_backward(rec, dpre, pre, dhidden, uint64_t(M) * K);
  }
  linear_backward(rec, vk::View{}, dw, db, dy, hidden, w, M, N, K);
}

void linear_backward(vk::Recorder& rec, const vk::View& dx, const vk::View& dw, const vk::View& db,
                     const vk::View& dy, const vk::View& x, const vk::View& w, uint32_t M, uint32_t N, uint32_t K) {
  if (present(dx)) matmul(rec, dx, dy, w, input_grad_product(M, N, K, 1.0f));
  if (!present(dw)) {  // a frozen weight (model::Linear::set_frozen)
    if (present(db)) bias_grad(rec, db, dy, M, N);
    return;
  }
  if (present(db) && matmul_epilogue_supported(MatmulKernel::automatic, rec.context())) {
    // db += column sums of dy = row sums of dy^T, the weight gradient's A: one pass over dy.
    MatmulShape s = weight_grad_product(M, N, K);
    s.epilogue = MatmulEpilogue::row_sums;
    matmul(rec, dw, dy, x, s, vk::View{}, MatmulKernel::automatic, db);
    return;
  }
  matmul(rec, dw, dy, x, weight_grad_product(M, N, K));
  if (present(db)) bias_grad(rec, db, dy, M, N);
}

void linear_forward_f16(vk::Recorder& rec, const vk::View& y, const vk::View& x16, const vk::View& x,
                        const vk::View& w16, const vk::View& b, uint32_t M, uint32_t N, uint32_t K) {
  cast_f32_to_f16(rec, x16, x, uint64_t(M) * K);
  matmul_f16(rec, y, x16, w16, forward_product(M, N, K), b);
}

namespace {
// y = x W^T + b with `epilogue` (operand aux) in the fp16 kernel's stores; false, recording
// nothing, where the kernel has no epilogue.
bool fused_forward_f16(vk::Recorder& rec, const vk::View& y, const vk::View& x16, const vk::View& x,
                       const vk::View& w16, const vk::View& b, uint32_t M, uint32_t N, uint32_t K,
                       MatmulEpilogue epilogue, const vk::View& aux) {
  if (!matmul_f16_epilogue_supported(rec.context(), MatmulOut::f32)) return false;
  cast_f32_to_f16(rec, x16, x, uint64_t(M) * K);
  MatmulShape s = forward_product(M, N, K);
  s.epilogue = epilogue;
  matmul_f16(rec, y, x16, w16, s, b, MatmulOut::f32, aux);
  return true;
}
}  // namespace

void linear_gelu_forward_f16(vk::Recorder& rec, const vk::View& y, const vk::View& pre, const vk::View& x16,
                             const vk::View& x, const vk::View& w16, const vk::View& b, uint32_t M, uint32_t N,
                             uint32_t K) {
  const bool keep_pre = pre.buffer != VK_NULL_HANDLE;
  if (fused_forward_f16(rec, y, x16, x, w16, b, M, N, K, keep_pre ? MatmulEpilogue::gelu : MatmulEpilogue::gelu_only,
                        pre))
    return;
  const vk::View& z = keep_pre ? pre : y;  // without pre, the GELU runs in place
  linear_forward_f16(rec, z, x16, x, w16, b, M, N, K);
  gelu_forward(rec, y, z, uint64_t(M) * N);
}

void linear_residual_forward_f16(vk::Recorder& rec, const vk::View& y, const vk::View& x16, const vk::View& x,
                                 const vk::View& w16, const vk::View& b, const vk::View& residual, uint32_t M,
                                 uint32_t N, uint32_t K) {
  if (fused_forward_f16(rec, y, x16, x, w16, b, M, N, K, MatmulEpilogue::add, residual)) return;
  linear_forward_f16(rec, y, x16, x, w16, b, M, N, K);
  residual_forward(rec, y, y, residual, uint64_t(M) * N);
}

void linear_gelu_backward_f16(vk::Recorder& rec, const vk::View& dpre, const vk::View& dw, const vk::View& db,
                              const vk::View& dy, const vk::View& dy16, const vk::View& hidden16, const vk::View& w16,
                              const vk::View& pre, const vk::View& dhidden, uint32_t M, uint32_t N, uint32_t K) {
  if (!matmul_f16_epilogue_supported(rec.context(), MatmulOut::f32)) {
    linear_backward_f16(rec, dhidden, 0.0f, dw, db, dy, dy16, hidden16, w16, M, N, K);
    rec.fill(dpre.slice(0, uint64_t(M) * K), 0.0f);
    gelu_backward(rec, dpre, pre, dhidden, uint64_t(M) * K);
    return;
  }
  cast_f32_to_f16(rec, dy16, dy, uint64_t(M) * N);
  MatmulShape s = input_grad_product(M, N, K, 0.0f);
  s.epilogue = MatmulEpilogue::gelu_grad;
  matmul_f16(rec, dpre, dy16, w16, s, vk::View{}, MatmulOut::f32, pre);
  if (present(dw)) matmul_f16(rec, dw, dy16, hidden16, weight_grad_product(M, N, K));
  if (present(db)) bias_grad(rec, db, dy, M, N);
}

void linear_backward_f16(vk::Recorder& rec, const vk::View& dx, float dx_beta, const vk::View& dw, const vk::View& db,
                         const vk::View& dy, const vk::View& dy16, const vk::View& x16, const vk::View& w16,
                         uint32_t M, uint32_t N, uint32_t K) {
  cast_f32_to_f16(rec, dy16, dy, uint64_t(M) * N);
  if (present(dx)) matmul_f16(rec, dx, dy16, w16, input_grad_product(M, N, K, dx_beta));
  if (present(dw)) matmul_f16(rec, dw, dy16, x16, weight_grad_product(M, N, K));
  if (present(db)) bias_grad(rec, db, dy, M, N);
}

}  // namespace vkvit::ops
