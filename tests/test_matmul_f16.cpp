// fp16 storage: the cast op (f32 <-> f16, bit for bit against the host conversion, which is
// checked against known binary16 encodings) and ops::matmul_f16 against the double reference on
// the same fp16-rounded inputs: odd shapes, every transpose, alpha/beta/bias, fp32 and fp16
// output, the uvec4 load variants, unaligned leading dimensions, two-level batch strides, small
// batched products, the long-K split and a call larger than one binding; the fp16 linear layers
// with GELU, GELU' and the residual fused into the GPU kernel's stores, and their separate-op path.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>

#include "base/error.h"
#include "harness.h"
#include "ops/cast.h"
#include "ops/gelu.h"
#include "ops/linear.h"
#include "ops/matmul_f16.h"
#include "ops/residual.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

// A device buffer of fp16 values (packed, ops/cast.h).
class HalfTensor {
 public:
  explicit HalfTensor(const std::vector<uint16_t>& data) : n_(data.size()) {
    buffer_ = std::make_unique<vk::Buffer>(ctx(), ops::half_bytes(std::max<size_t>(n_, 1)), vk::MemoryKind::device,
                                           "test fp16 tensor");
    std::vector<uint16_t> padded(buffer_->size() / 2, 0);
    std::copy(data.begin(), data.end(), padded.begin());
    ctx().upload(buffer_->view(), padded.data(), buffer_->size());
  }
  vk::View view() const { return buffer_->view(); }
  std::vector<uint16_t> read() const {
    std::vector<uint16_t> out(buffer_->size() / 2);
    ctx().download(buffer_->view(), out.data(), buffer_->size());
    out.resize(n_);
    return out;
  }

 private:
  size_t n_;
  std::unique_ptr<vk::Buffer> buffer_;
};

// The broad tests run the 8 x 8 block: llvmpipe compiles the unrolled 16-row kernels for seconds
// per pipeline; the production block has its own test below.
// The 8 x 8 block unless the user forces one (VKVIT_MATMUL_..._TM/_TN).
struct SmallF16Tile {
  ScopedTuning tile{[](vk::Tuning& k) {
    if (!k.matmul_f16_tm) k.matmul_f16_tm = 8;
    if (!k.matmul_f16_tn) k.matmul_f16_tn = 8;
  }};
};

std::vector<float> rounded(const std::vector<float>& v) { return ops::from_half(ops::to_half(v)); }

void check_matmul_f16(ops::MatmulShape s, bool with_bias, uint32_t seed, ops::MatmulOut out) {
  // fp16 output needs 16-bit storage (SwiftShader has none); fp32 output runs everywhere.
  if (skipped_because(ops::matmul_f16_unsupported(ctx(), out))) return;
  const MatmulExtents extents = matmul_extents(s);
  // Inputs are fp16 values, so the reference sees exactly what the kernel reads.
  const auto a = rounded(random_floats(extents.a, seed));
  const auto b = rounded(random_floats(extents.b, seed + 1));
  auto c0 = random_floats(extents.c, seed + 2);
  if (out == ops::MatmulOut::f16) c0 = rounded(c0);
  const auto bias = random_floats(s.N, seed + 3);

  HalfTensor da(ops::to_half(a)), db(ops::to_half(b));
  DeviceTensor dbias(bias);
  std::unique_ptr<DeviceTensor> dc32;
  std::unique_ptr<HalfTensor> dc16;
  if (out == ops::MatmulOut::f32) dc32 = std::make_unique<DeviceTensor>(c0);
  else dc16 = std::make_unique<HalfTensor>(ops::to_half(c0));
  vk::Recorder rec(ctx());
  ops::matmul_f16(rec, dc32 ? dc32->view() : dc16->view(), da.view(), db.view(), s,
                  with_bias ? dbias.view() : vk::View{}, out);
  rec.submit_and_wait();

  auto ref = to_double(c0);
  const auto ad = to_double(a), bd = to_double(b), biasd = to_double(bias);
  ops::ref::matmul(ref.data(), ad.data(), bd.data(), s, with_bias ? biasd.data() : nullptr);
  // fp32 accumulation as in ops::matmul's test: 1e-5 * K covers K roundings of partial sums
  // bounded by K (inputs in [-1, 1]). fp16 output adds one rounding of the result: at most 2^-11
  // (4.9e-4) relative for normal values, 2^-25 absolute for subnormal ones.
  const double atol = 1e-5 * std::max(s.K, 1u) + (out == ops::MatmulOut::f16 ? 3e-8 : 0.0);
  const double rtol = out == ops::MatmulOut::f16 ? 4.9e-4 + 1e-5 : 1e-5;
  const auto got = dc32 ? dc32->read() : ops::from_half(dc16->read());
  require_close(got, ref, atol, rtol, out == ops::MatmulOut::f32 ? "matmul_f16 (fp32 out)" : "matmul_f16 (fp16 out)");
}

