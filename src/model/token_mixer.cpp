// Token mixers of the ViT block and the activation allocator they share with the model.
// AttentionMixer is timm's Attention: qkv Linear(D, 3D), multi-head attention, proj Linear(D, D).
// Attention runs the fused kernels (online softmax; head widths 16, 32, 64) on CPU drivers and the
// unfused path (matmul + softmax) elsewhere; VKVIT_ATTENTION=fused|unfused overrides, and a model
// that must keep its probabilities (`vkvit explain`) runs unfused. On lavapipe the fused kernels
// are 1.7-5.4x as fast as the unfused path (`vkvit bench attention`, BENCHMARKS.md); on GPUs they
// have not been measured, so the unfused path with the tiled matmul stays their default.
#include "model/token_mixer.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "model/global_filter.h"
#include "ops/attention.h"
#include "ops/launch.h"
#include "ops/linear.h"
#include "ops/matmul.h"

namespace vkvit::model {

ActivationAlloc::ActivationAlloc(const vk::Context& ctx, vk::Arena* arena)
    : ctx_(ctx), arena_(arena), align_(std::max<uint64_t>(ctx.info().min_storage_offset_alignment, 16)) {}

vk::View ActivationAlloc::tensor(uint64_t floats, const std::string& name) {
  const uint64_t bytes = std::max<uint64_t>(floats * 4, 4);
  const uint64_t padded = (bytes + align_ - 1) / align_ * align_;
  bytes_ += padded;
  largest_ = std::max(largest_, padded);
  if (!arena_) return vk::View{VK_NULL_HANDLE, 0, bytes};
  return arena_->alloc(bytes, name);
}

vk::View ActivationAlloc::scratch(const std::string& key, uint64_t floats) {
  auto it = scratch_.find(key);
  if (it != scratch_.end()) {
    if (it->second.size < floats * 4)
      throw Error("internal: scratch '" + key + "' was taken with " + std::to_string(it->second.size / 4) +
                  " floats, now asked for " + std::to_string(floats));
    return it->second;
  }
  return scratch_[key] = tensor(floats, "scratch " + key);
}

vk::View param_view(const vk::View& flat, const ParamLayout& layout, const std::string& name) {
  const ParamInfo& p = layout.at(name);
  return flat.slice(p.offset, p.count);
}

vk::View param_view_f16(const vk::View& flat16, const ParamLayout& layout, const std::string& name) {
  const ParamInfo& p = layout.at(name);
  return flat16.bytes(p.offset * 2, p.count * 2);
}

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

namespace {

class AttentionMixer : public TokenMixer {
 public:
  AttentionMixer(vk::Context& ctx, const MixerSetup& s)
      : prefix_(s.prefix), B_(s.max_batch), T_(s.cfg.tokens()), D_(s.cfg.dim), H_(s.cfg.heads),
        fused_(!s.keep_attention_probs && use_fused_attention(ctx.info(), ctx.tuning().attention, D_, H_)) {
    const std::string a = s.prefix + "attn.";
    layout_ = &s.layout;
    w_qkv_ = param_view(s.params, s.layout, a + "qkv.weight");
    b_qkv_ = param_view(s.params, s.layout, a + "qkv.bias");
    w_proj_ = param_view(s.params, s.layout, a + "proj.weight");
    b_proj_ = param_view(s.params, s.layout, a + "proj.bias");
    dw_qkv_ = param_view(s.grads, s.layout, a + "qkv.weight");
    db_qkv_ = param_view(s.grads, s.layout, a + "qkv.bias");
    dw_proj_ = param_view(s.grads, s.layout, a + "proj.weight");
    db_proj_ = param_view(s.grads, s.layout, a + "proj.bias");
    // The attention op splits a batch into image chunks that each fit one binding; one image must fit.
    if (ops::attention_images_per_chunk(ctx, T_, D_, H_) == 0)
      throw Error("model: one image's attention (" + std::to_string(T_) + " tokens, " + std::to_string(H_) +
                  " heads, width " + std::to_string(D_) + ") does not fit one storage binding of " +
                  vk::format_bytes(ctx.info().max_storage_buffer_range) + " on " + ctx.info().name +
                  ": use larger patches or a smaller image size");
  }

