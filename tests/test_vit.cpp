// The ViT model: config validation and presets, parameter layout and counts (timm's numbers),
// timm-style init statistics, the double-precision reference model against finite differences,
// and the GPU model's logits and every parameter gradient against the reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>

#include "base/error.h"
#include "harness.h"
#include "model/vit.h"
#include "model/vit_ref.h"
#include "ops/attention.h"

using namespace vkvit;
using namespace vkvit::test;
using model::ParamLayout;
using model::VitConfig;

namespace {

// Image 8, patch 4 (4 patches + cls), 2 channels, width 12 in 3 heads, 2 blocks, MLP 20, 5 classes.
VitConfig tiny_config(const std::string& pool) {
  VitConfig c;
  c.name = "vit_test_tiny";
  c.image_size = 8, c.patch_size = 4, c.in_chans = 2, c.dim = 12, c.depth = 2, c.heads = 3, c.mlp_dim = 20;
  c.num_classes = 5;
  c.pool = pool;
  return c;
}

// Widths that no vector width or alignment divides: 10 tokens of width 15 (heads of 5), MLP 19, 7 classes.
VitConfig odd_config(const std::string& pool) {
  VitConfig c;
  c.name = "vit_test_odd";
  c.image_size = 12, c.patch_size = 4, c.in_chans = 1, c.dim = 15, c.depth = 2, c.heads = 3, c.mlp_dim = 19;
  c.num_classes = 7;
  c.pool = pool;
  return c;
}

std::vector<double> slice(const std::vector<double>& flat, const model::ParamInfo& p) {
  return {flat.begin() + p.offset, flat.begin() + p.offset + p.count};
}
std::vector<float> slice(const std::vector<float>& flat, const model::ParamInfo& p) {
  return {flat.begin() + p.offset, flat.begin() + p.offset + p.count};
}

void require_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    FAIL("expected an error mentioning '" << needle << "'");
  } catch (const Error& e) {
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("vit config validation names the bad field", "[vit]") {
  for (const std::string& name : VitConfig::preset_names()) VitConfig::preset(name).validate();
  require_error([] { VitConfig::preset("vit_huge_patch99"); }, "vit_tiny_patch16_224");
  auto bad = [](auto edit, const std::string& needle) {
    VitConfig c = tiny_config("cls");
    edit(c);
    require_error([&] { c.validate(); }, needle);
  };
  bad([](VitConfig& c) { c.image_size = 0; }, "image_size");
  bad([](VitConfig& c) { c.patch_size = -4; }, "patch_size");
  bad([](VitConfig& c) { c.in_chans = 0; }, "in_chans");
  bad([](VitConfig& c) { c.dim = 0; }, "dim");
  bad([](VitConfig& c) { c.depth = 0; }, "depth");
  bad([](VitConfig& c) { c.heads = 0; }, "heads");
  bad([](VitConfig& c) { c.mlp_dim = 0; }, "mlp_dim");
  bad([](VitConfig& c) { c.num_classes = 0; }, "num_classes");
  bad([](VitConfig& c) { c.heads = 5; }, "heads");        // 12 % 5
  bad([](VitConfig& c) { c.patch_size = 3; }, "patch_size");  // 8 % 3
  bad([](VitConfig& c) { c.pool = "max"; }, "pool");
  bad([](VitConfig& c) { c.mixer = "mlp"; }, "mixer");
  bad([](VitConfig& c) { c.ln_eps = 0.0f; }, "ln_eps");
}

TEST_CASE("vit parameter counts match timm and the layout is aligned", "[vit]") {
  // timm: vit_tiny_patch16_224 5.72M, vit_small_patch16_224 22.05M, vit_base_patch16_224 86.57M
  // (sum(p.numel() for p in timm.create_model(name).parameters()) with 1000 classes).
  CHECK(model::vit_param_layout(VitConfig::preset("vit_tiny_patch16_224")).param_count() == 5717416);
  CHECK(model::vit_param_layout(VitConfig::preset("vit_small_patch16_224")).param_count() == 22050664);
  CHECK(model::vit_param_layout(VitConfig::preset("vit_base_patch16_224")).param_count() == 86567656);
  CHECK(VitConfig::preset("vit_tiny_patch16_224").tokens() == 197);
  CHECK(VitConfig::preset("vit_fmnist_tiny").patch_dim() == 196);
  CHECK(model::vit_param_layout(VitConfig::preset("vit_fmnist_tiny")).param_count() == 292490);
  CHECK(VitConfig::preset("vit_fmnist_tiny").pool == "mean");

  const ParamLayout L = model::vit_param_layout(VitConfig::preset("vit_tiny_patch16_224"));
  CHECK(L.params().size() == 4 + 12 * 12 + 4);
  CHECK(L.params().front().name == "cls_token");
  CHECK(L.at("blocks.11.attn.qkv.weight").shape == std::vector<int64_t>{576, 192});
  CHECK(L.at("patch_embed.proj.weight").shape == std::vector<int64_t>{192, 3, 16, 16});
  CHECK(L.at("pos_embed").shape == std::vector<int64_t>{1, 197, 192});
  uint64_t end = 0;
  for (const model::ParamInfo& p : L.params()) {
    INFO(p.name);
    CHECK(p.offset % ParamLayout::kAlignFloats == 0);
    CHECK(p.offset >= end);
    end = p.offset + p.count;
    // timm: weights decay; biases, norms, cls_token and pos_embed do not.
    const bool weight = p.shape.size() >= 2 && p.name != "cls_token" && p.name != "pos_embed";
    CHECK(p.decay == weight);
  }
  CHECK(end == L.total_floats());
}

TEST_CASE("vit init follows timm statistics", "[vit]") {
  const VitConfig cfg = VitConfig::preset("vit_tiny_patch16_224");
  const ParamLayout L = model::vit_param_layout(cfg);
  const std::vector<float> flat = model::vit_init_params(cfg, L, 42);
  auto stats = [&](const std::string& name) {
    const model::ParamInfo& p = L.at(name);
    double s = 0, s2 = 0, mx = 0;
    for (uint64_t i = 0; i < p.count; ++i) {
      const double v = flat[p.offset + i];
      s += v, s2 += v * v, mx = std::max(mx, std::abs(v));
    }
    const double mean = s / p.count;
    return std::array<double, 3>{mean, std::sqrt(s2 / p.count - mean * mean), mx};
  };
  // trunc_normal(.02): with n >= 37k samples the sample std is within ~1% of .02 (3 sigma ~1.1%).
  for (const char* name : {"pos_embed", "blocks.0.attn.qkv.weight", "blocks.5.attn.proj.weight",
                           "blocks.11.mlp.fc1.weight", "blocks.3.mlp.fc2.weight", "head.weight"}) {
    INFO(name);
    const auto st = stats(name);
    CHECK(std::abs(st[0]) < 1e-3);
    CHECK(std::abs(st[1] - 0.02) < 0.02 * 0.02);
    CHECK(st[2] < 0.02 * 6);  // no wild values
  }
  const auto cls = stats("cls_token");  // normal(1e-6)
  CHECK(cls[2] > 0.0);
  CHECK(cls[2] < 1e-5);
  // patch_embed: PyTorch Conv2d default, uniform(+-1/sqrt(768)): std = bound / sqrt(3).
  const double bound = 1.0 / std::sqrt(768.0);
  const auto pw = stats("patch_embed.proj.weight");
  CHECK(pw[2] <= bound);
  CHECK(std::abs(pw[1] - bound / std::sqrt(3.0)) < 0.02 * bound);
  CHECK(stats("patch_embed.proj.bias")[2] <= bound);
  for (const model::ParamInfo& p : L.params()) {
    const bool norm_weight = p.name == "norm.weight" || p.name.find("norm1.weight") != std::string::npos ||
                             p.name.find("norm2.weight") != std::string::npos;
    const bool zero = p.name != "patch_embed.proj.bias" && p.shape.size() == 1 && !norm_weight;
    if (!zero && !norm_weight) continue;
    INFO(p.name);
    for (uint64_t i = 0; i < p.count; ++i) REQUIRE(flat[p.offset + i] == (norm_weight ? 1.0f : 0.0f));
  }
  // Padding stays zero; the same seed gives the same weights, another seed others.
  uint64_t end = 0, nonzero_padding = 0;
  for (const model::ParamInfo& p : L.params()) {
    for (uint64_t i = end; i < p.offset; ++i) nonzero_padding += flat[i] != 0.0f;
    end = p.offset + p.count;
  }
  CHECK(nonzero_padding == 0);
  CHECK(model::vit_init_params(cfg, L, 42) == flat);
  CHECK(model::vit_init_params(cfg, L, 43) != flat);
}

namespace {

// Finite differences of the reference model at one element of every tensor plus 24 anywhere.
void check_ref_gradients(const VitConfig& cfg, uint32_t seed) {
  model::VitRef ref(cfg);
  const ParamLayout& L = ref.layout();
  const uint32_t B = 2;
  const auto params = to_double(random_params(L, seed));
  const auto patches = to_double(random_floats(B * cfg.num_patches() * cfg.patch_dim(), seed + 1));
  const auto w = to_double(random_floats(B * cfg.num_classes, seed + 2));  // L = sum(logits * w)
  ref.forward(params, patches, B);
  std::vector<double> grads(L.total_floats(), 0.0);
  ref.backward(params, w, grads);

  std::mt19937 rng(seed + 3);
  std::vector<uint64_t> picks;
  for (const model::ParamInfo& p : L.params()) picks.push_back(p.offset + rng() % p.count);
  for (int i = 0; i < 24; ++i) {
    const model::ParamInfo& p = L.params()[rng() % L.params().size()];
    picks.push_back(p.offset + rng() % p.count);
  }
  std::vector<double> analytic, numeric;
  model::VitRef probe(cfg);
  for (uint64_t i : picks) {
    auto x = params;
    const double eps = 1e-5;
    x[i] = params[i] + eps;
    const double fp = dot(probe.forward(x, patches, B), w);
    x[i] = params[i] - eps;
    const double fm = dot(probe.forward(x, patches, B), w);
    analytic.push_back(grads[i]);
    numeric.push_back((fp - fm) / (2 * eps));
  }
  // Central differences in double with eps = 1e-5: truncation ~eps^2 * |f'''| ~ 1e-10, rounding
  // ~1e-16 * |L| / eps ~ 1e-11; gradients here are O(0.01..1).
  require_gradient_close(analytic, numeric, 1e-8, 1e-6, "vit reference gradient, " + cfg.name + " pool " + cfg.pool);
}

// tiny_config with global filters on a 3x3 grid: in every block, or per block as listed.
VitConfig global_filter_config(const std::string& mixer, const std::string& pool) {
  VitConfig c = tiny_config(pool);
  c.name = "vit_test_gf";
  c.image_size = 12;  // 3x3 patches of 4
  c.mixer = mixer;
  return c;
}

}  // namespace

TEST_CASE("vit reference gradients match finite differences", "[vit][ref]") {
  check_ref_gradients(tiny_config("cls"), 900);
  check_ref_gradients(tiny_config("mean"), 904);
  check_ref_gradients(global_filter_config("global_filter", "mean"), 910);
  check_ref_gradients(global_filter_config("global_filter,attention", "cls"), 920);
}

namespace {

// Forward and backward of `cfg` on the GPU and in the reference with the same random weights,
// patches, dlogits and starting gradients (backward must accumulate into them); the inference
// forward (no pre-activations kept) gives the training forward's logits bit for bit.
void check_vit_gpu(const VitConfig& cfg, uint32_t max_batch, uint32_t batch, uint32_t seed, double logit_atol,
                   double grad_atol, double rtol) {
  model::Vit vit(ctx(), cfg, max_batch);
  const ParamLayout& L = vit.layout();
  const uint64_t K = cfg.num_classes;
  const auto params = random_params(L, seed);
  const auto patches = random_floats(batch * cfg.num_patches() * cfg.patch_dim(), seed + 1);
  const auto dlogits = random_floats(batch * K, seed + 2);
  auto grads0 = random_floats(L.total_floats(), seed + 3, -0.1f, 0.1f);
  vit.write_params(params);
  ctx().upload(vit.grads_view(), grads0.data(), grads0.size() * 4);
  ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
  DeviceTensor d_dlogits(dlogits);
  std::vector<float> inference_logits(batch * K);
  {
    vk::Recorder rec(ctx());
    vit.forward(rec, batch, /*for_backward=*/false);
    rec.submit_and_wait();
    ctx().download(vit.logits(), inference_logits.data(), inference_logits.size() * 4);
  }
  vk::Recorder rec(ctx());
  vit.forward(rec, batch);
  vit.backward(rec, batch, d_dlogits.view());
  rec.submit_and_wait();
  std::vector<float> logits(batch * K);
  ctx().download(vit.logits(), logits.data(), logits.size() * 4);
  const auto grads = vit.read_grads();

  model::VitRef ref(cfg);
  const auto pd = to_double(params);
  const auto ref_logits = ref.forward(pd, to_double(patches), batch);
  auto ref_grads = to_double(grads0);
  ref.backward(pd, to_double(dlogits), ref_grads);

  if (std::getenv("VKVIT_VIT_VERBOSE")) {
    auto worst = [](const std::vector<float>& a, const std::vector<double>& b) {
      double e = 0, m = 0;
      for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - b[i])), m = std::max(m, std::abs(b[i]));
      return std::array<double, 2>{e, m};
    };
    auto wl = worst(logits, ref_logits);
    std::printf("%s pool %s: logits err %.2e (max |ref| %.2e)\n", cfg.name.c_str(), cfg.pool.c_str(), wl[0], wl[1]);
    for (const model::ParamInfo& p : L.params()) {
      auto wg = worst(slice(grads, p), slice(ref_grads, p));
      std::printf("  d%-28s err %.2e (max |ref| %.2e)\n", p.name.c_str(), wg[0], wg[1]);
    }
  }
  CHECK(inference_logits == logits);
  require_close(logits, ref_logits, logit_atol, rtol, cfg.name + " logits, pool " + cfg.pool);
  for (const model::ParamInfo& p : L.params())
    require_close(slice(grads, p), slice(ref_grads, p), grad_atol, rtol,
                  cfg.name + " d" + p.name + ", pool " + cfg.pool);
}

}  // namespace

