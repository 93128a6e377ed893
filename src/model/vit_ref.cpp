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

std::vector<double> VitRef::sum(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  ops::ref::residual_forward(out.data(), b.data(), a.data(), a.size());
  return out;
}

void VitRef::norm_forward(const std::vector<double>& params, int l, int which, const std::vector<double>& x,
                          std::vector<double>& out, std::vector<double>& mean, std::vector<double>& rstd) const {
  const uint64_t D = cfg_.dim, M = x.size() / D;
  const std::string name = "blocks." + std::to_string(l) + ".norm" + std::to_string(which);
  out.assign(M * D, 0), mean.assign(M, 0), rstd.assign(M, 0);
  ops::ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), p(params, name + ".weight"),
                              p(params, name + ".bias"), M, D, cfg_.ln_eps);
}

void VitRef::norm_backward(const std::vector<double>& params, std::vector<double>& grads, int l, int which,
                           const std::vector<double>& x, const std::vector<double>& mean,
                           const std::vector<double>& rstd, const std::vector<double>& dout,
                           std::vector<double>& dx) const {
  const uint64_t D = cfg_.dim, M = x.size() / D;
  const std::string name = "blocks." + std::to_string(l) + ".norm" + std::to_string(which);
  ops::ref::layernorm_backward(dx.data(), g(grads, name + ".weight"), g(grads, name + ".bias"), mean.data(),
                               rstd.data(), x.data(), dout.data(), p(params, name + ".weight"), M, D);
}

std::vector<double> VitRef::mixer_forward(const std::vector<double>& params, Block& b, int l,
                                          const std::vector<double>& x) const {
  const uint64_t N = cfg_.tokens(), D = cfg_.dim, H = cfg_.heads, M = uint64_t(B_) * N;
  const std::string pre = "blocks." + std::to_string(l) + ".";
  b.mixer_in = x;
  std::vector<double> out(M * D, 0.0);
  if (cfg_.mixer_at(l) == "global_filter") {
    ops::ref::global_filter_forward(out.data(), x.data(), p(params, pre + "filter.complex_weight"), grid_shape(B_));
    return out;
  }
  b.qkv.assign(M * 3 * D, 0), b.probs.assign(B_ * H * N * N, 0), b.att.assign(M * D, 0);
  ops::ref::linear_forward(b.qkv.data(), x.data(), p(params, pre + "attn.qkv.weight"), p(params, pre + "attn.qkv.bias"),
                           M, 3 * D, D);
  ops::ref::attention_forward(b.att.data(), b.probs.data(), b.qkv.data(), B_, N, D, H);
  ops::ref::linear_forward(out.data(), b.att.data(), p(params, pre + "attn.proj.weight"),
                           p(params, pre + "attn.proj.bias"), M, D, D);
  return out;
}

void VitRef::mixer_backward(const std::vector<double>& params, std::vector<double>& grads, const Block& b, int l,
                            const std::vector<double>& dout, std::vector<double>& dx) const {
  const uint64_t N = cfg_.tokens(), D = cfg_.dim, H = cfg_.heads, M = uint64_t(B_) * N;
  const std::string pre = "blocks." + std::to_string(l) + ".";
  if (cfg_.mixer_at(l) == "global_filter") {
    ops::ref::global_filter_backward(dx.data(), g(grads, pre + "filter.complex_weight"), dout.data(),
                                     b.mixer_in.data(), p(params, pre + "filter.complex_weight"), grid_shape(B_));
    return;
  }
  std::vector<double> datt(M * D, 0.0), dqkv(M * 3 * D, 0.0);
  ops::ref::linear_backward(datt.data(), g(grads, pre + "attn.proj.weight"), g(grads, pre + "attn.proj.bias"),
                            dout.data(), b.att.data(), p(params, pre + "attn.proj.weight"), M, D, D);
  ops::ref::attention_backward(dqkv.data(), b.probs.data(), b.qkv.data(), datt.data(), B_, N, D, H);
  ops::ref::linear_backward(dx.data(), g(grads, pre + "attn.qkv.weight"), g(grads, pre + "attn.qkv.bias"), dqkv.data(),
                            b.mixer_in.data(), p(params, pre + "attn.qkv.weight"), M, 3 * D, D);
}

std::vector<double> VitRef::mlp_forward(const std::vector<double>& params, Block& b, int l,
                                        const std::vector<double>& x) const {
  const uint64_t D = cfg_.dim, F = cfg_.mlp_dim, M = x.size() / D;
  const std::string pre = "blocks." + std::to_string(l) + ".mlp.";
  b.mlp_in = x;
  b.pre.assign(M * F, 0), b.hidden.assign(M * F, 0);
  std::vector<double> out(M * D, 0.0);
  ops::ref::linear_forward(b.pre.data(), x.data(), p(params, pre + "fc1.weight"), p(params, pre + "fc1.bias"), M, F, D);
  ops::ref::gelu_forward(b.hidden.data(), b.pre.data(), M * F);
  ops::ref::linear_forward(out.data(), b.hidden.data(), p(params, pre + "fc2.weight"), p(params, pre + "fc2.bias"), M,
                           D, F);
  return out;
}