  void allocate(ActivationAlloc& alloc) override {
    const uint64_t BT = uint64_t(B_) * T_;
    // Saved per head: the probabilities (unfused) or only the row log-sum-exp (fused).
    const uint64_t saved = fused_ ? uint64_t(B_) * H_ * T_ : uint64_t(B_) * H_ * T_ * T_;
    const std::string a = prefix_ + "attn.";
    qkv_ = alloc.tensor(BT * 3 * D_, a + "qkv (B, N, 3D)");
    saved_ = alloc.tensor(saved, a + (fused_ ? "lse (B, H, N)" : "probs (B, H, N, N)"));
    out_ = alloc.tensor(BT * D_, a + "out (B, N, D)");
    dqkv_ = alloc.scratch("attn.dqkv (B, N, 3D)", BT * 3 * D_);
    scratch_ = fused_ ? alloc.scratch("attn.delta (B, H, N)", saved) : alloc.scratch("attn.dP (B, H, N, N)", saved);
    dout_ = alloc.scratch("attn.dout (B, N, D)", BT * D_);
    if (f16_) {
      in16_ = alloc.tensor(half_floats(BT * D_), a + "qkv in fp16 (B, N, D)");
      out16_ = alloc.tensor(half_floats(BT * D_), a + "proj in fp16 (B, N, D)");
      dy16_ = alloc.scratch("amp.dy16", half_floats(BT * 3 * D_));
    }
  }

  void enable_f16(const vk::View& params16) override {
    const std::string a = prefix_ + "attn.";
    w_qkv16_ = param_view_f16(params16, *layout_, a + "qkv.weight");
    w_proj16_ = param_view_f16(params16, *layout_, a + "proj.weight");
    f16_ = true;
  }

  void forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint32_t batch,
               const vk::View& residual) override {
    const uint32_t M = batch * T_;
    if (f16_) ops::linear_forward_f16(rec, qkv_, in16_, in, w_qkv16_, b_qkv_, M, 3 * D_, D_);
    else ops::linear_forward(rec, qkv_, in, w_qkv_, b_qkv_, M, 3 * D_, D_);
    if (fused_) ops::attention_fused_forward(rec, out_, saved_, qkv_, batch, T_, D_, H_);
    else ops::attention_forward(rec, out_, saved_, qkv_, batch, T_, D_, H_);
    if (f16_ && residual.buffer != VK_NULL_HANDLE) {
      ops::linear_residual_forward_f16(rec, out, out16_, out_, w_proj16_, b_proj_, residual, M, D_, D_);
    } else if (f16_) {
      ops::linear_forward_f16(rec, out, out16_, out_, w_proj16_, b_proj_, M, D_, D_);
    } else if (residual.buffer != VK_NULL_HANDLE) {
      ops::linear_residual_forward(rec, out, out_, w_proj_, b_proj_, residual, M, D_, D_);
    } else {
      ops::linear_forward(rec, out, out_, w_proj_, b_proj_, M, D_, D_);
    }
  }

  void backward(vk::Recorder& rec, const vk::View& din, const vk::View& dout, const vk::View& in,
                uint32_t batch) override {
    const uint32_t M = batch * T_;
    if (f16_) ops::linear_backward_f16(rec, dout_, 0.0f, dw_proj_, db_proj_, dout, dy16_, out16_, w_proj16_, M, D_, D_);
    else linear_backward_overwrite(rec, dout_, dw_proj_, db_proj_, dout, out_, w_proj_, M, D_, D_);
    if (fused_) {
      ops::attention_fused_backward(rec, dqkv_, scratch_, saved_, qkv_, out_, dout_, batch, T_, D_, H_);
    } else {
      rec.fill(dqkv_.slice(0, uint64_t(M) * 3 * D_), 0.0f);  // the unfused backward accumulates
      ops::attention_backward(rec, dqkv_, scratch_, saved_, qkv_, dout_, batch, T_, D_, H_);
    }
    if (f16_) ops::linear_backward_f16(rec, din, 1.0f, dw_qkv_, db_qkv_, dqkv_, dy16_, in16_, w_qkv16_, M, 3 * D_, D_);
    else ops::linear_backward(rec, din, dw_qkv_, db_qkv_, dqkv_, in, w_qkv_, M, 3 * D_, D_);
  }

