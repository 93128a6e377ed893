// linear (nn.Linear on matmul): GPU vs reference on odd shapes, with and without bias and input
// gradient, the reference backward vs finite differences, and the forwards with GELU or a
// residual add fused into the matmul's stores (and their fallback on the kernel without an epilogue).
#include <catch2/catch.hpp>
#include <algorithm>

#include "harness.h"
#include "ops/gelu.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/residual.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("linear reference backward matches finite differences", "[linear][ref]") {
  const uint64_t M = 5, N = 4, K = 3;
  auto x = to_double(random_floats(M * K, 1)), wt = to_double(random_floats(N * K, 2));
  auto b = to_double(random_floats(N, 3)), w = to_double(random_floats(M * N, 4));  // L = sum(y * w)
  auto loss = [&](const std::vector<double>& xs, const std::vector<double>& ws, const std::vector<double>& bs) {
    std::vector<double> y(M * N);
    ops::ref::linear_forward(y.data(), xs.data(), ws.data(), bs.data(), M, N, K);
    return dot(y, w);
  };
  std::vector<double> dx(M * K, 0.0), dw(N * K, 0.0), db(N, 0.0);
  ops::ref::linear_backward(dx.data(), dw.data(), db.data(), w.data(), x.data(), wt.data(), M, N, K);
  // L is bilinear in (x, W) and linear in b: central differences are exact up to rounding ~1e-10.
  require_gradient_close(dx, numeric_gradient([&](const std::vector<double>& v) { return loss(v, wt, b); }, x), 1e-8,
                         1e-7, "linear dx");
  require_gradient_close(dw, numeric_gradient([&](const std::vector<double>& v) { return loss(x, v, b); }, wt), 1e-8,
                         1e-7, "linear dW");
  require_gradient_close(db, numeric_gradient([&](const std::vector<double>& v) { return loss(x, wt, v); }, b), 1e-8,
                         1e-7, "linear db");
}

namespace {
void check_linear(uint32_t M, uint32_t N, uint32_t K, bool with_bias, bool with_dx, uint32_t seed) {
  CAPTURE(M, N, K, with_bias, with_dx);
  auto x = random_floats(size_t(M) * K, seed), wt = random_floats(size_t(N) * K, seed + 1);
  auto b = random_floats(N, seed + 2), dy = random_floats(size_t(M) * N, seed + 3);
  // Backward accumulates: start every gradient from random values.
  auto dx0 = random_floats(size_t(M) * K, seed + 4), dw0 = random_floats(size_t(N) * K, seed + 5);
  auto db0 = random_floats(N, seed + 6);

  DeviceTensor t_x(x), t_w(wt), t_b(b), t_y(size_t(M) * N), t_dy(dy), t_dx(dx0), t_dw(dw0), t_db(db0);
  vk::Recorder rec(ctx());
  ops::linear_forward(rec, t_y.view(), t_x.view(), t_w.view(), with_bias ? t_b.view() : vk::View{}, M, N, K);
  ops::linear_backward(rec, with_dx ? t_dx.view() : vk::View{}, t_dw.view(), with_bias ? t_db.view() : vk::View{},
                       t_dy.view(), t_x.view(), t_w.view(), M, N, K);
  rec.submit_and_wait();

  auto xd = to_double(x), wd = to_double(wt), bd = to_double(b), dyd = to_double(dy);
  std::vector<double> ref_y(size_t(M) * N);
  auto ref_dx = to_double(dx0), ref_dw = to_double(dw0), ref_db = to_double(db0);
  ops::ref::linear_forward(ref_y.data(), xd.data(), wd.data(), with_bias ? bd.data() : nullptr, M, N, K);
  ops::ref::linear_backward(with_dx ? ref_dx.data() : nullptr, ref_dw.data(), with_bias ? ref_db.data() : nullptr,
                            dyd.data(), xd.data(), wd.data(), M, N, K);

  // fp32 dot products of length L over values in [-1, 1): error ~ L * 6e-8 in the worst case,
  // ~sqrt(L) * 6e-8 typically; 5e-6 covers L <= 96 with margin, and the dW and db sums over
  // M = 2100 rows get 2e-8 * M (4e-5).
  const double long_atol = std::max(5e-6, 2e-8 * M);
  require_close(t_y.read(), ref_y, 5e-6, 1e-5, "linear forward");
  require_close(t_dx.read(), ref_dx, 5e-6, 1e-5, with_dx ? "linear dx" : "linear dx untouched");
  require_close(t_dw.read(), ref_dw, long_atol, 1e-5, "linear dW");
  require_close(t_db.read(), ref_db, long_atol, 1e-5, with_bias ? "linear db" : "linear db untouched");
}
}  // namespace