TEST_CASE("vit forward and backward on the GPU match the reference", "[vit][gpu]") {
  // fp32 through two blocks of O(1) activations (LayerNorm keeps them there) against double: each
  // matmul adds a few ulp of its K-term sums. Measured on lavapipe (VKVIT_VIT_VERBOSE=1 prints
  // the worst error per tensor): logits <= 9e-7 abs with |logit| <= 2; gradients, which chain
  // ~20 ops back to patch_embed, <= 1.1e-6 abs with |grad| <= 3. About 5x margin below; a missing
  // or doubled term (a forgotten accumulate, a wrong pool weight) errs by > 1e-2.
  for (const std::string pool : {"cls", "mean"}) {
    INFO("pool " << pool);
    check_vit_gpu(tiny_config(pool), 3, 2, 1000, 5e-6, 5e-6, 1e-5);  // batch 2 of max 3
  }
}

TEST_CASE("vit on the GPU matches the reference with odd widths", "[vit][gpu]") {
  // D = 15, d = 5, F = 19, N = 10: rows and per-image tensors start off every vector width and
  // storage alignment; same error budget as above.
  for (const std::string pool : {"cls", "mean"}) {
    INFO("pool " << pool);
    check_vit_gpu(odd_config(pool), 3, 3, 1100, 5e-6, 5e-6, 1e-5);
  }
}

