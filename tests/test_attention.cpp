// attention: the reference forward on a case with a known answer, the reference backward vs
// finite differences, and GPU forward/backward vs the reference on odd shapes and a ViT-Ti block.
#include <catch2/catch.hpp>

#include <cmath>

#include "harness.h"
#include "ops/attention.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("attention reference: zero queries attend uniformly, probabilities sum to one", "[attention][ref]") {
  const uint32_t B = 2, N = 6, H = 2, d = 3, D = H * d;
  auto qkv = to_double(random_floats(size_t(B) * N * 3 * D, 501, -2, 2));
  for (uint32_t b = 0; b < B; ++b)
    for (uint32_t n = 0; n < N; ++n)
      for (uint32_t c = 0; c < D; ++c) qkv[(b * N + n) * 3 * D + c] = 0.0;  // Q = 0
  std::vector<double> out(size_t(B) * N * D), probs(size_t(B) * H * N * N);
  ops::ref::attention_forward(out.data(), probs.data(), qkv.data(), B, N, D, H);
  // With Q = 0 every score is 0, so P = 1/N and each output row is the mean of V's rows.
  for (uint32_t b = 0; b < B; ++b)
    for (uint32_t i = 0; i < N; ++i)
      for (uint32_t c = 0; c < D; ++c) {
        double mean = 0;
        for (uint32_t j = 0; j < N; ++j) mean += qkv[(b * N + j) * 3 * D + 2 * D + c] / N;
        CHECK(std::abs(out[(b * N + i) * D + c] - mean) < 1e-12);
      }

  auto qkv2 = to_double(random_floats(size_t(B) * N * 3 * D, 502, -2, 2));
  ops::ref::attention_forward(out.data(), probs.data(), qkv2.data(), B, N, D, H);
  for (size_t r = 0; r < size_t(B) * H * N; ++r) {
    double sum = 0;
    for (uint32_t j = 0; j < N; ++j) sum += probs[r * N + j];
    CHECK(std::abs(sum - 1.0) < 1e-12);
  }
}

TEST_CASE("attention reference backward matches finite differences", "[attention][ref]") {
  const uint32_t B = 2, N = 5, H = 2, d = 3, D = H * d;
  const size_t n_qkv = size_t(B) * N * 3 * D, n_out = size_t(B) * N * D, n_probs = size_t(B) * H * N * N;
  auto qkv = to_double(random_floats(n_qkv, 511, -2, 2));  // wide enough for peaked softmax rows
  auto w = to_double(random_floats(n_out, 512));            // L = sum(out * w), so dout = w
  auto loss = [&](const std::vector<double>& x) {
    std::vector<double> out(n_out), probs(n_probs);
    ops::ref::attention_forward(out.data(), probs.data(), x.data(), B, N, D, H);
    return dot(out, w);
  };
  std::vector<double> out(n_out), probs(n_probs);
  ops::ref::attention_forward(out.data(), probs.data(), qkv.data(), B, N, D, H);
  // Start from a non-zero gradient: backward must add, not overwrite.
  auto dqkv0 = to_double(random_floats(n_qkv, 513));
  auto dqkv = dqkv0;
  ops::ref::attention_backward(dqkv.data(), probs.data(), qkv.data(), w.data(), B, N, D, H);
  for (size_t i = 0; i < n_qkv; ++i) dqkv[i] -= dqkv0[i];
  // Central differences in double: truncation ~eps^2 = 1e-12, rounding ~1e-16/eps = 1e-10.
  require_gradient_close(dqkv, numeric_gradient(loss, qkv), 1e-8, 1e-6, "attention dqkv");
}

