// Each call picks the fp32 op or its fp16 form from ops/linear.h with the same fused epilogue, so
// the two precisions differ only in the products' operands.
#include "model/linear_layer.h"

#include "base/error.h"
#include "model/token_mixer.h"
#include "ops/linear.h"
#include "ops/matmul.h"

namespace vkvit::model {

namespace {

constexpr const char* kOutputGrad16 = "amp.dy16";  // the ActivationAlloc scratch key

// ops::linear_backward accumulates into dx; this overwrites it instead (one matmul with beta 0
// rather than zeroing dx first): dx = dy W; dW += dy^T x; db += column sums of dy.
void linear_backward_overwrite(vk::Recorder& rec, const vk::View& dx, const vk::View& dw, const vk::View& db,
                               const vk::View& dy, const vk::View& x, const vk::View& w, uint32_t M, uint32_t N,
                               uint32_t K) {
  ops::MatmulShape s;  // dx (M, K) = dy (M, N) x W (N, K)
  s.M = M;
  s.N = K;
  s.K = N;
  ops::matmul(rec, dx, dy, w, s);
  ops::linear_backward(rec, vk::View{}, dw, db, dy, x, w, M, N, K);
}

}  // namespace

Linear::Linear(const ParamLayout& layout, const vk::View& params, const vk::View& grads, const std::string& name)
    : name_(name) {
  const ParamInfo& w = layout.at(name + ".weight");
  if (w.shape.size() != 2)
    throw Error("internal: " + name + ".weight has " + std::to_string(w.shape.size()) + " dimensions, a Linear needs 2");
  out_ = static_cast<uint32_t>(w.shape[0]);
  in_ = static_cast<uint32_t>(w.shape[1]);
  weight_offset_ = w.offset;
  w_ = param_view(params, layout, name + ".weight");
  b_ = param_view(params, layout, name + ".bias");
  dw_ = param_view(grads, layout, name + ".weight");
  db_ = param_view(grads, layout, name + ".bias");
}

void Linear::enable_f16(const vk::View& params16) {
  w16_ = params16.bytes(weight_offset_ * 2, uint64_t(out_) * in_ * 2);
  f16_ = true;
}

void Linear::reserve_output_grad_f16(ActivationAlloc& alloc, uint64_t largest) {
  alloc.scratch(kOutputGrad16, half_floats(largest));
}

void Linear::allocate(ActivationAlloc& alloc, uint64_t rows, const std::string& shape) {
  if (!f16_) return;
  in16_ = alloc.tensor(half_floats(rows * in_), name_ + " in fp16 " + shape);
  dy16_ = alloc.scratch(kOutputGrad16, half_floats(rows * out_));
}

void Linear::forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint32_t M, const vk::View& residual) {
  input_ = in;
  const bool add = residual.buffer != VK_NULL_HANDLE;
  if (f16_ && add) ops::linear_residual_forward_f16(rec, out, in16_, in, w16_, b_, residual, M, out_, in_);
  else if (f16_) ops::linear_forward_f16(rec, out, in16_, in, w16_, b_, M, out_, in_);
  else if (add) ops::linear_residual_forward(rec, out, in, w_, b_, residual, M, out_, in_);
  else ops::linear_forward(rec, out, in, w_, b_, M, out_, in_);
}

void Linear::forward_gelu(vk::Recorder& rec, const vk::View& out, const vk::View& pre, const vk::View& in, uint32_t M) {
  input_ = in;
  if (f16_) ops::linear_gelu_forward_f16(rec, out, pre, in16_, in, w16_, b_, M, out_, in_);
  else ops::linear_gelu_forward(rec, out, pre, in, w_, b_, M, out_, in_);
}

void Linear::set_frozen(bool weight, bool bias) {
  frozen_w_ = weight;
  frozen_b_ = bias;
}

void Linear::backward(vk::Recorder& rec, const vk::View& din, bool accumulate, const vk::View& dout, uint32_t M) {
  check_forwarded("backward");
  const vk::View dw = frozen_w_ ? vk::View{} : dw_, db = frozen_b_ ? vk::View{} : db_;
  const bool has_din = din.buffer != VK_NULL_HANDLE;
  if (f16_) ops::linear_backward_f16(rec, din, accumulate ? 1.0f : 0.0f, dw, db, dout, dy16_, in16_, w16_, M, out_, in_);
  else if (accumulate || !has_din) ops::linear_backward(rec, din, dw, db, dout, input_, w_, M, out_, in_);
  else linear_backward_overwrite(rec, din, dw, db, dout, input_, w_, M, out_, in_);
}

void Linear::backward_through_gelu(vk::Recorder& rec, const vk::View& dpre, const vk::View& dout, const vk::View& pre,
                                   const vk::View& dhidden, uint32_t M) {
  check_forwarded("backward_through_gelu");
  const vk::View dw = frozen_w_ ? vk::View{} : dw_, db = frozen_b_ ? vk::View{} : db_;
  if (f16_) ops::linear_gelu_backward_f16(rec, dpre, dw, db, dout, dy16_, in16_, w16_, pre, dhidden, M, out_, in_);
  else ops::linear_gelu_backward(rec, dpre, dw, db, dout, input_, w_, pre, dhidden, M, out_, in_);
}

void Linear::check_forwarded(const char* what) const {
  if (input_.size == 0) throw Error("internal: linear layer " + name_ + ": " + what + " before any forward");
}

}  // namespace vkvit::model
