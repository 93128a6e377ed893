// Token mixers of the ViT block and the activation allocator they share with the model.
// AttentionMixer is timm's Attention: qkv Linear(D, 3D), multi-head attention, proj Linear(D, D).
// Attention runs the fused kernels (online softmax; head widths 16, 32, 64) where the kernel choice
// says so (ops/kernel_choice.h: CPU drivers with 8-lane subgroups) and the unfused path (matmul +
// softmax) elsewhere; VKVIT_ATTENTION=fused|unfused overrides, and a model
// that must keep its probabilities (`vkvit explain`) runs unfused. On lavapipe the fused kernels
// are 1.7-5.4x as fast as the unfused path (`vkvit bench attention`, BENCHMARKS.md); on GPUs they
// have not been measured, so the unfused path with the tiled matmul stays their default.
#include "model/token_mixer.h"

#include <algorithm>

#include "base/error.h"
#include "model/global_filter.h"
#include "model/linear_layer.h"
#include "ops/attention.h"
#include "ops/kernel_choice.h"
#include "ops/launch.h"

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

namespace {

class AttentionMixer : public TokenMixer {
 public:
  AttentionMixer(vk::Context& ctx, const MixerSetup& s)
      : prefix_(s.prefix), B_(s.max_batch), T_(s.cfg.tokens()), D_(s.cfg.dim), H_(s.cfg.heads),
        fused_(!s.keep_attention_probs && use_fused_attention(ctx, D_, H_)),
        qkv_layer_(s.layout, s.params, s.grads, s.prefix + "attn.qkv"),
        proj_layer_(s.layout, s.params, s.grads, s.prefix + "attn.proj") {
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
    qkv_layer_.allocate(alloc, BT, "(B, N, D)");
    proj_layer_.allocate(alloc, BT, "(B, N, D)");
  }

  void enable_f16(const vk::View& params16) override {
    qkv_layer_.enable_f16(params16);
    proj_layer_.enable_f16(params16);
  }

  void set_frozen(const std::function<bool(const std::string&)>& is_frozen) override {
    qkv_layer_.set_frozen(is_frozen(prefix_ + "attn.qkv.weight"), is_frozen(prefix_ + "attn.qkv.bias"));
    proj_layer_.set_frozen(is_frozen(prefix_ + "attn.proj.weight"), is_frozen(prefix_ + "attn.proj.bias"));
  }

  void forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint32_t batch,
               const vk::View& residual) override {
    const uint32_t M = batch * T_;
    qkv_layer_.forward(rec, qkv_, in, M);
    if (fused_) ops::attention_fused_forward(rec, out_, saved_, qkv_, batch, T_, D_, H_);
    else ops::attention_forward(rec, out_, saved_, qkv_, batch, T_, D_, H_);
    proj_layer_.forward(rec, out, out_, M, residual);
  }

  // The linear layers kept their inputs from the forward (`in` is qkv's).
  void backward(vk::Recorder& rec, const vk::View& din, const vk::View& dout, const vk::View& /*in*/,
                uint32_t batch) override {
    const uint32_t M = batch * T_;
    proj_layer_.backward(rec, dout_, /*accumulate=*/false, dout, M);
    if (fused_) {
      ops::attention_fused_backward(rec, dqkv_, scratch_, saved_, qkv_, out_, dout_, batch, T_, D_, H_);
    } else {
      rec.fill(dqkv_.slice(0, uint64_t(M) * 3 * D_), 0.0f);  // the unfused backward accumulates
      ops::attention_backward(rec, dqkv_, scratch_, saved_, qkv_, dout_, batch, T_, D_, H_);
    }
    qkv_layer_.backward(rec, din, /*accumulate=*/true, dqkv_, M);
  }

  vk::View attention_probs() const override { return fused_ ? vk::View{} : saved_; }

 private:
  // The kernel choice's attention path (ops/kernel_choice.h: fused on CPU drivers with 8-lane
  // subgroups, VKVIT_ATTENTION overrides) where the head width has fused kernels. Forcing fused
  // on a head width without kernels, or on a device without 8-lane subgroups, is one error.
  static bool use_fused_attention(const vk::Context& ctx, uint32_t D, uint32_t H) {
    const bool forced = ctx.tuning().attention == vk::AttentionPath::fused;
    if (forced && !ops::attention_fused_supported(D, H))
      throw Error("VKVIT_ATTENTION=fused: no fused attention kernel for head width " + std::to_string(D / H) +
                  " (there are kernels for 16, 32 and 64); unset VKVIT_ATTENTION");
    const ops::KernelChoice choice = ops::kernel_choice(ctx);
    if (!choice.attention_refused.empty()) throw Error(choice.attention_refused);
    // The device at hand must run them too (a test may describe a device with 8-lane subgroups).
    if (forced)
      if (const std::string why = ops::attention_fused_unsupported(ctx.info()); !why.empty())
        throw Error("VKVIT_ATTENTION=fused: " + why + "; unset VKVIT_ATTENTION");
    return choice.attention.fused && ops::attention_fused_supported(D, H) &&
           ops::attention_fused_unsupported(ctx.info()).empty();
  }

  std::string prefix_;
  uint32_t B_, T_, D_, H_;
  bool fused_;
  Linear qkv_layer_, proj_layer_;  // (3D, D) (D, D)
  vk::View qkv_;     // (B, N, 3D) saved
  vk::View saved_;   // fused: lse (B, H, N); unfused: probs (B, H, N, N)
  vk::View out_;     // (B, N, D) heads concatenated, saved (proj's input)
  vk::View dqkv_;    // (B, N, 3D) scratch
  vk::View scratch_; // fused: delta (B, H, N); unfused: dP (B, H, N, N)
  vk::View dout_;    // (B, N, D) scratch: gradient of out_
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