const char* out_name(ops::MatmulOut o) { return o == ops::MatmulOut::f32 ? "f32" : "f16"; }

}  // namespace

TEST_CASE("fp16 host conversion rounds to nearest even and overflows to Inf", "[fp16]") {
  CHECK(ops::float_to_half(1.0f) == 0x3c00);
  CHECK(ops::float_to_half(-2.0f) == 0xc000);
  CHECK(ops::float_to_half(65504.0f) == 0x7bff);
  CHECK(ops::float_to_half(65519.0f) == 0x7bff);  // below the midpoint to 65536: rounds down
  CHECK(ops::float_to_half(65520.0f) == 0x7c00);  // the midpoint: ties to even, which is Inf
  CHECK(ops::float_to_half(-1e6f) == 0xfc00);
  CHECK(ops::float_to_half(std::ldexp(1.0f, -24)) == 0x0001);       // smallest subnormal
  CHECK(ops::float_to_half(std::ldexp(1.0f, -25)) == 0x0000);       // half of it: tie to even (0)
  CHECK(ops::float_to_half(std::ldexp(1.5f, -25)) == 0x0001);       // above the tie
  CHECK(ops::float_to_half(std::ldexp(3.0f, -25)) == 0x0002);       // 1.5 ulp: tie to even (2)
  CHECK(ops::float_to_half(std::ldexp(1.0f, -14)) == 0x0400);       // smallest normal
  CHECK(ops::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie between 1 and 1+2^-10: even
  CHECK(ops::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie: rounds up to even
  CHECK(ops::float_to_half(2047.5f) == 0x6800);  // 2048 (odd 2047 + tie -> even)
  CHECK(std::isnan(ops::half_to_float(ops::float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  // Every finite half survives the round trip, and every float in [-2, 2] rounds to a neighbour.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    REQUIRE(ops::float_to_half(ops::half_to_float(static_cast<uint16_t>(h))) == h);
  }
  for (float x : random_floats(10000, 7, -2.0f, 2.0f)) {
    const float r = ops::round_to_half(x);
    REQUIRE(std::abs(r - x) <= std::ldexp(std::abs(x), -11) + 1e-30f);
  }
}

TEST_CASE("cast f32 <-> f16 matches the host conversion bit for bit", "[fp16][gpu]") {
  // Values from subnormal halves to past the fp16 range, NaN and Inf, over an odd count (the last
  // word is shared with a neighbour that must be kept) and a count that is a multiple of 8
  // (uvec4 path).
  for (size_t n : {size_t(1001), size_t(4096)}) {
    auto x = random_floats(n, 11, -1.0f, 1.0f);
    for (size_t i = 0; i < n; ++i) x[i] = std::ldexp(x[i], static_cast<int>(i % 48) - 30);  // 2^-30 .. 2^17
    x[3] = std::numeric_limits<float>::infinity();
    x[5] = std::numeric_limits<float>::quiet_NaN();
    x[7] = 65520.0f;
    x[9] = -65519.0f;
    DeviceTensor src(x);
    std::vector<uint16_t> sentinel(n + 1, 0x1234);  // one half past the end, to check it is kept
    HalfTensor dst(sentinel);
    vk::Recorder rec(ctx());
    ops::cast_f32_to_f16(rec, dst.view(), src.view(), n);
    rec.submit_and_wait();
    const auto got = dst.read();
    const auto want = ops::to_half(x);
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) {
      const bool both_nan = std::isnan(ops::half_to_float(got[i])) && std::isnan(x[i]);
      if (got[i] != want[i] && !both_nan) {
        if (bad++ < 5) UNSCOPED_INFO("element " << i << ": x " << x[i] << " gpu 0x" << std::hex << got[i] << " host 0x" << want[i] << std::dec);
      }
    }
    CHECK(bad == 0);
    CHECK(got[n] == 0x1234);

    DeviceTensor back(n);
    vk::Recorder rec2(ctx());
    ops::cast_f16_to_f32(rec2, back.view(), dst.view(), n);
    rec2.submit_and_wait();
    const auto f = back.read();
    for (size_t i = 0; i < n; ++i) {
      const float w = ops::half_to_float(want[i]);
      if (std::isnan(w)) REQUIRE(std::isnan(f[i]));
      else REQUIRE(f[i] == w);
    }
  }
}

TEST_CASE("matmul_f16 matches the reference for every transpose on odd shapes", "[fp16][gpu]") {
  SmallF16Tile small_tile;
  struct Dims {
    uint32_t M, N, K;
  };
  // Not multiples of the block (8 x 64) nor of 8 (single-half loads), degenerate 1s, K not a
  // multiple of the 8-wide k step.
  const Dims dims[] = {{50, 127, 13}, {1, 37, 19}, {23, 1, 7}, {9, 11, 1}, {93, 67, 129}};
  uint32_t seed = 100;
  for (ops::MatmulOut out : {ops::MatmulOut::f32, ops::MatmulOut::f16})
    for (const Dims& d : dims)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          ops::MatmulShape s = matmul_shape(d.M, d.N, d.K, ta, tb);
          s.alpha = 0.75f;
          s.beta = (seed % 2) ? 1.0f : 0.0f;
          const bool bias = seed % 3 != 0;
          seed += 5;
          DYNAMIC_SECTION(out_name(out) << " M=" << d.M << " N=" << d.N << " K=" << d.K << " trans_a=" << ta
                                        << " trans_b=" << tb) {
            check_matmul_f16(s, bias, seed, out);
          }
        }
}

TEST_CASE("matmul_f16 uvec4 loads and unaligned leading dimensions", "[fp16][gpu]") {
  SmallF16Tile small_tile;
  uint32_t seed = 300;
  for (ops::MatmulOut out : {ops::MatmulOut::f32, ops::MatmulOut::f16})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        // Every dimension a multiple of 8 (uvec4 loads of A and B), M and N not multiples of the
        // block, so clamped edge loads are exercised.
        ops::MatmulShape s = matmul_shape(56, 104, 40, ta, tb);
        s.beta = 1.0f;
        seed += 5;
        DYNAMIC_SECTION(out_name(out) << " vec trans_a=" << ta << " trans_b=" << tb) { check_matmul_f16(s, true, seed, out); }
        // Row strides that break the 8-element alignment (single-half loads); C's padding kept.
        ops::MatmulShape u = matmul_shape(24, 16, 16, ta, tb);
        u.a.ld = (ta ? u.M : u.K) + 3;
        u.b.ld = (tb ? u.K : u.N) + 5;
        u.c.ld = u.N + 1;
        u.beta = 0.5f;
        DYNAMIC_SECTION(out_name(out) << " unaligned trans_a=" << ta << " trans_b=" << tb) {
          check_matmul_f16(u, false, seed + 1, out);
        }
      }
}

TEST_CASE("matmul_f16 with two-level batch strides and small batched products", "[fp16][gpu]") {
  // Attention's layouts: Q and K read out of a fused (B, N, 3, H, d) qkv, P (B, H, N, N) dense;
  // d = 5 (single-half loads) and 8 (uvec4 loads). The launcher's own block (8 x 8 for these
  // small products, several batch entries per workgroup).
  for (uint32_t d : {5u, 8u}) {
    const uint32_t B = 3, H = 3, N = 17, D = H * d;
    ops::MatmulShape s;
    s.M = N;
    s.N = N;
    s.K = d;
    s.trans_b = true;
    s.batch = B * H;
    s.batch_inner = H;
    s.a = {3 * D, uint64_t(N) * 3 * D, d};
    s.b = {3 * D, uint64_t(N) * 3 * D, d};
    s.c = {0, uint64_t(H) * N * N, uint64_t(N) * N};
    s.alpha = 0.5f;
    DYNAMIC_SECTION("scores d=" << d) { check_matmul_f16(s, false, 40 + d, ops::MatmulOut::f32); }
    ops::MatmulShape o;
    o.M = N;
    o.N = d;
    o.K = N;
    o.batch = B * H;
    o.batch_inner = H;
    o.a = {0, uint64_t(H) * N * N, uint64_t(N) * N};
    o.b = {3 * D, uint64_t(N) * 3 * D, d};
    o.c = {D, uint64_t(N) * D, d};
    o.beta = 1.0f;
    DYNAMIC_SECTION("P V d=" << d) { check_matmul_f16(o, false, 50 + d, ops::MatmulOut::f16); }
  }
}

TEST_CASE("matmul_f16 default block on the ViT linear-layer layouts, long K, K = 0", "[fp16][gpu]") {
  // The production block (16 x 8) on forward NT, backward NN and TN at sizes that are not block
  // multiples; a K above the split threshold (2048, accumulated 512-deep chunks) in TN.
  struct Case {
    uint32_t M, N, K;
    bool ta, tb;
  };
  const Case cases[] = {{100, 96, 64, false, true}, {100, 64, 96, false, false}, {96, 64, 100, true, false},
                        {24, 40, 2100, true, false}};
  uint32_t seed = 500;
  for (const Case& c : cases) {
    ops::MatmulShape s = matmul_shape(c.M, c.N, c.K, c.ta, c.tb);
    s.beta = c.ta ? 1.0f : 0.0f;
    seed += 5;
    DYNAMIC_SECTION("M=" << c.M << " N=" << c.N << " K=" << c.K << " trans_a=" << c.ta << " trans_b=" << c.tb) {
      check_matmul_f16(s, !c.ta, seed, ops::MatmulOut::f32);
    }
  }
  SECTION("K = 0 leaves beta * C + bias") {
    SmallF16Tile small_tile;
    ops::MatmulShape s = matmul_shape(5, 7, 0, false, true);
    s.a.ld = 1;
    s.b.ld = 1;
    s.beta = 0.5f;
    check_matmul_f16(s, true, 70, ops::MatmulOut::f32);
  }
}

TEST_CASE("matmul_f16 on the tiled (GPU) kernel matches the reference", "[fp16][gpu]") {
  // GPUs run matmul_f16_tiled[_h]; forced here with the tiled kernel, in the CPU drivers'
  // 32 x 32 tile and the GPUs' 64 x 64: odd shapes for every transpose and both outputs, the
  // attention layouts with two-level batch strides, K = 0.
  ScopedTuning kernel([](vk::Tuning& k) { k.matmul_kernel = "tiled"; });
  CHECK(ops::matmul_f16_unsupported(ctx(), ops::MatmulOut::f32).empty());
  for (const NamedTile& tile : kTiledTiles) {
    ScopedTuning t([&](vk::Tuning& k) { k.matmul_tile = tile.tile; });
    uint32_t seed = 900;
    for (ops::MatmulOut out : {ops::MatmulOut::f32, ops::MatmulOut::f16})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          ops::MatmulShape s = matmul_shape(93, 67, 41, ta, tb);
          s.alpha = 0.75f;
          s.beta = (seed % 2) ? 1.0f : 0.0f;
          seed += 5;
          DYNAMIC_SECTION(tile.name << " " << out_name(out) << " trans_a=" << ta << " trans_b=" << tb) {
            check_matmul_f16(s, seed % 3 != 0, seed, out);
          }
        }
    DYNAMIC_SECTION(tile.name << " batched scores out of a fused qkv") {
      const uint32_t B = 2, H = 3, N = 17, d = 5, D = H * d;
      ops::MatmulShape s = matmul_shape(N, N, d, false, true);
      s.batch = B * H;
      s.batch_inner = H;
      s.a = {3 * D, uint64_t(N) * 3 * D, d};
      s.b = {3 * D, uint64_t(N) * 3 * D, d};
      s.c = {0, uint64_t(H) * N * N, uint64_t(N) * N};
      check_matmul_f16(s, false, 960, ops::MatmulOut::f32);
    }
    DYNAMIC_SECTION(tile.name << " K = 0 leaves beta * C + bias") {
      ops::MatmulShape s = matmul_shape(5, 7, 0, false, true);
      s.a.ld = 1;
      s.b.ld = 1;
      s.beta = 0.5f;
      check_matmul_f16(s, true, 970, ops::MatmulOut::f32);
    }
  }
}

