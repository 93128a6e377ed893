// LayerNorm: GPU vs the double-precision reference on odd widths (13, 127, 1030), also with kernels
// sized for other subgroup sizes than the one that runs, and the reference backward vs finite
// differences.
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>

#include "harness.h"
#include "ops/layernorm.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("layernorm reference backward matches finite differences", "[layernorm][ref]") {
  const uint64_t M = 3, D = 7;
  const double eps = 1e-6;
  auto x = to_double(random_floats(M * D, 11, -2, 2));
  auto gamma = to_double(random_floats(D, 12, 0.5f, 1.5f));
  auto beta = to_double(random_floats(D, 13));
  auto w = to_double(random_floats(M * D, 14));  // L = sum(out * w)

  auto loss = [&](const std::vector<double>& xs, const std::vector<double>& g, const std::vector<double>& b) {
    std::vector<double> out(M * D), mean(M), rstd(M);
    ops::ref::layernorm_forward(out.data(), mean.data(), rstd.data(), xs.data(), g.data(), b.data(), M, D, eps);
    return dot(out, w);
  };
  std::vector<double> out(M * D), mean(M), rstd(M);
  ops::ref::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), gamma.data(), beta.data(), M, D, eps);
  std::vector<double> dx(M * D, 0.0), dgamma(D, 0.0), dbeta(D, 0.0);
  ops::ref::layernorm_backward(dx.data(), dgamma.data(), dbeta.data(), mean.data(), rstd.data(), x.data(), w.data(),
                               gamma.data(), M, D);

  // Central differences in double with step 1e-6: truncation ~1e-12 * |f'''|, rounding
  // ~1e-16 / 1e-6 = 1e-10 relative to |L| ~ 1; 1e-7 absolute leaves a wide margin.
  require_gradient_close(dx, numeric_gradient([&](const std::vector<double>& v) { return loss(v, gamma, beta); }, x),
                         1e-7, 1e-6, "layernorm dx");
  require_gradient_close(dgamma,
                         numeric_gradient([&](const std::vector<double>& v) { return loss(x, v, beta); }, gamma),
                         1e-7, 1e-6, "layernorm dgamma");
  require_gradient_close(dbeta, numeric_gradient([&](const std::vector<double>& v) { return loss(x, gamma, v); }, beta),
                         1e-7, 1e-6, "layernorm dbeta");
}

namespace {
// Runs forward + backward on the GPU and the reference, accumulating into random initial grads.
void check_layernorm(uint64_t M, uint32_t D, float offset, uint32_t seed) {
  CAPTURE(M, D, offset);
  const float eps = 1e-6f;
  auto x = random_floats(M * D, seed, -2, 2);
  for (auto& v : x) v += offset;  // a large row mean tests the two-pass variance
  auto gamma = random_floats(D, seed + 1, 0.5f, 1.5f);
  auto beta = random_floats(D, seed + 2);
  auto dout = random_floats(M * D, seed + 3);
  auto dx0 = random_floats(M * D, seed + 4), dg0 = random_floats(D, seed + 5), db0 = random_floats(D, seed + 6);

  DeviceTensor in(x), g(gamma), b(beta), out(M * D), mean(M), rstd(M), d_out(dout), d_in(dx0), d_g(dg0), d_b(db0);
  vk::Recorder rec(ctx());
  ops::layernorm_forward(rec, out.view(), mean.view(), rstd.view(), in.view(), g.view(), b.view(), M, D, eps);
  DeviceTensor scratch(std::max<uint64_t>(ops::layernorm_backward_scratch_floats(ctx(), M, D), 1));
  ops::layernorm_backward(rec, d_in.view(), d_g.view(), d_b.view(), mean.view(), rstd.view(), in.view(),
                          d_out.view(), g.view(), scratch.view(), M, D);
  rec.submit_and_wait();

  auto xd = to_double(x), gd = to_double(gamma), bd = to_double(beta), doutd = to_double(dout);
  std::vector<double> ref_out(M * D), ref_mean(M), ref_rstd(M);
  auto ref_dx = to_double(dx0), ref_dg = to_double(dg0), ref_db = to_double(db0);
  ops::ref::layernorm_forward(ref_out.data(), ref_mean.data(), ref_rstd.data(), xd.data(), gd.data(), bd.data(), M,
                              D, eps);
  ops::ref::layernorm_backward(ref_dx.data(), ref_dg.data(), ref_db.data(), ref_mean.data(), ref_rstd.data(),
                               xd.data(), doutd.data(), gd.data(), M, D);

  // fp32 row sums over D <= 1030 values: mean is off by ~1e-7 * |mean| and xhat by ~1e-6 at
  // offset 10; outputs are O(3), so 2e-5 absolute covers both with a margin.
  require_close(mean.read(), ref_mean, 1e-5, 1e-6, "layernorm mean");
  require_close(rstd.read(), ref_rstd, 1e-6, 1e-5, "layernorm rstd");
  require_close(out.read(), ref_out, 2e-5, 1e-5, "layernorm forward");
  // din terms are O(rstd) ~ 1 with the same xhat error: 3e-5.
  require_close(d_in.read(), ref_dx, 3e-5, 1e-4, "layernorm din");
  // dgamma/dbeta add M terms of size O(2): fp32 accumulation error grows ~ sqrt(M) * 1e-7 * 2.
  require_close(d_g.read(), ref_dg, 5e-5, 1e-5, "layernorm dgamma");
  require_close(d_b.read(), ref_db, 5e-5, 1e-5, "layernorm dbeta");
}
}  // namespace