namespace {

void check_attention_gpu(uint32_t B, uint32_t N, uint32_t H, uint32_t d, uint32_t seed) {
  const uint32_t D = H * d;
  const size_t n_qkv = size_t(B) * N * 3 * D, n_out = size_t(B) * N * D, n_probs = size_t(B) * H * N * N;
  auto qkv = random_floats(n_qkv, seed, -1.5f, 1.5f);
  auto dout = random_floats(n_out, seed + 1);
  auto dqkv0 = random_floats(n_qkv, seed + 2);    // backward accumulates into it
  auto garbage = random_floats(n_probs, seed + 3, -100, 100);  // scratch and probs start as junk

  DeviceTensor d_qkv(qkv), d_out(n_out), d_probs(garbage), d_dout(dout), d_dqkv(dqkv0), d_scratch(garbage);
  vk::Recorder rec(ctx());
  ops::attention_forward(rec, d_out.view(), d_probs.view(), d_qkv.view(), B, N, D, H);
  ops::attention_backward(rec, d_dqkv.view(), d_scratch.view(), d_probs.view(), d_qkv.view(), d_dout.view(), B, N,
                          D, H);
  rec.submit_and_wait();

  auto qkvd = to_double(qkv), doutd = to_double(dout);
  std::vector<double> ref_out(n_out), ref_probs(n_probs);
  ops::ref::attention_forward(ref_out.data(), ref_probs.data(), qkvd.data(), B, N, D, H);
  auto ref_dqkv = to_double(dqkv0);
  ops::ref::attention_backward(ref_dqkv.data(), ref_probs.data(), qkvd.data(), doutd.data(), B, N, D, H);

  // Scores are fp32 dot products of d values |q k| <= 2.25, times 1/sqrt(d): absolute error well
  // under 1e-6, which exp turns into the same relative error in P; softmax adds a few ulp.
  // P V sums N terms p v with sum p = 1 and |v| <= 1.5, so out errs by ~1e-7 absolute.
  // Measured on lavapipe: probs <= 8e-8 abs / 1.2e-6 rel, out <= 2.2e-7 abs; 10x margin below.
  require_close(d_probs.read(), ref_probs, 1e-8, 1e-5, "attention probs");
  require_close(d_out.read(), ref_out, 2e-6, 1e-5, "attention out");
  // Gradients chain four fp32 matmuls (K = N or d) and the softmax backward; each entry is a sum
  // of up to N terms of size <= ~1, so rounding grows like N * 6e-8 relative to the terms, not to
  // the (possibly cancelled) result: an absolute floor is needed. Measured: <= 1.5e-7 abs.
  require_close(d_dqkv.read(), ref_dqkv, 2e-6, 1e-5, "attention dqkv");
}

}  // namespace

TEST_CASE("attention on the GPU matches the reference with odd head width and tokens", "[attention][gpu]") {
  // d = 7, N = 50: no tile or subgroup size divides them, and D = 21 puts K and V at 84 and 168
  // bytes into each qkv row, off every device's storage offset alignment.
  check_attention_gpu(2, 50, 3, 7, 600);
}

TEST_CASE("attention on the GPU matches the reference for a ViT-Ti block", "[attention][gpu]") {
  // ViT-Ti/16 at 224 px: N = 196 patches + cls, D = 192, H = 3 heads of d = 64.
  check_attention_gpu(2, 197, 3, 64, 700);
}

TEST_CASE("attention on the GPU matches the reference on a tiny odd shape", "[attention][gpu]") {
  // B = 3, N = 13, H = 2, d = 5: rows shorter than a workgroup, an odd image count.
  check_attention_gpu(3, 13, 2, 5, 800);
}

namespace {

// The fused path against the double reference: out, the saved log-sum-exp and dqkv (which the
// fused backward overwrites, so it starts as junk).
void check_fused_attention_gpu(uint32_t B, uint32_t N, uint32_t H, uint32_t d, uint32_t seed) {
  const uint32_t D = H * d;
  REQUIRE(ops::attention_fused_supported(D, H));
  if (skipped_because(ops::attention_fused_unsupported(ctx().info()))) return;
  const size_t n_qkv = size_t(B) * N * 3 * D, n_out = size_t(B) * N * D, n_rows = size_t(B) * H * N;
  auto qkv = random_floats(n_qkv, seed, -1.5f, 1.5f);
  auto dout = random_floats(n_out, seed + 1);
  auto junk_qkv = random_floats(n_qkv, seed + 2, -100, 100);
  auto junk_rows = random_floats(n_rows, seed + 3, -100, 100);

  DeviceTensor d_qkv(qkv), d_out(n_out), d_lse(junk_rows), d_dout(dout), d_dqkv(junk_qkv), d_delta(junk_rows);
  vk::Recorder rec(ctx());
  ops::attention_fused_forward(rec, d_out.view(), d_lse.view(), d_qkv.view(), B, N, D, H);
  ops::attention_fused_backward(rec, d_dqkv.view(), d_delta.view(), d_lse.view(), d_qkv.view(), d_out.view(),
                                d_dout.view(), B, N, D, H);
  rec.submit_and_wait();

  auto qkvd = to_double(qkv), doutd = to_double(dout);
  std::vector<double> ref_out(n_out), ref_probs(size_t(B) * H * N * N), ref_lse(n_rows);
  ops::ref::attention_forward(ref_out.data(), ref_probs.data(), qkvd.data(), B, N, D, H);
  ops::ref::attention_lse(ref_lse.data(), qkvd.data(), B, N, D, H);
  std::vector<double> ref_dqkv(n_qkv, 0.0);
  ops::ref::attention_backward(ref_dqkv.data(), ref_probs.data(), qkvd.data(), doutd.data(), B, N, D, H);

  // Same error budget as the unfused path (check_attention_gpu): the kernels sum the same terms in
  // a different order. The log-sum-exp is a log of a sum of N positive terms: a few ulp of its
  // magnitude (|lse| <= ~log N + 2.25 * d / sqrt(d)).
  require_close(d_out.read(), ref_out, 2e-6, 1e-5, "fused attention out");
  require_close(d_lse.read(), ref_lse, 2e-6, 1e-5, "fused attention lse");
  require_close(d_dqkv.read(), ref_dqkv, 2e-6, 1e-5, "fused attention dqkv");
}

}  // namespace

