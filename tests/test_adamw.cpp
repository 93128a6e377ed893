// adamw: the reference against the closed form of the first step, the decay mask and timm's decay
// rule, and the GPU update against the reference over five steps on uneven tensors, with and
// without clipping, plus a step skipped for non-finite gradients.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>

#include "base/error.h"
#include "harness.h"
#include "ops/adamw.h"
#include "ops/grad_norm.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

struct Tensor {
  std::string name;
  size_t ndim;
  uint64_t count;
  float grad_scale;  // some tensors get tiny gradients, where eps matters
};

// A ViT-like slice of the flat buffer: 100003 floats in uneven tensors, decayed and not.
const std::vector<Tensor> kTensors = {
    {"cls_token", 3, 13, 1.0f},
    {"pos_embed", 3, 127, 1.0f},
    {"patch_embed.proj.weight", 4, 4099, 1.0f},
    {"patch_embed.proj.bias", 1, 13, 1.0f},
    {"blocks.0.norm1.weight", 1, 127, 1e-7f},
    {"blocks.0.attn.qkv.weight", 2, 50001, 1.0f},
    {"blocks.0.attn.qkv.bias", 1, 39, 1.0f},
    {"blocks.0.mlp.fc1.weight", 2, 45000, 1e-7f},
    {"head.weight", 2, 583, 3.0f},
    {"head.bias", 1, 1, 1.0f},
};

struct Layout {
  std::vector<ops::ParamRange> ranges;
  std::vector<uint8_t> decay;  // (n) per-element mask for the reference
  std::vector<float> grad_scale;
  uint64_t n = 0;
};

Layout make_layout() {
  Layout l;
  for (const Tensor& t : kTensors) {
    const bool d = ops::adamw_decays(t.name, t.ndim);
    l.ranges.push_back({l.n, t.count, d});
    l.decay.insert(l.decay.end(), t.count, d ? 1 : 0);
    l.grad_scale.insert(l.grad_scale.end(), t.count, t.grad_scale);
    l.n += t.count;
  }
  return l;
}

std::vector<float> mask_bits(const std::vector<uint32_t>& mask) {
  std::vector<float> bits(mask.size());
  std::memcpy(bits.data(), mask.data(), mask.size() * 4);
  return bits;
}

enum class Clip { none, inactive, active };

void check_steps(Clip clip, uint32_t seed) {
  const Layout l = make_layout();
  REQUIRE(l.n == 100003);
  ops::AdamWHyper h;
  h.lr = 1e-2;  // large enough that five updates move parameters well past fp32 rounding
  h.weight_decay = 0.05;
  auto p0 = random_floats(l.n, seed);
  DeviceTensor params(p0), m(l.n), v(l.n), grads(l.n), mask(mask_bits(ops::adamw_decay_mask(l.ranges, l.n)));
  DeviceTensor result(ops::kGradNormFloats), scratch(ops::grad_norm_scratch_floats(ctx(), {grads.view()}));
  std::vector<double> rp = to_double(p0), rm(l.n, 0.0), rv(l.n, 0.0);

  for (uint64_t t = 1; t <= 5; ++t) {
    auto g = random_floats(l.n, seed + uint32_t(t));
    for (uint64_t i = 0; i < l.n; ++i) g[i] *= l.grad_scale[i];
    grads.write(g);
    auto gd = to_double(g);
    const double norm = ops::ref::grad_norm({{gd.data(), l.n}});  // ~140
    // Active: clip to a third of the norm. Inactive: a max_norm the norm never reaches (coefficient 1).
    const float max_norm = clip == Clip::active ? float(norm / 3) : 1e6f;

    vk::Recorder rec(ctx());
    if (clip != Clip::none) ops::grad_norm(rec, result.view(), scratch.view(), {grads.view()}, max_norm);
    ops::adamw_step(rec, params.view(), m.view(), v.view(), grads.view(),
                    clip == Clip::none ? vk::View{} : result.view(), mask.view(), l.n, h, t);
    rec.submit_and_wait();

    const double coef = clip == Clip::none ? 1.0 : ops::ref::clip_coefficient(norm, max_norm);
    if (clip == Clip::active) CHECK(coef < 0.34);
    ops::ref::adamw_step(rp.data(), rm.data(), rv.data(), gd.data(), coef, l.decay.data(), l.n, h, t);

    INFO("step " << t);
    // Parameters in [-1.1, 1.1]: a few ulps (6e-8 each) of rounding per step, and update errors of
    // ~1e-6 relative on updates of ~lr = 1e-2 (the GPU clip coefficient differs from the reference's
    // by ~1e-6 relative, which m / sqrt(v) mostly cancels).
    require_close(params.read(), rp, 5e-7, 1e-6, "adamw params");
    // m is a signed running mean of gradients in [-3, 3]: rounding ~1e-7 absolute where it cancels.
    require_close(m.read(), rm, 1e-7, 1e-5, "adamw m");
    // v >= 0 has no cancellation: relative rounding only (and the clip coefficient, squared).
    require_close(v.read(), rv, 1e-20, 1e-5, "adamw v");
  }
}

}  // namespace