TEST_CASE("linear forward and backward on the GPU match the reference", "[linear][gpu]") {
  SECTION("M=50, N=13, K=37 with bias and dx") { check_linear(50, 13, 37, true, true, 11); }
  SECTION("no bias, no dx (patch-embedding input)") { check_linear(50, 13, 37, false, false, 21); }
  SECTION("M=1, N=127, K=5") { check_linear(1, 127, 5, true, true, 31); }
  // On lavapipe db rides along dW (row sums of dy^T): aligned operands (texel loads, four-float
  // stores), and 2100 rows, whose dW runs as 512-deep K chunks that each add their sums.
  SECTION("M=64, N=96, K=64 (aligned)") { check_linear(64, 96, 64, true, true, 32); }
  SECTION("M=2100, N=24, K=16 (dW in K chunks)") { check_linear(2100, 24, 16, true, true, 33); }
  // The tiled kernel sums db in dW too (its CPU-driver 32 x 32 tile and the GPU's 64 x 64, 2100
  // rows: many K tiles); the naive kernel has no epilogue and runs bias_grad.
  for (const NamedTile& tile : kTiledTiles) {
    DYNAMIC_SECTION("tiled kernel " << tile.name << ": db as row sums in dW") {
      ScopedTuning tiled([&](vk::Tuning& k) {
        k.matmul_kernel = "tiled";
        k.matmul_tile = tile.tile;
      });
      check_linear(64, 96, 64, true, true, 34);
      check_linear(2100, 24, 16, true, true, 35);
      check_linear(50, 13, 37, true, true, 36);
    }
  }
  SECTION("naive kernel: db by bias_grad") {
    ScopedTuning naive([](vk::Tuning& k) { k.matmul_kernel = "naive"; });
    CHECK_FALSE(ops::matmul_epilogue_supported(ops::MatmulKernel::automatic, ctx()));
    check_linear(64, 96, 64, true, true, 37);
  }
}

namespace {
// y = gelu(x W^T + b) with pre kept, and z = x W^T + b + r, against the reference ops; the
// inference form without pre gives y's bits.
void check_fused_forwards(uint32_t M, uint32_t N, uint32_t K, uint32_t seed) {
  CAPTURE(M, N, K);
  auto x = random_floats(size_t(M) * K, seed), wt = random_floats(size_t(N) * K, seed + 1);
  auto b = random_floats(N, seed + 2), r = random_floats(size_t(M) * N, seed + 3);
  DeviceTensor t_x(x), t_w(wt), t_b(b), t_r(r), t_pre(size_t(M) * N), t_y(size_t(M) * N), t_z(size_t(M) * N),
      t_y_only(size_t(M) * N);
  vk::Recorder rec(ctx());
  ops::linear_gelu_forward(rec, t_y.view(), t_pre.view(), t_x.view(), t_w.view(), t_b.view(), M, N, K);
  ops::linear_gelu_forward(rec, t_y_only.view(), vk::View{}, t_x.view(), t_w.view(), t_b.view(), M, N, K);
  ops::linear_residual_forward(rec, t_z.view(), t_x.view(), t_w.view(), t_b.view(), t_r.view(), M, N, K);
  rec.submit_and_wait();

  auto xd = to_double(x), wd = to_double(wt), bd = to_double(b), rd = to_double(r);
  std::vector<double> pre(size_t(M) * N), y(pre.size()), z(pre.size());
  ops::ref::linear_forward(pre.data(), xd.data(), wd.data(), bd.data(), M, N, K);
  ops::ref::gelu_forward(y.data(), pre.data(), pre.size());
  ops::ref::residual_forward(z.data(), pre.data(), rd.data(), pre.size());
  // As the plain forward (K <= 68 here), plus GELU's erf approximation (1.5e-7).
  require_close(t_pre.read(), pre, 5e-6, 1e-5, "linear+gelu pre-activation");
  require_close(t_y.read(), y, 5e-6, 1e-5, "linear+gelu output");
  CHECK(t_y_only.read() == t_y.read());
  require_close(t_z.read(), z, 5e-6, 1e-5, "linear+residual output");
}
}  // namespace