TEST_CASE("fused attention matches the reference at the Fashion-MNIST shape", "[attention][gpu]") {
  // N = 17 (16 patches + cls), d = 16, H = 4: heads share workgroups, the last row chunk of each
  // head has one row, the last key chunk one key.
  check_fused_attention_gpu(5, 17, 4, 16, 900);
}

TEST_CASE("fused attention matches the reference with one token, a partial chunk and a whole chunk",
          "[attention][gpu]") {
  check_fused_attention_gpu(3, 1, 2, 16, 910);  // softmax over a single key: out = v
  check_fused_attention_gpu(4, 5, 4, 32, 915);  // the demo's 5 tokens: kernels built for 5-row chunks
}

TEST_CASE("fused attention matches the reference with vec4 accesses instead of 64-bit pairs", "[attention][gpu]") {
  ScopedTuning narrow([](vk::Tuning& k) { k.wide = false; });
  check_fused_attention_gpu(2, 17, 2, 32, 960);
  check_fused_attention_gpu(2, 8, 1, 32, 920);  // exactly one 8-row chunk
  check_fused_attention_gpu(1, 9, 3, 32, 930);  // one full chunk and a single-row chunk
}

TEST_CASE("fused attention matches the reference for a ViT-Ti block", "[attention][gpu]") {
  check_fused_attention_gpu(2, 197, 3, 64, 940);
}

TEST_CASE("fused attention matches the reference on 4097 tokens", "[attention][gpu]") {
  // Long rows (the CPU drivers' default path for every head width it has): 513 key chunks, the
  // last with one key.
  check_fused_attention_gpu(2, 4097, 1, 16, 950);
}

TEST_CASE("fused attention rejects head widths it has no kernel for", "[attention]") {
  CHECK_FALSE(ops::attention_fused_supported(21, 3));  // d = 7
  CHECK_FALSE(ops::attention_fused_supported(64, 3));  // not divisible
  CHECK(ops::attention_fused_supported(64, 4));
  CHECK(ops::attention_fused_supported(768, 12));
}

TEST_CASE("fused attention names the subgroup size of a device it cannot run on", "[attention]") {
  vk::DeviceInfo four_lanes;
  four_lanes.name = "a 4-lane device";
  four_lanes.type = VK_PHYSICAL_DEVICE_TYPE_CPU;
  four_lanes.subgroup_in_compute = true;
  four_lanes.subgroup_ops = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
  four_lanes.subgroup_size = four_lanes.min_subgroup_size = four_lanes.max_subgroup_size = 4;
  four_lanes.subgroup_size_control = true;
  CHECK_THAT(ops::attention_fused_unsupported(four_lanes),
             Catch::Matchers::Contains("fused attention") && Catch::Matchers::Contains("subgroup size 4"));
  vk::DeviceInfo eight_lanes = four_lanes;
  eight_lanes.subgroup_size = eight_lanes.min_subgroup_size = eight_lanes.max_subgroup_size = 8;
  CHECK(ops::attention_fused_unsupported(eight_lanes).empty());
}
