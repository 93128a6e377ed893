// The token mixer of a ViT block (the part between norm1 and the first residual add) behind one
// small interface, so a different mixer (a global filter over the patch grid, as in GFNet) can be
// added without touching the block code in vit.cpp: give it a class here, a branch in
// declare_mixer_params and make_token_mixer, a VitConfig::mixer name, and a reference in vit_ref.cpp.
// Also holds the small layer helpers that the mixers and the block share.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "model/vit_config.h"
#include "model/vit_params.h"
#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::model {

// Hands out activation memory in two passes over the same calls: a counting pass (no arena) that
// sums the bytes, then the real pass from an arena sized by the count. Per-layer tensors get their
// own range; scratch tensors with the same key share one range across layers (dP, gradients of
// intermediate activations), which is valid because the layers run one after another.
class ActivationAlloc {
 public:
  ActivationAlloc(const vk::Context& ctx, vk::Arena* arena);  // arena null: counting pass
  vk::View tensor(uint64_t floats, const std::string& name);
  vk::View scratch(const std::string& key, uint64_t floats);
  uint64_t bytes() const { return bytes_; }          // padded bytes handed out so far
  uint64_t largest() const { return largest_; }      // the largest single request, padded

 private:
  const vk::Context& ctx_;
  vk::Arena* arena_;
  uint64_t align_;
  uint64_t bytes_ = 0, largest_ = 0;
  std::map<std::string, vk::View> scratch_;
};

// What a mixer sees: its slice of the parameters and gradients is found by name under `prefix`
// ("blocks.N.") in `layout`; params/grads are the whole flat buffers.
class GlobalFilterPlans;  // model/global_filter.h

struct MixerSetup {
  const VitConfig& cfg;
  const ParamLayout& layout;
  std::string prefix;
  vk::View params, grads;
  uint32_t max_batch;
  int layer = 0;  // the block's index: cfg.mixer_at(layer) is this mixer's kind
  // FFT plans shared by the model's global-filter mixers (the model owns one set).
  std::shared_ptr<GlobalFilterPlans> fft_plans;
  // Attention keeps its (B, H, N, N) probabilities readable after forward (`vkvit explain`): the
  // unfused path even under VKVIT_ATTENTION=fused, whose kernels keep only the row log-sum-exp.
  bool keep_attention_probs = false;
};

class TokenMixer {
 public:
  virtual ~TokenMixer() = default;
  // Takes its activations and scratch; called twice (counting, then real), keeping the second.
  virtual void allocate(ActivationAlloc& alloc) = 0;
  // out (B, T, D) = mixer(in (B, T, D)) + residual (B, T, D), out overwritten; keeps what
  // backward needs. residual may be empty (nothing added); it must not overlap out. Taking the
  // block's skip connection here lets the last product add it in its stores.
  virtual void forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint32_t batch,
                       const vk::View& residual) = 0;
  // din (B, T, D) += the gradient of sum(out * dout) with respect to in; the mixer's parameter
  // gradients accumulate too. `in` is the forward's input.
  virtual void backward(vk::Recorder& rec, const vk::View& din, const vk::View& dout, const vk::View& in,
                        uint32_t batch) = 0;
  // Mixed precision (train.amp): run the mixer's linear layers on fp16 copies (Linear::enable_f16).
  // params16 is the model's fp16 copy of the flat parameter buffer (same layout, 2 bytes an element),
  // refreshed by the model before every forward. Called before allocate(); mixers without
  // matmuls (or not yet converted) ignore it and stay fp32, which autocast permits.
  virtual void enable_f16(const vk::View& params16) { (void)params16; }
  // Freezing (Vit::set_frozen): is_frozen(tensor name) for each of the mixer's tensors; mixers
  // whose linear layers can skip a frozen weight's gradient do (Linear::set_frozen).
  virtual void set_frozen(const std::function<bool(const std::string&)>& is_frozen) { (void)is_frozen; }
  // The softmax probabilities of the last forward, (B, H, N, N), when the mixer is attention on
  // the unfused path; an empty view (size 0) otherwise.
  virtual vk::View attention_probs() const { return {}; }
};

// Adds the mixer's parameter tensors for block `layer` (names under `prefix`) in timm's order.
void declare_mixer_params(ParamLayout& layout, const std::string& prefix, const VitConfig& cfg, int layer);
std::unique_ptr<TokenMixer> make_token_mixer(vk::Context& ctx, const MixerSetup& setup);

// The view of one named tensor inside a flat buffer laid out by `layout`.
vk::View param_view(const vk::View& flat, const ParamLayout& layout, const std::string& name);
// Floats of activation memory that hold n fp16 values (ActivationAlloc counts floats).
inline uint64_t half_floats(uint64_t n) { return (n + 1) / 2; }

}  // namespace vkvit::model