TEST_CASE("layernorm forward and backward on the GPU match the reference", "[layernorm][gpu]") {
  SECTION("M=50, D=127") { check_layernorm(50, 127, 0.0f, 21); }
  SECTION("D=13, rows far from zero mean") { check_layernorm(37, 13, 10.0f, 31); }
  SECTION("D=1030, wider than any workgroup") { check_layernorm(6, 1030, 0.0f, 41); }
  SECTION("D=384, M=197 (one ViT-S image)") { check_layernorm(197, 384, 0.0f, 51); }
  SECTION("M=601, D=64: more than 64 partial rows of 8") { check_layernorm(601, 64, 0.0f, 71); }
  SECTION("D=1032: four-float rows wider than the registers") { check_layernorm(9, 1032, 0.0f, 81); }
  SECTION("D=384, M=197, four-float accesses instead of 64-bit pairs") {
    ScopedTuning narrow([](vk::Tuning& k) { k.wide = false; });
    check_layernorm(197, 384, 0.0f, 91);
  }
}

// A driver without subgroup-size control may run another size than it reports (Intel reports 32
// and may run 8 or 16), and a pin this device cannot honour is left off: the kernels sized for a
// described size must be right at the size that runs (lavapipe's 8, or 4 and 16 at other vector
// widths). Covers more lanes than the row needs, fewer lanes than CACHED was sized for (the
// uncached fallback and its partial rows), and workgroups of more or fewer subgroups than planned.
TEST_CASE("layernorm is correct whatever subgroup size the device reports", "[layernorm][gpu]") {
  for (const uint32_t reported : {4u, 16u, 32u, 64u}) {
    vk::DeviceInfo described = ctx().info();
    described.subgroup_size = reported;
    described.subgroup_size_control = false;
    described.full_subgroups = false;
    ScopedKernelDevice device(described);
    CAPTURE(reported, ctx().info().subgroup_size);
    check_layernorm(50, 127, 0.0f, 101);
    check_layernorm(37, 13, 10.0f, 102);
    check_layernorm(197, 384, 0.0f, 103);
    check_layernorm(601, 64, 0.0f, 104);
    check_layernorm(6, 1030, 0.0f, 105);
    check_layernorm(9, 1032, 0.0f, 106);
  }
}

TEST_CASE("layernorm parameter gradients are bit-identical across runs", "[layernorm][gpu]") {
  const uint64_t M = 300;
  const uint32_t D = 77;
  auto x = random_floats(M * D, 61), dout = random_floats(M * D, 62), gamma = random_floats(D, 63);
  DeviceTensor in(x), g(gamma), b(D), out(M * D), mean(M), rstd(M), d_out(dout);
  std::vector<float> first_g, first_b;
  for (int run = 0; run < 2; ++run) {
    DeviceTensor d_in(M * D), d_g(D), d_b(D);
    vk::Recorder rec(ctx());
    ops::layernorm_forward(rec, out.view(), mean.view(), rstd.view(), in.view(), g.view(), b.view(), M, D, 1e-6f);
    DeviceTensor scratch(ops::layernorm_backward_scratch_floats(ctx(), M, D));
    ops::layernorm_backward(rec, d_in.view(), d_g.view(), d_b.view(), mean.view(), rstd.view(), in.view(),
                            d_out.view(), g.view(), scratch.view(), M, D);
    rec.submit_and_wait();
    if (run == 0) {
      first_g = d_g.read();
      first_b = d_b.read();
    } else {
      // Fixed reduction order, no atomics: the results must match bit for bit.
      CHECK(std::memcmp(first_g.data(), d_g.read().data(), D * 4) == 0);
      CHECK(std::memcmp(first_b.data(), d_b.read().data(), D * 4) == 0);
    }
  }
}

// Hidden benchmark at ViT training sizes (M = 32 images x 200 tokens): host wall time per call,
// averaged over 5 calls in one submission.
TEST_CASE("layernorm timing at ViT sizes", "[.bench]") {
  for (uint32_t D : {192u, 768u}) {
    const uint64_t M = 6400;
    DeviceTensor in(random_floats(M * D, 1)), g(random_floats(D, 2)), b(D), out(M * D), mean(M), rstd(M);
    DeviceTensor d_out(random_floats(M * D, 3)), d_in(M * D), d_g(D), d_b(D);
    DeviceTensor scratch(ops::layernorm_backward_scratch_floats(ctx(), M, D));
    auto time_ms = [&](const std::function<void(vk::Recorder&)>& fn) {
      vk::Recorder rec(ctx());
      fn(rec);  // warm-up: pipelines and descriptor sets
      rec.submit_and_wait();
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 5; ++i) fn(rec);
      rec.submit_and_wait();
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5;
    };
    const double fwd = time_ms([&](vk::Recorder& rec) {
      ops::layernorm_forward(rec, out.view(), mean.view(), rstd.view(), in.view(), g.view(), b.view(), M, D, 1e-6f);
    });
    const double bwd = time_ms([&](vk::Recorder& rec) {
      ops::layernorm_backward(rec, d_in.view(), d_g.view(), d_b.view(), mean.view(), rstd.view(), in.view(),
                              d_out.view(), g.view(), scratch.view(), M, D);
    });
    WARN("layernorm M=" << M << " D=" << D << ": forward " << fwd << " ms, backward " << bwd << " ms");
  }
}