void VitRef::mlp_backward(const std::vector<double>& params, std::vector<double>& grads, const Block& b, int l,
                          const std::vector<double>& dout, std::vector<double>& dx) const {
  const uint64_t D = cfg_.dim, F = cfg_.mlp_dim, M = dout.size() / D;
  const std::string pre = "blocks." + std::to_string(l) + ".mlp.";
  std::vector<double> dhidden(M * F, 0.0), dpre(M * F, 0.0);
  ops::ref::linear_backward(dhidden.data(), g(grads, pre + "fc2.weight"), g(grads, pre + "fc2.bias"), dout.data(),
                            b.hidden.data(), p(params, pre + "fc2.weight"), M, D, F);
  ops::ref::gelu_backward(dpre.data(), b.pre.data(), dhidden.data(), M * F);
  ops::ref::linear_backward(dx.data(), g(grads, pre + "fc1.weight"), g(grads, pre + "fc1.bias"), dpre.data(),
                            b.mlp_in.data(), p(params, pre + "fc1.weight"), M, F, D);
}

std::vector<double> VitRef::forward(const std::vector<double>& params, const std::vector<double>& patches,
                                    uint32_t B, const std::vector<double>& drop_path_scales) {
  const uint64_t N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim, K = cfg_.num_classes;
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
    b.in = *in;
    if (cfg_.post_norm()) {  // mid = in + mixer(in); ln1 = norm1(mid); out = ln1 + mlp(ln1); ln2 = norm2(out)
      b.mid = sum(b.in, drop_scaled(mixer_forward(params, b, l, b.in), l, 0));
      norm_forward(params, l, 1, b.mid, b.ln1, b.mean1, b.rstd1);
      b.out = sum(b.ln1, drop_scaled(mlp_forward(params, b, l, b.ln1), l, 1));
      norm_forward(params, l, 2, b.out, b.ln2, b.mean2, b.rstd2);
      in = &b.ln2;
    } else {  // ln1 = norm1(in); mid = in + mixer(ln1); ln2 = norm2(mid); out = mid + mlp(ln2)
      norm_forward(params, l, 1, b.in, b.ln1, b.mean1, b.rstd1);
      b.mid = sum(b.in, drop_scaled(mixer_forward(params, b, l, b.ln1), l, 0));
      norm_forward(params, l, 2, b.mid, b.ln2, b.mean2, b.rstd2);
      b.out = sum(b.mid, drop_scaled(mlp_forward(params, b, l, b.ln2), l, 1));
      in = &b.out;
    }
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
  const uint64_t B = B_, N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim, K = cfg_.num_classes;
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
                               block_output(blocks_.back()).data(), dxn.data(), p(params, "norm.weight"), M, D);
  for (int l = cfg_.depth - 1; l >= 0; --l) {
    const Block& b = blocks_[l];
    std::vector<double> din(M * D, 0.0);
    if (cfg_.post_norm()) {
      std::vector<double> dout(M * D, 0.0), dmid(M * D, 0.0);
      norm_backward(params, grads, l, 2, b.out, b.mean2, b.rstd2, dx, dout);
      std::vector<double> dln1 = dout;  // the residual path around the MLP
      mlp_backward(params, grads, b, l, drop_scaled(dout, l, 1), dln1);
      norm_backward(params, grads, l, 1, b.mid, b.mean1, b.rstd1, dln1, dmid);
      ops::ref::accumulate(din.data(), dmid.data(), M * D);  // the residual path around the mixer
      mixer_backward(params, grads, b, l, drop_scaled(dmid, l, 0), din);
    } else {
      std::vector<double> dln2(M * D, 0.0), dln1(M * D, 0.0);
      std::vector<double> dmid = dx;  // the residual path around the MLP
      mlp_backward(params, grads, b, l, drop_scaled(dx, l, 1), dln2);
      norm_backward(params, grads, l, 2, b.mid, b.mean2, b.rstd2, dln2, dmid);
      ops::ref::accumulate(din.data(), dmid.data(), M * D);  // the residual path around the mixer
      mixer_backward(params, grads, b, l, drop_scaled(dmid, l, 0), dln1);
      norm_backward(params, grads, l, 1, b.in, b.mean1, b.rstd1, dln1, din);
    }
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
