// The Vision Transformer on the GPU: parameters and gradients in one flat buffer each (layout in
// vit_params.h), activations in one arena sized up front for max_batch, forward and backward of
// the whole stack recorded into a Recorder. As timm's VisionTransformer (class token, learned
// position embedding, pre-norm blocks):
//   x = patch_embed(patches) (+ cls, + pos_embed: learned, or fixed sine-cosine with model.pos_embed sincos)
//   each block: x = x + mixer(norm1(x)); x = x + fc2(gelu(fc1(norm2(x))))
//   (model.norm post: x = norm1(x + mixer(x)); x = norm2(x + fc2(gelu(fc1(x)))), the original
//   Transformer's order; the final norm stays)
//   logits = head(pool(norm(x)))   pool: the cls token, or the mean of the patch tokens
// In training with stochastic depth (set_drop_path) each branch's output is scaled per image
// before its residual add: x = x + scale_b * mixer(norm1(x)), the same for the MLP.
// (timm with global_pool='avg' normalises after pooling, under the name fc_norm; vkvit normalises
// every token before pooling, under the name norm, for both pools.)
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/linear_layer.h"
#include "model/token_mixer.h"
#include "model/vit_config.h"
#include "model/vit_params.h"
#include "ops/drop_path.h"
#include "vk/context.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::model {

class Vit {
 public:
  // Validates cfg; throws vkvit::Error (OutOfMemoryError for memory) naming what does not fit.
  // amp: mixed precision (train.amp), as PyTorch's autocast: the linear layers' products run on
  // fp16 copies of their inputs and weights with fp32 accumulation (model::Linear); patch
  // embedding, norms, attention's own products, softmax, GELU, pooling, the residual stream, the
  // parameters and their gradients stay fp32. forward() refreshes the fp16 weight copy itself.
  // keep_attention_probs: every attention block keeps its softmax probabilities for
  // attention_probs(), on the unfused path whatever VKVIT_ATTENTION says (`vkvit explain`).
  Vit(vk::Context& ctx, const VitConfig& cfg, uint32_t max_batch, bool amp = false, bool keep_attention_probs = false);
  ~Vit();
  Vit(const Vit&) = delete;
  Vit& operator=(const Vit&) = delete;

  const VitConfig& config() const { return cfg_; }
  uint32_t max_batch() const { return max_batch_; }
  const ParamLayout& layout() const { return layout_; }
  const std::vector<ParamInfo>& params() const { return layout_.params(); }
  uint64_t param_count() const { return layout_.param_count(); }  // without alignment padding
  vk::View params_view() const;  // (layout().total_floats()) one flat device buffer
  vk::View grads_view() const;   // same layout
  // One tensor of params_view() / grads_view() by timm name.
  vk::View param(const std::string& name) const;
  vk::View grad(const std::string& name) const;

  // timm's init (see vit_init_params), uploaded.
  void init(uint64_t seed);
  std::vector<float> read_params() const;  // (layout().total_floats()) flat host copy
  void write_params(const std::vector<float>& flat);
  std::vector<float> read_grads() const;

  vk::View patches_input() const { return patches_; }  // (max_batch, Np, C*P*P): upload a batch here
  vk::View logits() const { return logits_; }          // (max_batch, K)

  // Records the forward pass of the first `batch` images of patches_input() into logits();
  // keeps the activations for backward. With for_backward false (evaluation, predict) the MLPs
  // keep no pre-activations: the logits are the same bits, and backward() must not follow.
  void forward(vk::Recorder& rec, uint32_t batch, bool for_backward = true);
  // Stochastic depth (train.drop_path) for the next forward(rec, batch, for_backward = true) and
  // its backward: `scales` (depth, 2, batch), block l's mixer branch at (2 l) * batch + b, its MLP
  // branch at (2 l + 1) * batch + b, each 0 (dropped) or 1 / keep (train::draw_drop_path). Their
  // upload is recorded into rec. A branch whose scales are all 1 keeps the fused residual add, so
  // a model never given scales runs exactly the commands it ran without drop path. The next
  // forward consumes them: an evaluation forward (for_backward false) ignores them, and a later
  // step without new scales runs without drop path.
  void set_drop_path(vk::Recorder& rec, const std::vector<float>& scales, uint32_t batch);
  // Records the backward pass from dlogits (batch, K) after forward(rec, batch); ACCUMULATES into
  // grads_view() (the caller zeroes it, e.g. rec.fill(grads_view(), 0)).
  // `grads_ready(first)`, when given, is called as soon as the recorded commands have finished
  // every gradient at layout offsets >= first (floats): after the head and final norm, after
  // each block, and with 0 at the end; the caller may flush the recorder there (data-parallel
  // runs start sending those gradients while the rest of the backward pass runs).
  void backward(vk::Recorder& rec, uint32_t batch, const vk::View& dlogits,
                const std::function<void(uint64_t first)>& grads_ready = {});

  // Freezing (train.freeze): frozen[i] for params()[i]. The linear layers skip a frozen
  // weight's or bias's gradient, and backward() stops below the lowest block that still has a
  // trainable tensor at or under it (a linear probe runs the head's backward only). Gradients of
  // frozen tensors are then left as they were or computed anyway: the optimizer ignores them.
  void set_frozen(const std::vector<bool>& frozen);