TEST_CASE("adamw reference first step has the closed form", "[adamw][ref]") {
  // At t = 1 the bias-corrected moments are g and |g|: p = p (1 - lr wd) - lr g / (|g| + eps).
  ops::AdamWHyper h;
  h.lr = 0.1;
  h.weight_decay = 0.5;
  h.eps = 1e-3;
  double p[2] = {1.0, 1.0}, m[2] = {0, 0}, v[2] = {0, 0};
  const double g[2] = {0.5, -0.25};
  const uint8_t decay[2] = {1, 0};
  ops::ref::adamw_step(p, m, v, g, 0.5, decay, 2, h, 1);  // clip coefficient 0.5 halves g
  CHECK(p[0] == Approx(1.0 * (1 - 0.05) - 0.1 * 0.25 / (0.25 + 1e-3)).epsilon(1e-13));
  CHECK(p[1] == Approx(1.0 + 0.1 * 0.125 / (0.125 + 1e-3)).epsilon(1e-13));
  CHECK(m[0] == Approx(0.1 * 0.25).epsilon(1e-13));
  CHECK(v[1] == Approx(0.001 * 0.125 * 0.125).epsilon(1e-12));

  // A non-finite clip coefficient skips the step.
  const double before = p[0];
  ops::ref::adamw_step(p, m, v, g, NAN, decay, 2, h, 2);
  CHECK(p[0] == before);
}

TEST_CASE("adamw decay mask and timm's decay rule", "[adamw][ref]") {
  CHECK(ops::adamw_decays("blocks.3.attn.qkv.weight", 2));
  CHECK(ops::adamw_decays("patch_embed.proj.weight", 4));
  CHECK_FALSE(ops::adamw_decays("blocks.3.attn.qkv.bias", 1));
  CHECK_FALSE(ops::adamw_decays("blocks.3.norm1.weight", 1));
  CHECK_FALSE(ops::adamw_decays("cls_token", 3));
  CHECK_FALSE(ops::adamw_decays("pos_embed", 3));

  // Unsorted input; gaps and non-decayed tensors stay clear.
  std::vector<ops::ParamRange> ranges = {{20, 5, true}, {0, 10, true}, {10, 10, true}, {25, 3, false},
                                         {30, 4, true}, {34, 0, false}};
  const std::vector<uint32_t> mask = ops::adamw_decay_mask(ranges, 40);
  REQUIRE(mask.size() == 2);
  // Decayed: [0, 25) (three tensors, unsorted) and [30, 34); not: [25, 28), 28, 29, [34, 40).
  CHECK(mask[0] == 0xc1ffffffu);  // elements 0-24, 30, 31
  CHECK(mask[1] == 0x3u);  // elements 32 and 33
  CHECK(ops::adamw_decay_mask({{0, 7, false}}, 7) == std::vector<uint32_t>{0});
  CHECK_THROWS_AS(ops::adamw_decay_mask({{0, 10, true}, {5, 10, false}}, 20), Error);
  CHECK_THROWS_AS(ops::adamw_decay_mask({{0, 10, true}}, 9), Error);
}

TEST_CASE("adamw on the GPU matches the reference over five steps", "[adamw][gpu]") {
  SECTION("no clipping") { check_steps(Clip::none, 60); }
  SECTION("clipping inactive") { check_steps(Clip::inactive, 70); }
  SECTION("clipping active") { check_steps(Clip::active, 80); }
  SECTION("one float at a time (no 64-bit pairs)") {
    ScopedTuning narrow([](vk::Tuning& k) { k.wide = false; });
    check_steps(Clip::active, 85);
  }
}

