// matmul: GPU vs the double-precision reference on odd shapes, every transpose, batches, bias.
#include <catch2/catch.hpp>

#include "harness.h"
#include "ops/matmul.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

size_t extent(uint32_t rows, uint32_t ld, const ops::MatmulOperand& op, const ops::MatmulShape& s) {
  const uint64_t outer = s.batch / s.batch_inner - 1, inner = s.batch_inner - 1;
  return outer * op.stride_outer + inner * op.stride_inner + uint64_t(rows) * ld;
}

void check_matmul(ops::MatmulShape s, bool with_bias, uint32_t seed) {
  const uint32_t lda = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
  const uint32_t ldb = s.b.ld ? s.b.ld : (s.trans_b ? s.K : s.N);
  const uint32_t ldc = s.c.ld ? s.c.ld : s.N;
  auto a = random_floats(extent(s.trans_a ? s.K : s.M, lda, s.a, s), seed);
  auto b = random_floats(extent(s.trans_b ? s.N : s.K, ldb, s.b, s), seed + 1);
  auto c0 = random_floats(extent(s.M, ldc, s.c, s), seed + 2);
  auto bias = random_floats(s.N, seed + 3);

  DeviceTensor da(a), db(b), dc(c0), dbias(bias);
  vk::Recorder rec(ctx());
  ops::matmul(rec, dc.view(), da.view(), db.view(), s, with_bias ? dbias.view() : vk::View{});
  rec.submit_and_wait();

  auto ref = to_double(c0);
  auto ad = to_double(a), bd = to_double(b), biasd = to_double(bias);
  ops::ref::matmul(ref.data(), ad.data(), bd.data(), s, with_bias ? biasd.data() : nullptr);
  // fp32 accumulation of K products of values in [-1, 1]: error grows like sqrt(K) * 6e-8 * K.
  require_close(dc.read(), ref, 1e-5 * s.K, 1e-5, "matmul");
}

}  // namespace

TEST_CASE("matmul matches the reference for every transpose on odd shapes", "[matmul][gpu]") {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      ops::MatmulShape s;
      s.M = 50;
      s.N = 127;
      s.K = 13;
      s.trans_a = ta;
      s.trans_b = tb;
      s.alpha = 0.75f;
      s.beta = 1.0f;
      DYNAMIC_SECTION("trans_a=" << ta << " trans_b=" << tb) { check_matmul(s, true, 10 + 2 * ta + tb); }
    }
}

TEST_CASE("matmul reads heads out of a fused qkv layout with two-level batch strides", "[matmul][gpu]") {
  // Scores S = Q K^T for B=2 images, H=3 heads, N=17 tokens, d=5: qkv is (B, N, 3, H, d).
  const uint32_t B = 2, H = 3, N = 17, d = 5, D = H * d;
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
  check_matmul(s, false, 40);
}