namespace {
// fc2's backward through the GELU: dpre = (dy W) * gelu'(pre), dW += dy^T hidden, db += sums.
void check_gelu_backward(uint32_t M, uint32_t N, uint32_t K, uint32_t seed) {
  CAPTURE(M, N, K);
  auto pre = random_floats(size_t(M) * K, seed, -3.0f, 3.0f), wt = random_floats(size_t(N) * K, seed + 1);
  auto dy = random_floats(size_t(M) * N, seed + 2), dw0 = random_floats(size_t(N) * K, seed + 3);
  auto db0 = random_floats(N, seed + 4), dpre0 = random_floats(size_t(M) * K, seed + 5);
  auto pred = to_double(pre);
  std::vector<double> hidden(pred.size());
  ops::ref::gelu_forward(hidden.data(), pred.data(), pred.size());
  std::vector<float> hidden_f(hidden.begin(), hidden.end());
  DeviceTensor t_pre(pre), t_hidden(hidden_f), t_w(wt), t_dy(dy), t_dw(dw0), t_db(db0), t_dpre(dpre0),
      t_scratch(size_t(M) * K);
  vk::Recorder rec(ctx());
  ops::linear_gelu_backward(rec, t_dpre.view(), t_dw.view(), t_db.view(), t_dy.view(), t_hidden.view(), t_w.view(),
                            t_pre.view(), t_scratch.view(), M, N, K);
  rec.submit_and_wait();

  auto wd = to_double(wt), dyd = to_double(dy), hd = to_double(hidden_f);
  std::vector<double> dhidden(size_t(M) * K, 0.0), dpre(size_t(M) * K, 0.0);
  auto dw = to_double(dw0), db = to_double(db0);
  ops::ref::linear_backward(dhidden.data(), dw.data(), db.data(), dyd.data(), hd.data(), wd.data(), M, N, K);
  ops::ref::gelu_backward(dpre.data(), pred.data(), dhidden.data(), dpre.size());
  require_close(t_dpre.read(), dpre, 5e-6, 1e-5, "linear+gelu backward dpre (overwritten)");
  require_close(t_dw.read(), dw, 5e-6, 1e-5, "linear+gelu backward dW");
  require_close(t_db.read(), db, 5e-6, 1e-5, "linear+gelu backward db");
}

void check_all_fused(uint32_t seed) {
  check_fused_forwards(50, 13, 37, seed);
  check_fused_forwards(50, 64, 68, seed + 1);
  check_fused_forwards(37, 96, 32, seed + 2);
  check_gelu_backward(50, 13, 37, seed + 3);  // dpre (50 x 37): scalar stores
  check_gelu_backward(37, 24, 64, seed + 4);  // dpre (37 x 64): four-float stores
}
}  // namespace

TEST_CASE("linear layers with GELU, its backward or a residual fused into the stores match the reference", "[linear][gpu]") {
  // Outputs whose width is not a multiple of 4 (scalar stores) and is (four-float stores), rows
  // past the 16-row block; each with the texel and the storage-buffer loads; then the tiled
  // kernel (both tiles: partial tiles at every edge), and the naive kernel, which has no epilogue
  // and runs the separate GELU and residual ops.
  for (bool texel : {true, false}) {
    DYNAMIC_SECTION("lavapipe kernel, texel loads " << (texel ? "on" : "off")) {
      ScopedTuning t([&](vk::Tuning& k) { k.matmul_texel = texel; });
      check_all_fused(41);
    }
  }
  for (const NamedTile& tile : kTiledTiles) {
    DYNAMIC_SECTION("tiled kernel " << tile.name) {
      ScopedTuning tiled([&](vk::Tuning& k) {
        k.matmul_kernel = "tiled";
        k.matmul_tile = tile.tile;
      });
      CHECK(ops::matmul_epilogue_supported(ops::MatmulKernel::automatic, ctx()));
      check_all_fused(51);
    }
  }
  SECTION("naive kernel (separate ops)") {
    ScopedTuning naive([](vk::Tuning& k) { k.matmul_kernel = "naive"; });
    CHECK_FALSE(ops::matmul_epilogue_supported(ops::MatmulKernel::automatic, ctx()));
    check_all_fused(61);
  }
}