namespace {
// The amp MLP's fused fp16 ops (fc1 + GELU, fc2 + residual, fc2's backward through the GELU)
// against the double reference on fp16-valued inputs (the in-op casts are then exact).
void check_linear_f16_fused(uint32_t M, uint32_t N, uint32_t K, uint32_t seed) {
  CAPTURE(M, N, K);
  const auto x = rounded(random_floats(size_t(M) * K, seed)), w = rounded(random_floats(size_t(N) * K, seed + 1));
  const auto b = random_floats(N, seed + 2), r = random_floats(size_t(M) * N, seed + 3);
  DeviceTensor t_x(x), t_b(b), t_r(r), t_pre(size_t(M) * N), t_y(size_t(M) * N), t_z(size_t(M) * N),
      t_y_only(size_t(M) * N);
  HalfTensor t_w16(ops::to_half(w)), t_x16(std::vector<uint16_t>(size_t(M) * K));
  // Backward of a layer N -> K... as fc2: dy (M, N), weights (N, K), input hidden (M, K).
  const auto pre2 = random_floats(size_t(M) * K, seed + 4, -3.0f, 3.0f), dy = random_floats(size_t(M) * N, seed + 5);
  std::vector<double> hidden(pre2.size());
  const auto pre2d = to_double(pre2);
  ops::ref::gelu_forward(hidden.data(), pre2d.data(), hidden.size());
  const auto hidden_f = rounded(std::vector<float>(hidden.begin(), hidden.end()));
  const auto dw0 = random_floats(size_t(N) * K, seed + 6), db0 = random_floats(N, seed + 7);
  DeviceTensor t_pre2(pre2), t_dy(dy), t_dw(dw0), t_db(db0), t_dpre(random_floats(size_t(M) * K, seed + 8)),
      t_dhidden(size_t(M) * K);
  HalfTensor t_h16(ops::to_half(hidden_f)), t_dy16(std::vector<uint16_t>(size_t(M) * N));
  vk::Recorder rec(ctx());
  ops::linear_gelu_forward_f16(rec, t_y.view(), t_pre.view(), t_x16.view(), t_x.view(), t_w16.view(), t_b.view(), M, N, K);
  // The inference form (no pre-activation kept) gives the same bits.
  ops::linear_gelu_forward_f16(rec, t_y_only.view(), vk::View{}, t_x16.view(), t_x.view(), t_w16.view(), t_b.view(), M,
                               N, K);
  ops::linear_residual_forward_f16(rec, t_z.view(), t_x16.view(), t_x.view(), t_w16.view(), t_b.view(), t_r.view(), M, N, K);
  ops::linear_gelu_backward_f16(rec, t_dpre.view(), t_dw.view(), t_db.view(), t_dy.view(), t_dy16.view(), t_h16.view(),
                                t_w16.view(), t_pre2.view(), t_dhidden.view(), M, N, K);
  rec.submit_and_wait();

  const auto xd = to_double(x), wd = to_double(w), bd = to_double(b), rd = to_double(r);
  std::vector<double> pre(size_t(M) * N), y(pre.size()), z(pre.size());
  ops::ref::linear_forward(pre.data(), xd.data(), wd.data(), bd.data(), M, N, K);
  ops::ref::gelu_forward(y.data(), pre.data(), pre.size());
  ops::ref::residual_forward(z.data(), pre.data(), rd.data(), pre.size());
  require_close(t_pre.read(), pre, 5e-6, 1e-5, "fp16 linear+gelu pre-activation");
  require_close(t_y.read(), y, 5e-6, 1e-5, "fp16 linear+gelu output");
  CHECK(t_y_only.read() == t_y.read());
  require_close(t_z.read(), z, 5e-6, 1e-5, "fp16 linear+residual output");

  // dy reaches the products as fp16 (as under autocast); the bias gradient sums the fp32 dy.
  const auto dy16d = to_double(rounded(dy)), dyd = to_double(dy), hd = to_double(hidden_f);
  std::vector<double> dhidden(size_t(M) * K, 0.0), dpre(size_t(M) * K, 0.0), unused_db(N, 0.0);
  auto dw = to_double(dw0), db = to_double(db0);
  ops::ref::linear_backward(dhidden.data(), dw.data(), unused_db.data(), dy16d.data(), hd.data(), wd.data(), M, N, K);
  ops::ref::linear_backward(nullptr, std::vector<double>(size_t(N) * K).data(), db.data(), dyd.data(), hd.data(),
                            wd.data(), M, N, K);
  ops::ref::gelu_backward(dpre.data(), pre2d.data(), dhidden.data(), dpre.size());
  require_close(t_dpre.read(), dpre, 5e-6, 1e-5, "fp16 linear+gelu backward dpre (overwritten)");
  require_close(t_dw.read(), dw, 5e-6, 1e-5, "fp16 linear+gelu backward dW");
  require_close(t_db.read(), db, 5e-6, 1e-5, "fp16 linear+gelu backward db");
}
}  // namespace