TEST_CASE("vit with fused and unfused attention on the GPU matches the reference", "[vit][gpu]") {
  // Width 32 in 2 heads of 16 (the fused kernels' smallest head width), 17 tokens as in the older
  // Fashion-MNIST model; each path forced with Tuning::attention (CPU drivers default to fused,
  // GPUs to unfused). Same error budget.
  VitConfig c = tiny_config("cls");
  c.image_size = 16, c.patch_size = 4, c.dim = 32, c.heads = 2, c.mlp_dim = 40;
  for (vk::AttentionPath path : {vk::AttentionPath::fused, vk::AttentionPath::unfused}) {
    DYNAMIC_SECTION((path == vk::AttentionPath::fused ? "fused" : "unfused")) {
      ScopedTuning attention([&](vk::Tuning& k) { k.attention = path; });
      const std::string why = ops::attention_fused_unsupported(ctx().info());
      if (path == vk::AttentionPath::fused && !why.empty()) {
        // Forcing it where it cannot run is one clear error naming the device's subgroup size.
        REQUIRE_THROWS_WITH(model::Vit(ctx(), c, 3), Catch::Contains("VKVIT_ATTENTION=fused: " + why));
        skipped_because(why);
      } else {
        check_vit_gpu(c, 3, 3, 1200, 5e-6, 5e-6, 1e-5);
      }
    }
  }
}