TEST_CASE("adamw skips the step when the gradients are not finite", "[adamw][gpu]") {
  const Layout l = make_layout();
  auto p0 = random_floats(l.n, 90), m0 = random_floats(l.n, 91), v0 = random_floats(l.n, 92, 0, 1);
  auto g = random_floats(l.n, 93);
  g[12345] = NAN;
  DeviceTensor params(p0), m(m0), v(v0), grads(g), mask(mask_bits(ops::adamw_decay_mask(l.ranges, l.n)));
  DeviceTensor result(ops::kGradNormFloats), scratch(ops::grad_norm_scratch_floats(ctx(), {grads.view()}));
  vk::Recorder rec(ctx());
  ops::grad_norm(rec, result.view(), scratch.view(), {grads.view()}, 0.0f);
  ops::adamw_step(rec, params.view(), m.view(), v.view(), grads.view(), result.view(), mask.view(), l.n,
                  ops::AdamWHyper{}, 3);
  rec.submit_and_wait();
  CHECK(std::isnan(result.read()[ops::kGradNormIndex]));
  // Bitwise unchanged.
  CHECK(params.read() == p0);
  CHECK(m.read() == m0);
  CHECK(v.read() == v0);
  CHECK(ctx().validation_errors() == 0);
}

TEST_CASE("adamw splits parameters larger than maxStorageBufferRange and keeps the decay mask", "[adamw][gpu]") {
  // Two chunks; decayed ranges straddle the chunk boundary and start inside the second chunk, so the
  // shader must look the mask up by flat index (chunk start + local index), not by local index.
  const uint64_t chunk = ctx().info().max_storage_buffer_range / 4;
  const uint64_t n = chunk + 1037;
  if (skip_unless_allocatable(n * 4, "splitting the parameters")) return;
  std::vector<ops::ParamRange> ranges = {{0, chunk - 100, false},
                                         {chunk - 100, 300, true},  // straddles the boundary
                                         {chunk + 200, 500, false},
                                         {chunk + 700, n - chunk - 700, true}};
  std::vector<float> p0(n), g(n);
  for (uint64_t i = 0; i < n; ++i) {  // cheap deterministic values in [-1, 1], never all zero
    p0[i] = float((i * 2654435761u) % 2001) * 1e-3f - 1.0f;
    g[i] = float((i * 40503u + 17) % 1999) * 1e-3f - 0.999f;
  }
  ops::AdamWHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.5;  // large, so a wrong mask shows
  // Plain buffers, one upload each: DeviceTensor's zero fill would double the 128 MiB transfers.
  auto buffer = [&](const char* what) { return std::make_unique<vk::Buffer>(ctx(), n * 4, vk::MemoryKind::device, what); };
  auto params = buffer("params"), grads = buffer("grads"), m = buffer("m"), v = buffer("v");
  ctx().upload(params->view(), p0.data(), n * 4);
  ctx().upload(grads->view(), g.data(), n * 4);
  DeviceTensor mask(mask_bits(ops::adamw_decay_mask(ranges, n)));
  vk::Recorder rec(ctx());
  rec.fill(m->view(), 0.0f);
  rec.fill(v->view(), 0.0f);
  ops::adamw_step(rec, params->view(), m->view(), v->view(), grads->view(), vk::View{}, mask.view(), n, h, 1);
  rec.submit_and_wait();

  // The reference at the interesting indices: both chunk edges, every range edge, the tail.
  std::vector<uint64_t> at = {0, 1, n - 1, n - 2};
  for (uint64_t e : {chunk - 100, chunk, chunk + 200, chunk + 700})
    for (int64_t d = -3; d <= 3; ++d) at.push_back(uint64_t(int64_t(e) + d));
  std::vector<float> got;
  std::vector<double> want;
  for (uint64_t i : at) {
    uint8_t decay = 0;
    for (const auto& r : ranges) decay |= (r.decay && i >= r.first && i < r.first + r.count) ? 1 : 0;
    double p = p0[i], mm = 0, vv = 0, gg = g[i];
    ops::ref::adamw_step(&p, &mm, &vv, &gg, 1.0, &decay, 1, h, 1);
    float x;
    ctx().download(params->view().slice(i, 1), &x, 4);
    got.push_back(x);
    want.push_back(p);
  }
  // One step on |p| <= 1: a few ulps of rounding.
  require_close(got, want, 5e-7, 1e-6, "adamw params at chunk and range edges");
}