  vk::View attention_probs() const override { return fused_ ? vk::View{} : saved_; }

 private:
  static bool use_fused_attention(const vk::DeviceInfo& info, vk::AttentionPath path, uint32_t D, uint32_t H) {
    if (path == vk::AttentionPath::unfused) return false;
    if (path == vk::AttentionPath::fused) {
      if (!ops::attention_fused_supported(D, H))
        throw Error("VKVIT_ATTENTION=fused: no fused attention kernel for head width " + std::to_string(D / H) +
                    " (there are kernels for 16, 32 and 64); unset VKVIT_ATTENTION");
      return true;
    }
    return info.is_cpu_driver() && ops::attention_fused_supported(D, H);
  }

  std::string prefix_;
  uint32_t B_, T_, D_, H_;
  bool fused_;
  vk::View w_qkv_, b_qkv_, w_proj_, b_proj_;      // (3D, D) (3D) (D, D) (D)
  vk::View dw_qkv_, db_qkv_, dw_proj_, db_proj_;  // same shapes
  vk::View qkv_;     // (B, N, 3D) saved
  vk::View saved_;   // fused: lse (B, H, N); unfused: probs (B, H, N, N)
  vk::View out_;     // (B, N, D) heads concatenated, saved (proj's input)
  vk::View dqkv_;    // (B, N, 3D) scratch
  vk::View scratch_; // fused: delta (B, H, N); unfused: dP (B, H, N, N)
  vk::View dout_;    // (B, N, D) scratch: gradient of out_
  // Mixed precision (enable_f16): fp16 weight copies, the fp16 inputs of qkv and proj (kept for
  // their weight gradients) and the cast of the incoming gradient (scratch shared with the model).
  const ParamLayout* layout_ = nullptr;
  bool f16_ = false;
  vk::View w_qkv16_, w_proj16_;  // (3D, D) (D, D) fp16
  vk::View in16_, out16_;        // (B, N, D) fp16 each
  vk::View dy16_;                // (B, N, 3D) fp16 scratch
};

}  // namespace

void declare_mixer_params(ParamLayout& layout, const std::string& prefix, const VitConfig& cfg, int layer) {
  const int64_t D = cfg.dim;
  const std::string mixer = cfg.mixer_at(layer);
  if (mixer == "attention") {
    layout.add(prefix + "attn.qkv.weight", {3 * D, D});
    layout.add(prefix + "attn.qkv.bias", {3 * D});
    layout.add(prefix + "attn.proj.weight", {D, D});
    layout.add(prefix + "attn.proj.bias", {D});
    return;
  }
  if (mixer == "global_filter") {
    const int64_t g = cfg.grid();
    layout.add(prefix + "filter.complex_weight", {g, g / 2 + 1, D, 2});
    return;
  }
  throw Error("model config: unknown mixer '" + mixer + "'");
}

std::unique_ptr<TokenMixer> make_token_mixer(vk::Context& ctx, const MixerSetup& setup) {
  const std::string mixer = setup.cfg.mixer_at(setup.layer);
  if (mixer == "attention") return std::make_unique<AttentionMixer>(ctx, setup);
  if (mixer == "global_filter") return make_global_filter_mixer(ctx, setup);
  throw Error("model config: unknown mixer '" + mixer + "'");
}

}  // namespace vkvit::model