TEST_CASE("vit with the GPU kernels (tiled matmul with its epilogues, unfused attention) matches the reference",
          "[vit][gpu]") {
  // What a GPU runs by default, forced on this device: both tiles (the CPU drivers' 32 x 32 and
  // the GPUs' 64 x 64), the tiny and the odd widths. Same error budget.
  ScopedTuning gpu_paths([](vk::Tuning& k) {
    k.matmul_kernel = "tiled";
    k.attention = vk::AttentionPath::unfused;
  });
  for (const NamedTile& tile : kTiledTiles) {
    DYNAMIC_SECTION(tile.name) {
      ScopedTuning t([&](vk::Tuning& k) { k.matmul_tile = tile.tile; });
      check_vit_gpu(tiny_config("cls"), 3, 2, 1300, 5e-6, 5e-6, 1e-5);
      check_vit_gpu(odd_config("mean"), 3, 3, 1310, 5e-6, 5e-6, 1e-5);
    }
  }
}

TEST_CASE("forced fused attention on a head width without fused kernels is a clear error", "[vit][gpu]") {
  // Head width 12 (24 in 2 heads): the fused kernels take 16, 32 and 64. Another value of
  // VKVIT_ATTENTION than fused or unfused fails earlier, in Tuning::from_env (test_tuning.cpp).
  ScopedTuning fused([](vk::Tuning& k) { k.attention = vk::AttentionPath::fused; });
  VitConfig c = tiny_config("cls");
  c.image_size = 16, c.patch_size = 4, c.dim = 24, c.heads = 2, c.mlp_dim = 40;
  REQUIRE_THROWS_WITH(model::Vit(ctx(), c, 2), Catch::Contains("VKVIT_ATTENTION=fused: no fused attention kernel for head "
                                                               "width 12"));
}