  // After forward(rec, batch) has run: block `layer`'s attention probabilities softmax(scale Q K^T),
  // (max_batch, H, N, N), of which the first `batch` images are this forward's. Throws Error for a
  // block that is not attention, or a model built without keep_attention_probs on the fused path.
  vk::View attention_probs(int layer) const;

  uint64_t activation_bytes() const { return activation_bytes_; }
  bool amp() const { return amp_; }

  // The activation arena a Vit of `cfg` at max_batch `batch` would take (bytes) and its largest
  // single tensor (bytes), counted by the constructor's own counting pass without allocating
  // anything: the memory plan behind out-of-memory advice (which batch would fit).
  static std::pair<uint64_t, uint64_t> activation_plan(vk::Context& ctx, const VitConfig& cfg, uint32_t batch,
                                                       bool amp = false);

 private:
  struct Block;
  struct CountOnly {};
  // The shell activation_plan() counts with: config, layout and blocks, no device memory.
  Vit(vk::Context& ctx, const VitConfig& cfg, uint32_t max_batch, bool amp, CountOnly);
  // The blocks and the head over the flat buffers params / grads (and, under amp, params16): the
  // real ones, or stand-ins of the right length for the counting shell.
  void build_layers(const vk::View& params, const vk::View& grads, const vk::View& params16,
                    const std::shared_ptr<GlobalFilterPlans>& fft_plans, bool keep_attention_probs);
  void allocate(ActivationAlloc& alloc);
  // Throws OutOfMemoryError, with the batch that would fit, when the activations and the
  // parameters and gradients (param_bytes each) exceed the largest device-local heap.
  void check_fits(uint64_t param_bytes) const;
  void check_batch(uint32_t batch, const char* what) const;
  std::string label() const;  // the config's name for messages
  // Whether the current step drops paths on block `layer`'s branch (0 mixer, 1 MLP), and the
  // shape of its scales for ops::drop_path_add / drop_path_scale.
  bool drops(int layer, int branch) const;
  ops::DropPathShape drop_shape(int layer, int branch, uint32_t batch) const;
  // The gradient of the branch's output: `grad` itself, or under drop path `grad` scaled per image
  // into `scratch` (which may be `grad`).
  vk::View drop_branch_grad(vk::Recorder& rec, int layer, int branch, const vk::View& grad, const vk::View& scratch,
                            uint32_t batch);
  void add_branch(vk::Recorder& rec, int layer, int branch, uint32_t batch, const vk::View& out,
                  const vk::View& residual, const std::function<void(const vk::View& dst, const vk::View& add)>& run);
  void forward_block(vk::Recorder& rec, int layer, uint32_t batch, bool for_backward);
  void backward_block_pre(vk::Recorder& rec, int layer, uint32_t batch);
  void backward_block_post(vk::Recorder& rec, int layer, uint32_t batch);

  vk::Context& ctx_;
  VitConfig cfg_;
  uint32_t max_batch_;
  ParamLayout layout_;
  std::unique_ptr<vk::Buffer> params_, grads_;
  std::unique_ptr<vk::Arena> arena_;
  uint64_t activation_bytes_ = 0;
  std::vector<std::unique_ptr<Block>> blocks_;
  Linear head_;  // (K, D)
  int lowest_trainable_ = 0;  // set_frozen's position of the lowest trainable tensor: 0 = all train

  vk::View patches_;  // (B, Np, CPP) input
  vk::View x0_;       // (B, N, D) patch embedding output = first block's input
  vk::View proj_;     // (B, Np, D) scratch of patch_embed
  vk::View xn_;       // (B, N, D) final norm output
  vk::View mean_, rstd_;  // (B * N) final norm statistics
  vk::View pool_w_;   // (N) pooling weights: one-hot cls, or 1/Np over patch tokens
  vk::View fixed_pos_, dpos_unused_;  // model.pos_embed sincos only: the (N, D) table, and where its gradient goes
  vk::View pooled_;   // (B, D)
  vk::View logits_;   // (B, K)
  // Backward scratch shared by all blocks.
  vk::View dx_;       // (B, N, D) gradient of the residual stream
  vk::View dln_;      // (B, N, D) gradient of a norm output
  vk::View dhidden_;  // (B, N, F) gradient of gelu's output
  vk::View dpre_;     // (B, N, max(F, D)) gradient of fc1's output; under drop path, the mixer
                      // branch's output gradient too (free then)
  vk::View dpooled_;  // (B, D)
  vk::View dnorm_partials_;  // LayerNorm backward's partial column sums (ops::layernorm_backward)
  // Mixed precision only: the linear layers' fp16 weights are views into this copy.
  bool amp_ = false;
  std::unique_ptr<vk::Buffer> params16_;  // (layout().total_floats()) fp16 copy of the parameters
  // Stochastic depth (set_drop_path): the device scales (depth, 2, max_batch), made at the first
  // set_drop_path; the host copy of the step's scales; whether the next forward uses them, and
  // whether the last forward did (then its backward does too).
  std::unique_ptr<vk::Buffer> drop_scales_;
  std::vector<float> drop_host_;
  uint32_t drop_batch_ = 0;
  bool drop_pending_ = false, drop_active_ = false;
};

}  // namespace vkvit::model
