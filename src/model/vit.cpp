// ViT forward and backward on the GPU, composed from the ops (see vit.h for the model).
// The backward pass keeps one running gradient of the residual stream (dx_): each LayerNorm
// backward accumulates into it, which is exactly the residual connection's gradient, so the blocks
// need no explicit residual backward. Intermediate gradients live in scratch shared by all blocks.
#include "model/vit.h"

#include <algorithm>

#include "base/error.h"
#include "model/global_filter.h"
#include "model/sincos_pos_embed.h"
#include "ops/cast.h"
#include "ops/launch.h"
#include "ops/layernorm.h"
#include "ops/matmul.h"
#include "ops/matmul_f16.h"
#include "ops/patch_embed.h"

namespace vkvit::model {

struct Vit::Block {
  std::string prefix;  // "blocks.N."
  std::unique_ptr<TokenMixer> mixer;
  Linear fc1, fc2;                  // (F, D) (D, F): the MLP
  vk::View n1w, n1b, n2w, n2b;      // (D) each
  vk::View dn1w, dn1b, dn2w, dn2b;  // gradients, same shapes
  vk::View in;                      // (B, N, D) the previous block's out (or the embedding)
  vk::View ln1, ln2;                // (B, N, D) norm outputs (post-norm: see forward_block)
  vk::View mean1, rstd1, mean2, rstd2;  // (B * N)
  vk::View mid;                     // (B, N, D) in + mixer(ln1)
  vk::View pre;                     // (B, N, F) fc1 output, gelu's input
  vk::View hidden;                  // (B, N, F) gelu output, fc2's input
  vk::View out;                     // (B, N, D) mid + mlp(ln2)
  vk::View y;                       // the block's output: out (pre-norm) or ln2 (post-norm)
};

namespace {
// Mixed precision runs the linear layers' products on the fp16 matmul kernels with fp32 output,
// which read packed halves (no shaderFloat16 nor 16-bit storage needed, ops/matmul_f16.h); a
// device that cannot run them fails here, when the model is built (train.amp, bench --amp), as one
// error naming what it lacks, instead of at the first step.
void require_amp_support(const vk::Context& ctx) {
  const std::string why = ops::matmul_f16_unsupported(ctx, ops::MatmulOut::f32);
  if (!why.empty())
    throw Error("mixed precision (train.amp): " + why + "; train without it (train.amp: false, or no --amp)");
}
}  // namespace

Vit::Vit(vk::Context& ctx, const VitConfig& cfg, uint32_t max_batch, bool amp, bool keep_attention_probs)
    : ctx_(ctx), cfg_(cfg), max_batch_(max_batch), layout_(vit_param_layout(cfg)), amp_(amp) {
  if (max_batch == 0) throw Error("model: max_batch must be > 0");
  if (amp_) require_amp_support(ctx);
  const uint64_t param_bytes = layout_.total_floats() * 4;
  params_ = std::make_unique<vk::Buffer>(ctx, param_bytes, vk::MemoryKind::device, "parameters");
  grads_ = std::make_unique<vk::Buffer>(ctx, param_bytes, vk::MemoryKind::device, "gradients");
  vk::View params16;
  if (amp_) {
    params16_ = std::make_unique<vk::Buffer>(ctx, ops::half_bytes(layout_.total_floats()), vk::MemoryKind::device,
                                             "fp16 parameters");
    params16 = params16_->view();
  }
  // The FFT plans are shared by the global-filter blocks.
  build_layers(params_view(), grads_view(), params16, std::make_shared<GlobalFilterPlans>(ctx), keep_attention_probs);

  // Count first, then allocate exactly that from one arena.
  ActivationAlloc count(ctx, nullptr);
  allocate(count);
  activation_bytes_ = count.bytes();
  check_fits(param_bytes);
  // One allocation holds the count exactly. Beyond maxMemoryAllocationSize the arena fills
  // several chunks first-fit, and each chunk may strand up to one tensor's worth at its end.
  const uint64_t chunk_limit = std::max<uint64_t>(ctx.info().max_memory_allocation_size, 1);
  const uint64_t slack = activation_bytes_ <= chunk_limit ? 0 : (activation_bytes_ / chunk_limit + 1) * count.largest();
  arena_ = std::make_unique<vk::Arena>(ctx, "activations", activation_bytes_ + slack);
  ActivationAlloc real(ctx, arena_.get());
  allocate(real);

  // Pooling is a (1, N) x (N, D) product per image with these weights.
  std::vector<float> pool(cfg_.tokens(), 0.0f);
  if (cfg_.pool == "cls")
    pool[0] = 1.0f;
  else
    std::fill(pool.begin() + 1, pool.end(), 1.0f / static_cast<float>(cfg_.num_patches()));
  ctx.upload(pool_w_, pool.data(), pool.size() * 4);
  if (!cfg_.learned_pos_embed()) {
    const std::vector<float> table = sincos_pos_embed(cfg_.dim, cfg_.grid());
    ctx.upload(fixed_pos_, table.data(), table.size() * 4);
  }

  vk::Recorder rec(ctx);
  rec.fill(params_view(), 0.0f);
  rec.fill(grads_view(), 0.0f);
  rec.submit_and_wait();
}

Vit::~Vit() = default;

Vit::Vit(vk::Context& ctx, const VitConfig& cfg, uint32_t max_batch, bool amp, CountOnly)
    : ctx_(ctx), cfg_(cfg), max_batch_(max_batch), layout_(vit_param_layout(cfg)), amp_(amp) {
  // The layers only take views of the parameter buffers; stand-in ranges of the right length serve.
  const vk::View stand_in{VK_NULL_HANDLE, 0, layout_.total_floats() * 4};
  const vk::View stand_in16{VK_NULL_HANDLE, 0, ops::half_bytes(layout_.total_floats())};
  build_layers(stand_in, stand_in, stand_in16, nullptr, false);
}

void Vit::build_layers(const vk::View& params, const vk::View& grads, const vk::View& params16,
                       const std::shared_ptr<GlobalFilterPlans>& fft_plans, bool keep_attention_probs) {
  for (int l = 0; l < cfg_.depth; ++l) {
    auto b = std::make_unique<Block>();
    b->prefix = "blocks." + std::to_string(l) + ".";
    const std::string& p = b->prefix;
    b->mixer = make_token_mixer(
        ctx_, MixerSetup{cfg_, layout_, p, params, grads, max_batch_, l, fft_plans, keep_attention_probs});
    b->fc1 = Linear(layout_, params, grads, p + "mlp.fc1");
    b->fc2 = Linear(layout_, params, grads, p + "mlp.fc2");
    b->n1w = param_view(params, layout_, p + "norm1.weight"), b->n1b = param_view(params, layout_, p + "norm1.bias");
    b->n2w = param_view(params, layout_, p + "norm2.weight"), b->n2b = param_view(params, layout_, p + "norm2.bias");
    b->dn1w = param_view(grads, layout_, p + "norm1.weight"), b->dn1b = param_view(grads, layout_, p + "norm1.bias");
    b->dn2w = param_view(grads, layout_, p + "norm2.weight"), b->dn2b = param_view(grads, layout_, p + "norm2.bias");
    if (amp_) {
      b->mixer->enable_f16(params16);
      b->fc1.enable_f16(params16);
      b->fc2.enable_f16(params16);
    }
    blocks_.push_back(std::move(b));
  }
  head_ = Linear(layout_, params, grads, "head");
  if (amp_) head_.enable_f16(params16);
}

void Vit::check_fits(uint64_t param_bytes) const {
  uint64_t heap = 0;
  for (const vk::MemoryHeapInfo& h : ctx_.info().heaps)
    if (h.device_local) heap = std::max(heap, h.bytes);
  const uint64_t needed = activation_bytes_ + 2 * param_bytes;
  if (heap == 0 || needed <= heap) return;
  const uint64_t per_image = std::max<uint64_t>(activation_bytes_ / max_batch_, 1);
  const uint64_t fits = heap > 2 * param_bytes ? (heap - 2 * param_bytes) / per_image : 0;
  throw OutOfMemoryError("model " + label() + " with batch " + std::to_string(max_batch_) + " needs " +
                         vk::format_bytes(needed) + " of device memory (activations " +
                         vk::format_bytes(activation_bytes_) + "), the device has " + vk::format_bytes(heap) +
                         ": use a batch of at most " + std::to_string(fits * 9 / 10));
}

std::pair<uint64_t, uint64_t> Vit::activation_plan(vk::Context& ctx, const VitConfig& cfg, uint32_t batch, bool amp) {
  // The constructor's counting pass over allocate(), so the plan cannot drift from the real arena.
  Vit shell(ctx, cfg, std::max<uint32_t>(batch, 1), amp, CountOnly{});
  ActivationAlloc count(ctx, nullptr);
  shell.allocate(count);
  return {count.bytes(), count.largest()};
}

void Vit::allocate(ActivationAlloc& a) {
  const uint64_t B = max_batch_, N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim, F = cfg_.mlp_dim;
  const uint64_t BN = B * N;
  patches_ = a.tensor(B * Np * cfg_.patch_dim(), "patches (B, Np, C*P*P)");
  x0_ = a.tensor(BN * D, "patch_embed out (B, N, D)");
  proj_ = a.scratch("patch_embed proj (B, Np, D)", B * Np * D);
  // Taken before the layers ask for it with their own sizes: the largest output gradient of a linear layer.
  if (amp_) Linear::reserve_output_grad_f16(a, std::max<uint64_t>({BN * 3 * D, BN * F, B * cfg_.num_classes}));
  vk::View in = x0_;
  for (auto& b : blocks_) {
    const std::string& p = b->prefix;
    b->in = in;
    b->ln1 = a.tensor(BN * D, p + "norm1 out (B, N, D)");
    b->mean1 = a.tensor(BN, p + "norm1 mean (B * N)");
    b->rstd1 = a.tensor(BN, p + "norm1 rstd (B * N)");
    b->mixer->allocate(a);
    b->mid = a.tensor(BN * D, p + "residual 1 (B, N, D)");
    b->ln2 = a.tensor(BN * D, p + "norm2 out (B, N, D)");
    b->mean2 = a.tensor(BN, p + "norm2 mean (B * N)");
    b->rstd2 = a.tensor(BN, p + "norm2 rstd (B * N)");
    b->pre = a.tensor(BN * F, p + "mlp.fc1 out (B, N, F)");
    b->hidden = a.tensor(BN * F, p + "mlp gelu out (B, N, F)");
    b->out = a.tensor(BN * D, p + "residual 2 (B, N, D)");
    b->fc1.allocate(a, BN, "(B, N, D)");
    b->fc2.allocate(a, BN, "(B, N, F)");
    b->y = cfg_.post_norm() ? b->ln2 : b->out;
    in = b->y;
  }
  xn_ = a.tensor(BN * D, "norm out (B, N, D)");
  mean_ = a.tensor(BN, "norm mean (B * N)");
  rstd_ = a.tensor(BN, "norm rstd (B * N)");
  pool_w_ = a.tensor(N, "pool weights (N)");
  if (!cfg_.learned_pos_embed()) {
    fixed_pos_ = a.tensor(N * D, "sincos pos_embed (N, D)");
    dpos_unused_ = a.tensor(N * D, "sincos pos_embed's unused gradient (N, D)");
  }
  pooled_ = a.tensor(B * D, "pooled (B, D)");
  logits_ = a.tensor(B * cfg_.num_classes, "logits (B, K)");
  dx_ = a.scratch("dx (B, N, D)", BN * D);
  dln_ = a.scratch("dnorm (B, N, D)", BN * D);
  dhidden_ = a.scratch("dhidden (B, N, F)", BN * F);
  dpre_ = a.scratch("dpre (B, N, F)", BN * std::max(F, D));  // also the mixer branch's gradient under drop path
  dpooled_ = a.scratch("dpooled (B, D)", B * D);
  dnorm_partials_ = a.scratch("layernorm partial sums", std::max<uint64_t>(ops::layernorm_backward_scratch_floats(ctx_, BN, D), 1));
  head_.allocate(a, B, "(B, D)");
}

vk::View Vit::params_view() const { return params_->view().slice(0, layout_.total_floats()); }
vk::View Vit::grads_view() const { return grads_->view().slice(0, layout_.total_floats()); }
vk::View Vit::param(const std::string& name) const { return param_view(params_view(), layout_, name); }
vk::View Vit::grad(const std::string& name) const { return param_view(grads_view(), layout_, name); }

void Vit::init(uint64_t seed) { write_params(vit_init_params(cfg_, layout_, seed)); }

std::vector<float> Vit::read_params() const {
  std::vector<float> flat(layout_.total_floats());
  ctx_.download(params_view(), flat.data(), flat.size() * 4);
  return flat;
}

std::vector<float> Vit::read_grads() const {
  std::vector<float> flat(layout_.total_floats());
  ctx_.download(grads_view(), flat.data(), flat.size() * 4);
  return flat;
}

void Vit::write_params(const std::vector<float>& flat) {
  if (flat.size() != layout_.total_floats())
    throw Error("model " + label() + ": write_params got " + std::to_string(flat.size()) + " floats, the layout has " +
                std::to_string(layout_.total_floats()));
  ctx_.upload(params_view(), flat.data(), flat.size() * 4);
}

vk::View Vit::attention_probs(int layer) const {
  if (layer < 0 || layer >= cfg_.depth)
    throw Error("model " + label() + ": no block " + std::to_string(layer) + " (depth " + std::to_string(cfg_.depth) + ")");
  if (cfg_.mixer_at(layer) != "attention")
    throw Error("model " + label() + ": block " + std::to_string(layer) + " is a " + cfg_.mixer_at(layer) +
                " layer and has no attention probabilities");
  const vk::View v = blocks_[layer]->mixer->attention_probs();
  if (v.size == 0)
    throw Error("internal: model " + label() + ": block " + std::to_string(layer) +
                " runs fused attention, which keeps no probabilities; build the model with keep_attention_probs");
  return v;
}

void Vit::set_drop_path(vk::Recorder& rec, const std::vector<float>& scales, uint32_t batch) {
  check_batch(batch, "drop path");
  const uint64_t count = uint64_t(cfg_.depth) * 2 * batch;
  if (scales.size() != count)
    throw Error("internal: model " + label() + ": " + std::to_string(scales.size()) +
                " drop path scales, needs depth x 2 x batch = " + std::to_string(count));
  if (!drop_scales_)
    drop_scales_ = std::make_unique<vk::Buffer>(ctx_, uint64_t(cfg_.depth) * 2 * max_batch_ * 4, vk::MemoryKind::device,
                                                "drop path scales");
  // vkCmdUpdateBuffer: the scales travel in the command buffer (no staging, no wait), at most
  // 65536 bytes a command.
  drop_host_ = scales;
  const vk::View all = drop_scales_->view();
  for (uint64_t at = 0; at < count * 4; at += 65536) {
    const uint64_t bytes = std::min<uint64_t>(65536, count * 4 - at);
    const vk::View part = all.bytes(at, bytes);
    rec.external({part}, "drop path scales", [&](VkCommandBuffer cb) {
      vkCmdUpdateBuffer(cb, part.buffer, part.offset, bytes, reinterpret_cast<const char*>(drop_host_.data()) + at);
    });
  }
  drop_batch_ = batch;
  drop_pending_ = true;
}

bool Vit::drops(int layer, int branch) const {
  if (!drop_active_) return false;
  const auto first = drop_host_.begin() + (2 * layer + branch) * int64_t(drop_batch_);
  return std::any_of(first, first + drop_batch_, [](float s) { return s != 1.0f; });
}

ops::DropPathShape Vit::drop_shape(int layer, int branch, uint32_t batch) const {
  ops::DropPathShape s;
  s.samples = batch;
  s.per_sample = uint64_t(cfg_.tokens()) * cfg_.dim;
  s.first_scale = uint64_t(2 * layer + branch) * batch;
  return s;
}

vk::View Vit::drop_branch_grad(vk::Recorder& rec, int layer, int branch, const vk::View& grad, const vk::View& scratch,
                               uint32_t batch) {
  if (!drops(layer, branch)) return grad;
  const ops::DropPathShape s = drop_shape(layer, branch, batch);
  const vk::View scaled = scratch.slice(0, s.elements());
  ops::drop_path_scale(rec, scaled, grad.slice(0, s.elements()), drop_scales_->view(), s);
  return scaled;
}

std::string Vit::label() const { return cfg_.name.empty() ? std::string("(custom ViT)") : cfg_.name; }

void Vit::check_batch(uint32_t batch, const char* what) const {
  if (batch == 0 || batch > max_batch_)
    throw Error("model " + label() + ": " + what + " batch " + std::to_string(batch) + " is outside 1.." +
                std::to_string(max_batch_) + " (max_batch)");
}

namespace {

// Calls fn(first, count) over image chunks whose patch-embedding tensors each fit one binding
// (the patch_embed kernel binds its whole token tensor).
template <class Fn>
void for_each_embed_chunk(const vk::Context& ctx, const VitConfig& cfg, uint32_t batch, Fn&& fn) {
  const uint64_t N = cfg.tokens(), Np = cfg.num_patches(), D = cfg.dim;
  const uint64_t per = ops::items_per_chunk(ctx, {N * D, Np * D, Np * uint64_t(cfg.patch_dim())});
  if (per == 0)
    throw Error("model: one image's patch embedding (" + std::to_string(N) + " tokens of width " + std::to_string(D) +
                ") does not fit one storage binding: use larger patches");
  for (uint64_t first = 0; first < batch; first += per) fn(first, std::min<uint64_t>(per, batch - first));
}

ops::PatchEmbedShape embed_shape(const VitConfig& cfg, uint64_t images) {
  ops::PatchEmbedShape s;
  s.B = static_cast<uint32_t>(images);
  s.Np = cfg.num_patches();
  s.CPP = cfg.patch_dim();
  s.D = cfg.dim;
  return s;
}

}  // namespace

// out = residual + branch(x): the branch's matmul adds the residual in its store, or, when the
// step drops paths on this branch, writes the branch to dln_ (backward scratch, free during the
// forward) and a separate pass adds it, scaled per image.
void Vit::add_branch(vk::Recorder& rec, int layer, int branch, uint32_t batch, const vk::View& out,
                     const vk::View& residual, const std::function<void(const vk::View& dst, const vk::View& add)>& run) {
  if (!drops(layer, branch)) {
    run(out, residual);
    return;
  }
  const ops::DropPathShape s = drop_shape(layer, branch, batch);
  const vk::View scratch = dln_.slice(0, s.elements());
  run(scratch, vk::View{});
  ops::drop_path_add(rec, out, residual, scratch, drop_scales_->view(), s);
}

// Pre-norm (timm): mid = in + mixer(norm1(in)); out = mid + mlp(norm2(mid)).
// Post-norm (model.norm post): ln1 = norm1(in + mixer(in)) (in mid before the norm);
// ln2 = norm2(ln1 + mlp(ln1)) (in out before the norm); the block's output y is ln2.
void Vit::forward_block(vk::Recorder& rec, int l, uint32_t batch, bool for_backward) {
  Block* b = blocks_[l].get();
  const uint32_t M = batch * cfg_.tokens(), D = cfg_.dim;
  const bool post = cfg_.post_norm();
  const vk::View pre = for_backward ? b->pre : vk::View{};  // fc1's pre-activation, for GELU's backward
  if (!post) ops::layernorm_forward(rec, b->ln1, b->mean1, b->rstd1, b->in, b->n1w, b->n1b, M, D, cfg_.ln_eps);
  const vk::View mixer_in = post ? b->in : b->ln1;
  add_branch(rec, l, 0, batch, b->mid, b->in,
             [&](const vk::View& dst, const vk::View& add) { b->mixer->forward(rec, dst, mixer_in, batch, add); });
  // ln1 (post) or ln2 (pre) is the MLP's input.
  const vk::View mlp_in = post ? b->ln1 : b->ln2;
  if (post) ops::layernorm_forward(rec, b->ln1, b->mean1, b->rstd1, b->mid, b->n1w, b->n1b, M, D, cfg_.ln_eps);
  else ops::layernorm_forward(rec, b->ln2, b->mean2, b->rstd2, b->mid, b->n2w, b->n2b, M, D, cfg_.ln_eps);
  // The GELU and the residual add ride in the matmuls' stores where the kernel allows.
  b->fc1.forward_gelu(rec, b->hidden, pre, mlp_in, M);
  const vk::View mlp_residual = post ? b->ln1 : b->mid;
  add_branch(rec, l, 1, batch, b->out, mlp_residual,
             [&](const vk::View& dst, const vk::View& add) { b->fc2.forward(rec, dst, b->hidden, M, add); });
  if (post) ops::layernorm_forward(rec, b->ln2, b->mean2, b->rstd2, b->out, b->n2w, b->n2b, M, D, cfg_.ln_eps);
}

void Vit::forward(vk::Recorder& rec, uint32_t batch, bool for_backward) {
  check_batch(batch, "forward");
  const uint32_t N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim;
  const uint64_t CPP = cfg_.patch_dim();
  const uint32_t M = batch * N;
  // The fp16 weight copy, once per forward (= once per training step): the weights changed since.
  // The one mixed-precision branch of the pass: the copy exists under amp only; the layers pick
  // their own precision.
  if (amp_) ops::cast_f32_to_f16(rec, params16_->view(), params_view(), layout_.total_floats());

  const vk::View pw = param("patch_embed.proj.weight"), pb = param("patch_embed.proj.bias");
  const vk::View cls = param("cls_token"), pos = cfg_.learned_pos_embed() ? param("pos_embed") : fixed_pos_;
  for_each_embed_chunk(ctx_, cfg_, batch, [&](uint64_t first, uint64_t n) {
    ops::patch_embed_forward(rec, x0_.slice(first * N * D, n * N * D), proj_.slice(first * Np * D, n * Np * D),
                             patches_.slice(first * Np * CPP, n * Np * CPP), pw, pb, cls, pos, embed_shape(cfg_, n));
  });

  if (drop_pending_ && for_backward && batch != drop_batch_)
    throw Error("internal: model forward of batch " + std::to_string(batch) + " after drop path scales for batch " +
                std::to_string(drop_batch_));
  drop_active_ = drop_pending_ && for_backward;
  drop_pending_ = false;
  // Under drop path a branch's output goes to dln_ (backward scratch, free during the forward) and
  // a separate pass adds it, scaled per image, to the residual stream.
  for (int l = 0; l < cfg_.depth; ++l) forward_block(rec, l, batch, for_backward);

  const vk::View x_last = blocks_.back()->y;
  ops::layernorm_forward(rec, xn_, mean_, rstd_, x_last, param("norm.weight"), param("norm.bias"), M, D, cfg_.ln_eps);
  // pooled[b] (1, D) = pool_w (1, N) x xn[b] (N, D); the weights are shared by every image.
  ops::MatmulShape s;
  s.M = 1;
  s.N = D;
  s.K = N;
  s.batch = batch;
  s.a.stride_outer = 0;
  s.b.stride_outer = uint64_t(N) * D;
  s.c.stride_outer = D;
  ops::matmul(rec, pooled_, pool_w_, xn_, s);
  head_.forward(rec, logits_, pooled_, batch);
}

// dx_ holds the gradient of the block's output and leaves with its input's. Each norm backward
// adds the gradient that reaches the norm's input to dx_, which is exactly the residual
// connection's share, so no separate residual backward is needed.
void Vit::backward_block_pre(vk::Recorder& rec, int layer, uint32_t batch) {
  Block& b = *blocks_[layer];
  const uint32_t M = batch * cfg_.tokens(), D = cfg_.dim;
  // Under drop path each branch sees dx scaled per image (dln_, then dpre_, are free for it);
  // the residual path keeps dx itself.
  const vk::View dmlp = drop_branch_grad(rec, layer, 1, dx_, dln_, batch);
  // The GELU's backward rides in the input-gradient matmul's stores where the kernel allows.
  b.fc2.backward_through_gelu(rec, dpre_, dmlp, b.pre, dhidden_, M);
  b.fc1.backward(rec, dln_, /*accumulate=*/false, dpre_, M);
  ops::layernorm_backward(rec, dx_, b.dn2w, b.dn2b, b.mean2, b.rstd2, b.mid, dln_, b.n2w, dnorm_partials_, M, D);
  const vk::View dmixer = drop_branch_grad(rec, layer, 0, dx_, dpre_, batch);
  rec.fill(dln_.slice(0, uint64_t(M) * D), 0.0f);
  b.mixer->backward(rec, dln_, dmixer, b.ln1, batch);
  ops::layernorm_backward(rec, dx_, b.dn1w, b.dn1b, b.mean1, b.rstd1, b.in, dln_, b.n1w, dnorm_partials_, M, D);
}

// Post-norm: the norms sit on the residual stream, so each is crossed first, into a zeroed dln_;
// that gradient is the residual's (copied to dx_) and, scaled in place under drop path, the
// branch's, whose input gradient the branch then adds to dx_.
void Vit::backward_block_post(vk::Recorder& rec, int layer, uint32_t batch) {
  Block& b = *blocks_[layer];
  const uint32_t M = batch * cfg_.tokens(), D = cfg_.dim;
  const vk::View dln = dln_.slice(0, uint64_t(M) * D), dx = dx_.slice(0, uint64_t(M) * D);
  rec.fill(dln, 0.0f);
  ops::layernorm_backward(rec, dln, b.dn2w, b.dn2b, b.mean2, b.rstd2, b.out, dx, b.n2w, dnorm_partials_, M, D);
  rec.copy(dln, dx);
  const vk::View dmlp = drop_branch_grad(rec, layer, 1, dln, dln, batch);
  b.fc2.backward_through_gelu(rec, dpre_, dmlp, b.pre, dhidden_, M);
  b.fc1.backward(rec, dx, /*accumulate=*/true, dpre_, M);
  rec.fill(dln, 0.0f);
  ops::layernorm_backward(rec, dln, b.dn1w, b.dn1b, b.mean1, b.rstd1, b.mid, dx, b.n1w, dnorm_partials_, M, D);
  rec.copy(dln, dx);
  const vk::View dmixer = drop_branch_grad(rec, layer, 0, dln, dln, batch);
  b.mixer->backward(rec, dx, dmixer, b.in, batch);
}

void Vit::backward(vk::Recorder& rec, uint32_t batch, const vk::View& dlogits,
                   const std::function<void(uint64_t first)>& grads_ready) {
  check_batch(batch, "backward");
  const uint32_t N = cfg_.tokens(), Np = cfg_.num_patches(), D = cfg_.dim, K = cfg_.num_classes;
  const uint64_t CPP = cfg_.patch_dim();
  const uint32_t M = batch * N;
  if (dlogits.size < uint64_t(batch) * K * 4)
    throw Error("internal: model backward: dlogits holds " + std::to_string(dlogits.size / 4) + " floats, needs " +
                std::to_string(uint64_t(batch) * K));

  // Frozen tensors (set_frozen): the backward pass ends where nothing below needs a gradient.
  const int lowest = lowest_trainable_;
  const int depth = static_cast<int>(blocks_.size());
  head_.backward(rec, lowest <= depth + 1 ? dpooled_ : vk::View{}, /*accumulate=*/false,
                 dlogits.slice(0, uint64_t(batch) * K), batch);
  if (lowest > depth + 1) {  // a linear probe: the head's gradients are all there is
    if (grads_ready) grads_ready(0);
    return;
  }
  // dxn[b] (N, D) = pool_w^T (N, 1) x dpooled[b] (1, D): overwrites every row, zero where the pool ignores a token.
  ops::MatmulShape s;
  s.M = N;
  s.N = D;
  s.K = 1;
  s.trans_a = true;
  s.batch = batch;
  s.a.stride_outer = 0;
  s.b.stride_outer = D;
  s.c.stride_outer = uint64_t(N) * D;
  ops::matmul(rec, dln_, pool_w_, dpooled_, s);
  rec.fill(dx_.slice(0, uint64_t(M) * D), 0.0f);
  ops::layernorm_backward(rec, dx_, grad("norm.weight"), grad("norm.bias"), mean_, rstd_, blocks_.back()->y, dln_,
                          param("norm.weight"), dnorm_partials_, M, D);
  if (grads_ready) grads_ready(layout_.at("norm.weight").offset);

  // dx_ holds the gradient of each block's output; every norm backward adds the gradient that
  // reaches the block input through its branch.
  // Block i runs while some tensor at position <= 1 + i trains (position: set_frozen).
  for (auto it = blocks_.rbegin(); it != blocks_.rend() - std::max(lowest - 1, 0); ++it) {
    const int layer = static_cast<int>(blocks_.rend() - it) - 1;
    if (cfg_.post_norm()) backward_block_post(rec, layer, batch);
    else backward_block_pre(rec, layer, batch);
    // A block's tensors start with its norm1 (vit_param_layout).
    if (grads_ready) grads_ready(layout_.at("blocks." + std::to_string(layer) + ".norm1.weight").offset);
  }

  const vk::View dpw = grad("patch_embed.proj.weight"), dpb = grad("patch_embed.proj.bias");
  // A fixed sincos table takes no gradient: the patch embedding's backward writes it aside.
  const vk::View dcls = grad("cls_token"), dpos = cfg_.learned_pos_embed() ? grad("pos_embed") : dpos_unused_;
  if (lowest == 0)
    for_each_embed_chunk(ctx_, cfg_, batch, [&](uint64_t first, uint64_t n) {
      ops::patch_embed_backward(rec, dpw, dpb, dcls, dpos, proj_.slice(first * Np * D, n * Np * D),
                                dx_.slice(first * N * D, n * N * D), patches_.slice(first * Np * CPP, n * Np * CPP),
                                embed_shape(cfg_, n));
    });
  if (grads_ready) grads_ready(0);
}

void Vit::set_frozen(const std::vector<bool>& frozen) {
  if (frozen.size() != params().size())
    throw Error("internal: Vit::set_frozen: " + std::to_string(frozen.size()) + " flags for " +
                std::to_string(params().size()) + " tensors");
  const int depth = static_cast<int>(blocks_.size());
  auto is_frozen = [&](const std::string& name) {
    for (size_t i = 0; i < params().size(); ++i)
      if (params()[i].name == name) return bool(frozen[i]);
    return false;
  };
  // Position from the input up: 0 embeddings, 1 + i block i, depth + 1 final norm, depth + 2 head.
  lowest_trainable_ = depth + 3;
  for (size_t i = params().size(); i-- > 0;) {
    if (frozen[i]) continue;
    const std::string& name = params()[i].name;
    int position = depth + 2;
    if (name.rfind("blocks.", 0) == 0) position = 1 + std::stoi(name.substr(7));
    else if (name.rfind("norm.", 0) == 0) position = depth + 1;
    else if (name.rfind("head.", 0) != 0) position = 0;  // cls_token, pos_embed, patch_embed.*
    lowest_trainable_ = std::min(lowest_trainable_, position);
  }
  head_.set_frozen(is_frozen("head.weight"), is_frozen("head.bias"));
  for (auto& b : blocks_) {
    b->fc1.set_frozen(is_frozen(b->prefix + "mlp.fc1.weight"), is_frozen(b->prefix + "mlp.fc1.bias"));
    b->fc2.set_frozen(is_frozen(b->prefix + "mlp.fc2.weight"), is_frozen(b->prefix + "mlp.fc2.bias"));
    b->mixer->set_frozen(is_frozen);
  }
}

}  // namespace vkvit::model