TEST_CASE("vit with global-filter blocks on the GPU matches the reference", "[vit][gpu][global_filter]") {
  // A 3x3 grid (odd) with every block a global filter, and a hybrid on a 4x4 grid (even) whose
  // attention block reads the cls token. Same error budget as the attention model.
  check_vit_gpu(global_filter_config("global_filter", "mean"), 3, 2, 1300, 5e-6, 5e-6, 1e-5);
  VitConfig hybrid = global_filter_config("global_filter,attention", "cls");
  hybrid.image_size = 16;
  check_vit_gpu(hybrid, 2, 2, 1310, 5e-6, 5e-6, 1e-5);
}

TEST_CASE("vit init on the GPU is timm init and survives a round trip", "[vit][gpu]") {
  const VitConfig cfg = tiny_config("cls");
  model::Vit vit(ctx(), cfg, 2);
  CHECK(vit.param_count() == vit.layout().param_count());
  CHECK(vit.params_view().size == vit.layout().total_floats() * 4);
  vit.init(7);
  CHECK(vit.read_params() == model::vit_init_params(cfg, vit.layout(), 7));
  for (const model::ParamInfo& p : vit.params())
    CHECK(vit.param(p.name).offset % ctx().info().min_storage_offset_alignment == 0);
  CHECK(vit.activation_bytes() > 0);
}

TEST_CASE("vit refuses batches and shapes it cannot run", "[vit][gpu]") {
  model::Vit vit(ctx(), tiny_config("cls"), 2);
  vk::Recorder rec(ctx());
  require_error([&] { vit.forward(rec, 3); }, "max_batch");
  require_error([&] { vit.write_params(std::vector<float>(5)); }, "write_params");
  // 65537 tokens: one image's attention probabilities alone are 16 GiB.
  VitConfig huge;
  huge.name = "vit_test_huge_tokens";
  huge.image_size = 1024, huge.patch_size = 4, huge.in_chans = 1, huge.dim = 8, huge.depth = 1, huge.heads = 1;
  huge.mlp_dim = 8, huge.num_classes = 2;
  require_error([&] { model::Vit v(ctx(), huge, 1); }, "attention");
  // ViT-S at batch 100000 needs terabytes of activations: a clear error with a batch to use.
  try {
    model::Vit v(ctx(), VitConfig::preset("vit_small_patch16_224"), 100000);
    FAIL("expected OutOfMemoryError");
  } catch (const OutOfMemoryError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("batch of at most") != std::string::npos);
  }
}

