// Double-precision ViT forward and backward on host arrays (see vit_ref.h). Written independently
// of vit.cpp's tricks: pooling is a plain loop here (a matmul there), gradients are zeroed and
// accumulated the plain way, and the residual backward is an explicit accumulate. Drop path scales
// each branch's output (and so its output gradient) per image before the residual add.
#include "model/vit_ref.h"

#include "base/error.h"
#include "model/sincos_pos_embed.h"
#include "ops/attention.h"
#include "ops/gelu.h"
#include "ops/global_filter.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "ops/patch_embed.h"
#include "ops/residual.h"

namespace vkvit::model {

VitRef::VitRef(const VitConfig& cfg) : cfg_(cfg), layout_(vit_param_layout(cfg)) {
  if (!cfg_.learned_pos_embed())
    for (float v : sincos_pos_embed(cfg_.dim, cfg_.grid())) fixed_pos_.push_back(v);
}

const double* VitRef::p(const std::vector<double>& flat, const std::string& name) const {
  return flat.data() + layout_.at(name).offset;
}
double* VitRef::g(std::vector<double>& flat, const std::string& name) const {
  return flat.data() + layout_.at(name).offset;
}

std::vector<double> VitRef::drop_scaled(std::vector<double> v, int layer, int branch) const {
  if (drop_scales_.empty()) return v;
  const uint64_t per_image = v.size() / B_;
  for (uint64_t i = 0; i < v.size(); ++i) v[i] *= drop_scales_[(2 * layer + branch) * B_ + i / per_image];
  return v;
}

std::vector<double> VitRef::forward(const std::vector<double>& params, const std::vector<double>& patches,
                                    uint32_t B, const std::vector<double>& drop_path_scales) {
  const uint64_t N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim, F = cfg_.mlp_dim,
                 K = cfg_.num_classes, H = cfg_.heads;
  const uint64_t M = B * N;
  if (params.size() != layout_.total_floats() || patches.size() != B * Np * cfg_.patch_dim())
    throw Error("internal: VitRef::forward: params or patches have the wrong size");
  if (!drop_path_scales.empty() && drop_path_scales.size() != uint64_t(cfg_.depth) * 2 * B)
    throw Error("internal: VitRef::forward: drop path scales must be (depth, 2, B)");
  B_ = B;
  patches_ = patches;
  drop_scales_ = drop_path_scales;
  ops::PatchEmbedShape s{B, uint32_t(Np), uint32_t(cfg_.patch_dim()), uint32_t(D)};
  x0_.assign(M * D, 0.0);
  const double* pos = cfg_.learned_pos_embed() ? p(params, "pos_embed") : fixed_pos_.data();
  ops::ref::patch_embed_forward(x0_.data(), patches.data(), p(params, "patch_embed.proj.weight"),
                                p(params, "patch_embed.proj.bias"), p(params, "cls_token"), pos, s);
  blocks_.assign(cfg_.depth, Block{});
  const std::vector<double>* in = &x0_;
  for (int l = 0; l < cfg_.depth; ++l) {
    Block& b = blocks_[l];
    const std::string pre = "blocks." + std::to_string(l) + ".";
    b.in = *in;
    b.ln1.assign(M * D, 0), b.mean1.assign(M, 0), b.rstd1.assign(M, 0);
    ops::ref::layernorm_forward(b.ln1.data(), b.mean1.data(), b.rstd1.data(), b.in.data(),
                                p(params, pre + "norm1.weight"), p(params, pre + "norm1.bias"), M, D, cfg_.ln_eps);
    b.mid.assign(M * D, 0);
    if (cfg_.mixer_at(l) == "global_filter") {
      ops::ref::global_filter_forward(b.mid.data(), b.ln1.data(), p(params, pre + "filter.complex_weight"),
                                      grid_shape(B));
    } else {
      b.qkv.assign(M * 3 * D, 0), b.probs.assign(B * H * N * N, 0), b.att.assign(M * D, 0);
      ops::ref::linear_forward(b.qkv.data(), b.ln1.data(), p(params, pre + "attn.qkv.weight"),
                               p(params, pre + "attn.qkv.bias"), M, 3 * D, D);
      ops::ref::attention_forward(b.att.data(), b.probs.data(), b.qkv.data(), B, N, D, H);
      ops::ref::linear_forward(b.mid.data(), b.att.data(), p(params, pre + "attn.proj.weight"),
                               p(params, pre + "attn.proj.bias"), M, D, D);
    }
    b.mid = drop_scaled(std::move(b.mid), l, 0);
    ops::ref::residual_forward(b.mid.data(), b.mid.data(), b.in.data(), M * D);
    // MLP.
    b.ln2.assign(M * D, 0), b.mean2.assign(M, 0), b.rstd2.assign(M, 0);
    ops::ref::layernorm_forward(b.ln2.data(), b.mean2.data(), b.rstd2.data(), b.mid.data(),
                                p(params, pre + "norm2.weight"), p(params, pre + "norm2.bias"), M, D, cfg_.ln_eps);
    b.pre.assign(M * F, 0), b.hidden.assign(M * F, 0), b.out.assign(M * D, 0);
    ops::ref::linear_forward(b.pre.data(), b.ln2.data(), p(params, pre + "mlp.fc1.weight"),
                             p(params, pre + "mlp.fc1.bias"), M, F, D);
    ops::ref::gelu_forward(b.hidden.data(), b.pre.data(), M * F);
    ops::ref::linear_forward(b.out.data(), b.hidden.data(), p(params, pre + "mlp.fc2.weight"),
                             p(params, pre + "mlp.fc2.bias"), M, D, F);
    b.out = drop_scaled(std::move(b.out), l, 1);
    ops::ref::residual_forward(b.out.data(), b.out.data(), b.mid.data(), M * D);
    in = &b.out;
  }
  xn_.assign(M * D, 0), mean_.assign(M, 0), rstd_.assign(M, 0);
  ops::ref::layernorm_forward(xn_.data(), mean_.data(), rstd_.data(), in->data(), p(params, "norm.weight"),
                              p(params, "norm.bias"), M, D, cfg_.ln_eps);
  pooled_.assign(B * D, 0.0);
  for (uint64_t b = 0; b < B; ++b)
    for (uint64_t d = 0; d < D; ++d) {
      if (cfg_.pool == "cls") {
        pooled_[b * D + d] = xn_[b * N * D + d];
      } else {
        double sum = 0;
        for (uint64_t t = 1; t < N; ++t) sum += xn_[(b * N + t) * D + d];
        pooled_[b * D + d] = sum / double(Np);
      }
    }
  std::vector<double> logits(B * K);
  ops::ref::linear_forward(logits.data(), pooled_.data(), p(params, "head.weight"), p(params, "head.bias"), B, K, D);
  return logits;
}

void VitRef::backward(const std::vector<double>& params, const std::vector<double>& dlogits,
                      std::vector<double>& grads) {
  const uint64_t B = B_, N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim, F = cfg_.mlp_dim,
                 K = cfg_.num_classes, H = cfg_.heads;
  const uint64_t M = B * N;
  if (grads.size() != layout_.total_floats() || dlogits.size() != B * K || blocks_.size() != size_t(cfg_.depth))
    throw Error("internal: VitRef::backward: call forward first, with grads and dlogits of the right size");
  std::vector<double> dpooled(B * D, 0.0);
  ops::ref::linear_backward(dpooled.data(), g(grads, "head.weight"), g(grads, "head.bias"), dlogits.data(),
                            pooled_.data(), p(params, "head.weight"), B, K, D);
  std::vector<double> dxn(M * D, 0.0);
  for (uint64_t b = 0; b < B; ++b)
    for (uint64_t d = 0; d < D; ++d) {
      if (cfg_.pool == "cls")
        dxn[b * N * D + d] = dpooled[b * D + d];
      else
        for (uint64_t t = 1; t < N; ++t) dxn[(b * N + t) * D + d] = dpooled[b * D + d] / double(Np);
    }
  std::vector<double> dx(M * D, 0.0);  // gradient of the current block's output
  ops::ref::layernorm_backward(dx.data(), g(grads, "norm.weight"), g(grads, "norm.bias"), mean_.data(), rstd_.data(),
                               blocks_.back().out.data(), dxn.data(), p(params, "norm.weight"), M, D);
  for (int l = cfg_.depth - 1; l >= 0; --l) {
    const Block& b = blocks_[l];
    const std::string pre = "blocks." + std::to_string(l) + ".";
    // out = mid + fc2(gelu(fc1(ln2(mid))))
    std::vector<double> dhidden(M * F, 0.0), dpre(M * F, 0.0), dln2(M * D, 0.0);
    const std::vector<double> dmlp = drop_scaled(dx, l, 1);  // the MLP branch's output gradient
    ops::ref::linear_backward(dhidden.data(), g(grads, pre + "mlp.fc2.weight"), g(grads, pre + "mlp.fc2.bias"),
                              dmlp.data(), b.hidden.data(), p(params, pre + "mlp.fc2.weight"), M, D, F);
    ops::ref::gelu_backward(dpre.data(), b.pre.data(), dhidden.data(), M * F);
    ops::ref::linear_backward(dln2.data(), g(grads, pre + "mlp.fc1.weight"), g(grads, pre + "mlp.fc1.bias"),
                              dpre.data(), b.ln2.data(), p(params, pre + "mlp.fc1.weight"), M, F, D);
    std::vector<double> dmid = dx;  // the residual branch
    ops::ref::layernorm_backward(dmid.data(), g(grads, pre + "norm2.weight"), g(grads, pre + "norm2.bias"),
                                 b.mean2.data(), b.rstd2.data(), b.mid.data(), dln2.data(),
                                 p(params, pre + "norm2.weight"), M, D);
    // mid = in + mixer(ln1(in)), the mixer being proj(attention(qkv(.))) or the global filter
    std::vector<double> dln1(M * D, 0.0);
    const std::vector<double> dmixer = drop_scaled(dmid, l, 0);  // the mixer branch's output gradient
    if (cfg_.mixer_at(l) == "global_filter") {
      ops::ref::global_filter_backward(dln1.data(), g(grads, pre + "filter.complex_weight"), dmixer.data(),
                                       b.ln1.data(), p(params, pre + "filter.complex_weight"), grid_shape(B));
    } else {
      std::vector<double> datt(M * D, 0.0), dqkv(M * 3 * D, 0.0);
      ops::ref::linear_backward(datt.data(), g(grads, pre + "attn.proj.weight"), g(grads, pre + "attn.proj.bias"),
                                dmixer.data(), b.att.data(), p(params, pre + "attn.proj.weight"), M, D, D);
      ops::ref::attention_backward(dqkv.data(), b.probs.data(), b.qkv.data(), datt.data(), B, N, D, H);
      ops::ref::linear_backward(dln1.data(), g(grads, pre + "attn.qkv.weight"), g(grads, pre + "attn.qkv.bias"),
                                dqkv.data(), b.ln1.data(), p(params, pre + "attn.qkv.weight"), M, 3 * D, D);
    }
    std::vector<double> din(M * D, 0.0);
    ops::ref::accumulate(din.data(), dmid.data(), M * D);
    ops::ref::layernorm_backward(din.data(), g(grads, pre + "norm1.weight"), g(grads, pre + "norm1.bias"),
                                 b.mean1.data(), b.rstd1.data(), b.in.data(), dln1.data(),
                                 p(params, pre + "norm1.weight"), M, D);
    dx = std::move(din);
  }
  ops::PatchEmbedShape s{uint32_t(B), uint32_t(Np), uint32_t(cfg_.patch_dim()), uint32_t(D)};
  std::vector<double> dpos_unused;  // the sincos table takes no gradient
  if (!cfg_.learned_pos_embed()) dpos_unused.assign(N * D, 0.0);
  ops::ref::patch_embed_backward(g(grads, "patch_embed.proj.weight"), g(grads, "patch_embed.proj.bias"),
                                 g(grads, "cls_token"), cfg_.learned_pos_embed() ? g(grads, "pos_embed") : dpos_unused.data(),
                                 dx.data(), patches_.data(), s);
}

}  // namespace vkvit::model
