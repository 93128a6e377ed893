// The whole ViT in double precision on the CPU, composed from the ops' reference functions
// (ops::ref), for tests: GPU logits and gradients are compared against it, and it is itself
// checked against finite differences. Same model, parameter layout and names as model::Vit.
#pragma once
#include <cstdint>
#include <vector>

#include "model/vit_config.h"
#include "model/vit_params.h"
#include "ops/global_filter.h"

namespace vkvit::model {

class VitRef {
 public:
  explicit VitRef(const VitConfig& cfg);
  const ParamLayout& layout() const { return layout_; }

  // params: (layout().total_floats()) flat, as Vit::read_params; patches: (B, Np, C*P*P).
  // Returns logits (B, K) and keeps the activations for backward.
  // drop_path_scales: stochastic depth as Vit::set_drop_path takes it, (depth, 2, B) per-image
  // scales of each block's mixer and MLP branch; empty: none.
  std::vector<double> forward(const std::vector<double>& params, const std::vector<double>& patches, uint32_t B,
                              const std::vector<double>& drop_path_scales = {});
  // After forward with the same params: grads (layout().total_floats()) += d sum(logits * dlogits) / d params.
  void backward(const std::vector<double>& params, const std::vector<double>& dlogits, std::vector<double>& grads);
  // After forward: block `layer`'s attention probabilities (B, H, N, N); empty for a global filter.
  const std::vector<double>& attention_probs(int layer) const { return blocks_.at(layer).probs; }

 private:
  // One block's activations; see forward() for what each holds in pre- and post-norm blocks.
  struct Block {
    std::vector<double> in, ln1, mean1, rstd1, mid, ln2, mean2, rstd2, out;
    std::vector<double> mixer_in, qkv, probs, att;  // the mixer branch
    std::vector<double> mlp_in, pre, hidden;        // the MLP branch
  };
  const std::vector<double>& block_output(const Block& b) const { return cfg_.post_norm() ? b.ln2 : b.out; }
  static std::vector<double> sum(const std::vector<double>& a, const std::vector<double>& b);
  // Block l's norm1 or norm2 (`which`), forward and backward (dx += the input gradient).
  void norm_forward(const std::vector<double>& params, int l, int which, const std::vector<double>& x,
                    std::vector<double>& out, std::vector<double>& mean, std::vector<double>& rstd) const;
  void norm_backward(const std::vector<double>& params, std::vector<double>& grads, int l, int which,
                     const std::vector<double>& x, const std::vector<double>& mean, const std::vector<double>& rstd,
                     const std::vector<double>& dout, std::vector<double>& dx) const;
  // The branches' outputs (kept inputs in the Block) and backward (dx += the input gradient).
  std::vector<double> mixer_forward(const std::vector<double>& params, Block& b, int l,
                                    const std::vector<double>& x) const;
  void mixer_backward(const std::vector<double>& params, std::vector<double>& grads, const Block& b, int l,
                      const std::vector<double>& dout, std::vector<double>& dx) const;
  std::vector<double> mlp_forward(const std::vector<double>& params, Block& b, int l, const std::vector<double>& x) const;
  void mlp_backward(const std::vector<double>& params, std::vector<double>& grads, const Block& b, int l,
                    const std::vector<double>& dout, std::vector<double>& dx) const;
  const double* p(const std::vector<double>& flat, const std::string& name) const;
  ops::GridShape grid_shape(uint64_t batch) const {
    return {uint32_t(batch), uint32_t(cfg_.dim), uint32_t(cfg_.grid()), uint32_t(cfg_.grid())};
  }
  double* g(std::vector<double>& flat, const std::string& name) const;
  // The output (or output gradient) of block `layer`'s branch (0 mixer, 1 MLP) under drop path:
  // each image's rows times its scale; unchanged without drop path.
  std::vector<double> drop_scaled(std::vector<double> v, int layer, int branch) const;

  VitConfig cfg_;
  ParamLayout layout_;
  uint32_t B_ = 0;
  std::vector<double> patches_, x0_, xn_, mean_, rstd_, pooled_, drop_scales_;
  std::vector<double> fixed_pos_;  // model.pos_embed sincos: the table (N, D), the same floats as the GPU's
  std::vector<Block> blocks_;
};

}  // namespace vkvit::model