// Timing of one training step's forward and backward; not part of the suite (hidden tag):
//   vkvit_tests "[vit-bench]"   (VKVIT_VIT_BENCH_MODEL / _BATCH choose another preset and batch)
TEST_CASE("vit forward and backward timing", "[.][vit-bench]") {
  const char* model_env = std::getenv("VKVIT_VIT_BENCH_MODEL");
  const char* batch_env = std::getenv("VKVIT_VIT_BENCH_BATCH");
  const VitConfig cfg = VitConfig::preset(model_env ? model_env : "vit_fmnist_tiny");
  const uint32_t B = batch_env ? static_cast<uint32_t>(std::atoi(batch_env)) : 64;
  model::Vit vit(ctx(), cfg, B);
  vit.init(1);
  const auto patches = random_floats(uint64_t(B) * cfg.num_patches() * cfg.patch_dim(), 5);
  ctx().upload(vit.patches_input(), patches.data(), patches.size() * 4);
  DeviceTensor dlogits(random_floats(uint64_t(B) * cfg.num_classes, 6));
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  double fwd = 1e30, bwd = 1e30;
  for (int rep = 0; rep < 4; ++rep) {  // the first run builds pipelines
    vk::Recorder rec(ctx());
    auto t0 = clock::now();
    vit.forward(rec, B);
    rec.submit_and_wait();
    auto t1 = clock::now();
    rec.fill(vit.grads_view(), 0.0f);
    vit.backward(rec, B, dlogits.view());
    rec.submit_and_wait();
    auto t2 = clock::now();
    if (rep > 0) fwd = std::min(fwd, ms(t1 - t0)), bwd = std::min(bwd, ms(t2 - t1));
  }
  const double gflop = double(cfg.flops_per_image()) * B * 1e-9;
  std::printf("%s batch %u: forward %.1f ms (%.2f GFLOP/s), backward %.1f ms (%.2f GFLOP/s); %s activations, %llu params\n",
              cfg.name.c_str(), B, fwd, gflop / fwd * 1e3, bwd, 2 * gflop / bwd * 1e3,
              vk::format_bytes(vit.activation_bytes()).c_str(), (unsigned long long)vit.param_count());
}

namespace {
VitConfig sincos_config(const std::string& pool) {
  VitConfig c = tiny_config(pool);  // width 12: three frequencies per axis
  c.name = "vit_test_sincos";
  c.image_size = 12;  // a 3x3 grid, so rows and columns differ
  c.pos_embed = "sincos";
  return c;
}
}  // namespace

TEST_CASE("vit with a fixed sincos position embedding: reference gradients match finite differences", "[vit][ref]") {
  const VitConfig c = sincos_config("cls");
  // Not a parameter: the layout is the learned model's less pos_embed's (N, D).
  VitConfig learned = c;
  learned.pos_embed = "learned";
  CHECK_FALSE(model::vit_param_layout(c).has("pos_embed"));
  CHECK(model::vit_param_layout(learned).param_count() - model::vit_param_layout(c).param_count() ==
        uint64_t(c.tokens()) * c.dim);
  check_ref_gradients(c, 930);
  check_ref_gradients(sincos_config("mean"), 934);
}

TEST_CASE("vit with a fixed sincos position embedding on the GPU matches the reference", "[vit][gpu]") {
  for (const std::string pool : {"cls", "mean"}) {
    INFO("pool " << pool);
    check_vit_gpu(sincos_config(pool), 3, 2, 1020, 5e-6, 5e-6, 1e-5);
  }
}

namespace {
VitConfig post_norm_config(const std::string& pool, const std::string& mixer = "attention") {
  VitConfig c = tiny_config(pool);
  c.name = "vit_test_post_norm";
  c.image_size = 12;  // 3x3 patches: the global filter needs a grid
  c.norm = "post";
  c.mixer = mixer;
  return c;
}
}  // namespace

TEST_CASE("vit with post-norm blocks: reference gradients match finite differences", "[vit][ref]") {
  check_ref_gradients(post_norm_config("cls"), 940);
  check_ref_gradients(post_norm_config("mean", "global_filter,attention"), 944);
}

TEST_CASE("vit with post-norm blocks on the GPU matches the reference", "[vit][gpu]") {
  for (const std::string pool : {"cls", "mean"}) {
    INFO("pool " << pool);
    check_vit_gpu(post_norm_config(pool), 3, 2, 1030, 5e-6, 5e-6, 1e-5);
  }
  check_vit_gpu(post_norm_config("mean", "global_filter,attention"), 3, 3, 1040, 5e-6, 5e-6, 1e-5);
}