TEST_CASE("fp16 linear layers with GELU, its backward or a residual in the stores match the reference", "[fp16][gpu]") {
  // The GPU kernel fuses them (forced here: tiled, both tiles); the register-blocked fp16 kernel has no
  // epilogue and runs the separate ops.
  SECTION("register-blocked kernel (separate ops)") {
    // (not a return: that would end the test case before the tiled sections are found)
    if (!skip_without_eight_lane_subgroups("the register-blocked fp16 matmul kernel")) {
      SmallF16Tile small_tile;
      CHECK_FALSE(ops::matmul_f16_epilogue_supported(ctx(), ops::MatmulOut::f32));
      check_linear_f16_fused(50, 13, 37, 1000);
    }
  }
  for (const NamedTile& tile : kTiledTiles) {
    DYNAMIC_SECTION("tiled kernel " << tile.name) {
      ScopedTuning tiled([&](vk::Tuning& k) {
        k.matmul_kernel = "tiled";
        k.matmul_tile = tile.tile;
      });
      CHECK(ops::matmul_f16_epilogue_supported(ctx(), ops::MatmulOut::f32));
      CHECK_FALSE(ops::matmul_f16_epilogue_supported(ctx(), ops::MatmulOut::f16));
      check_linear_f16_fused(50, 13, 37, 1010);
      check_linear_f16_fused(37, 96, 64, 1020);
    }
  }
}

TEST_CASE("matmul_f16 splits an operand larger than maxStorageBufferRange", "[fp16][gpu]") {
  SmallF16Tile small_tile;
  // C (M, N) fp32 of 540000 x 64 floats is above lavapipe's 128 MiB binding limit (A in fp16 is
  // half that): the call must split along M. Checked on rows at the start, across the split and
  // at the end.
  const uint64_t limit = ctx().info().max_storage_buffer_range;
  const uint32_t K = 8, N = 64;
  const uint32_t M = static_cast<uint32_t>(limit / (N * 4) + limit / (N * 4) / 32);
  ops::MatmulShape s = matmul_shape(M, N, K, false, false);
  if (skip_unless_allocatable(uint64_t(M) * N * 4, "splitting C")) return;
  const auto a = rounded(random_floats(uint64_t(M) * K, 80));
  const auto b = rounded(random_floats(uint64_t(K) * N, 81));
  HalfTensor da(ops::to_half(a)), db(ops::to_half(b));
  DeviceTensor dc(uint64_t(M) * N);
  vk::Recorder rec(ctx());
  ops::matmul_f16(rec, dc.view(), da.view(), db.view(), s);
  rec.submit_and_wait();
  require_matmul_rows_close(a, b, dc.read(), s, "matmul_f16");
}
