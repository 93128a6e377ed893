// cross_entropy: the reference against hand-computed values and finite differences, the GPU
// forward (losses, mean, argmax == label, lse) and backward against the reference on odd shapes;
// the two-label (Mixup / CutMix) form likewise, and equal to the plain form bit for bit at lambda 1.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>

#include "base/error.h"
#include "harness.h"
#include "ops/cross_entropy.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

std::vector<uint32_t> random_labels(size_t B, uint32_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> y(B);
  for (auto& v : y) v = rng() % K;
  return y;
}

// Labels live in a float-sized device tensor; the shaders read the bits as uint.
std::vector<float> label_bits(const std::vector<uint32_t>& labels) {
  std::vector<float> bits(labels.size());
  std::memcpy(bits.data(), labels.data(), labels.size() * 4);
  return bits;
}

void check_gpu(uint32_t B, uint32_t K, float eps, uint32_t seed, float offset_row0 = 0.0f,
               uint32_t bad_label_row = UINT32_MAX) {
  auto logits = random_floats(size_t(B) * K, seed, -8, 8);
  // Row 0 shifted far from 0: a naive exp(x) would overflow, the max-shifted form must not.
  for (uint32_t k = 0; k < K; ++k) logits[k] += offset_row0;
  auto labels = random_labels(B, K, seed + 1);
  if (bad_label_row < B) labels[bad_label_row] = K + 5;  // clamped by the shaders, never counted correct
  auto dlogits0 = random_floats(size_t(B) * K, seed + 2);  // backward accumulates
  const float dloss = 0.75f;

  DeviceTensor d_logits(logits), d_labels(label_bits(labels)), d_losses(B), d_loss(1), d_correct(B), d_lse(B),
      d_dlogits(dlogits0), d_dloss(std::vector<float>{dloss});
  // The training step's pass (forward and gradient), and the forward alone (evaluation).
  DeviceTensor f_losses(B), f_loss(1), f_correct(B), f_lse(B);
  vk::Recorder rec(ctx());
  ops::cross_entropy_forward_backward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(),
                                      d_dlogits.view(), d_logits.view(), d_labels.view(), d_dloss.view(), B, K, eps);
  ops::cross_entropy_forward(rec, f_losses.view(), f_loss.view(), f_correct.view(), f_lse.view(), d_logits.view(),
                             d_labels.view(), B, K, eps);
  rec.submit_and_wait();
  // The forward alone gives bit for bit what the combined pass gives.
  CHECK(f_losses.read() == d_losses.read());
  CHECK(f_loss.read() == d_loss.read());
  CHECK(f_correct.read() == d_correct.read());
  CHECK(f_lse.read() == d_lse.read());

  auto xd = to_double(logits);
  std::vector<double> ref_losses(B), ref_correct(B), ref_dlogits = to_double(dlogits0), ref_lse(B);
  const double ref_mean = ops::ref::cross_entropy_forward(ref_losses.data(), ref_correct.data(), xd.data(),
                                                          labels.data(), B, K, eps);
  ops::ref::cross_entropy_backward(ref_dlogits.data(), xd.data(), labels.data(), dloss, B, K, eps);
  for (uint32_t b = 0; b < B; ++b) {
    double m = -INFINITY, s = 0;
    for (uint32_t k = 0; k < K; ++k) m = std::max(m, xd[size_t(b) * K + k]);
    for (uint32_t k = 0; k < K; ++k) s += std::exp(xd[size_t(b) * K + k] - m);
    ref_lse[b] = m + std::log(s);
  }

  // Losses are O(1..10): fp32 exp/log and a sum of K <= 1000 terms in [0, 1] give relative
  // errors ~K * 6e-8 in the sum, i.e. ~6e-5 absolute after log in the worst case; 1e-5 rel is typical.
  require_close(d_losses.read(), ref_losses, 2e-5, 1e-5, "cross_entropy losses");
  require_close(d_loss.read(), {ref_mean}, 2e-5, 1e-5, "cross_entropy mean");
  // lse is O(|x|): same sum error, plus rounding of the shifted row (1000 + 8 has ulp 6e-5).
  require_close(d_lse.read(), ref_lse, 2e-5, 1e-6, "cross_entropy lse");
  // Exact: argmax of the same floats (ties are measure-zero with random data).
  require_close(d_correct.read(), ref_correct, 0, 0, "cross_entropy correct");
  // softmax - q is in [-1, 1], scaled by dloss / B. exp(x - lse) inherits lse's absolute fp32 error,
  // about 2 ulps of |x| (1.2e-7 |x|), as a relative error of p; plus 1e-6 for the rest.
  double max_abs = 0;
  for (float v : logits) max_abs = std::max(max_abs, double(std::abs(v)));
  require_close(d_dlogits.read(), ref_dlogits, 1e-6 + 1.2e-7 * max_abs * dloss / B, 1e-6, "cross_entropy dlogits");
}

// Two labels and lambda per row, lambda 0 and 1 and rows whose labels agree among them.
struct MixedCase {
  std::vector<uint32_t> labels, labels_b;
  std::vector<float> lam;
};
MixedCase mixed_case(uint32_t B, uint32_t K, uint32_t seed) {
  MixedCase c{random_labels(B, K, seed), random_labels(B, K, seed + 1), random_floats(B, seed + 2, 0.0f, 1.0f)};
  if (B > 2) {
    c.lam[0] = 1.0f;
    c.lam[1] = 0.0f;
    c.labels_b[2] = c.labels[2];
  }
  return c;
}

// The GPU's mixed pass against the double reference; returns nothing, checks everything.
void check_gpu_mixed(uint32_t B, uint32_t K, float eps, uint32_t seed) {
  const auto logits = random_floats(size_t(B) * K, seed, -8, 8);
  const MixedCase c = mixed_case(B, K, seed + 3);
  const auto dlogits0 = random_floats(size_t(B) * K, seed + 7);
  const float dloss = 0.75f;
  DeviceTensor d_logits(logits), d_labels(label_bits(c.labels)), d_labels_b(label_bits(c.labels_b)), d_lam(c.lam),
      d_losses(B), d_loss(1), d_correct(B), d_lse(B), d_dlogits(dlogits0), d_dloss(std::vector<float>{dloss});
  vk::Recorder rec(ctx());
  ops::cross_entropy_forward_backward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(),
                                      d_dlogits.view(), d_logits.view(), d_labels.view(),
                                      ops::MixedLabels{d_labels_b.view(), d_lam.view()}, d_dloss.view(), B, K, eps);
  rec.submit_and_wait();

  const auto xd = to_double(logits), lam = to_double(c.lam);
  std::vector<double> ref_losses(B), ref_correct(B), ref_dlogits = to_double(dlogits0);
  const double ref_mean = ops::ref::cross_entropy_forward_mixed(ref_losses.data(), xd.data(), c.labels.data(),
                                                                c.labels_b.data(), lam.data(), B, K, eps);
  ops::ref::cross_entropy_backward_mixed(ref_dlogits.data(), xd.data(), c.labels.data(), c.labels_b.data(),
                                         lam.data(), dloss, B, K, eps);
  std::vector<double> unused(B);
  ops::ref::cross_entropy_forward(unused.data(), ref_correct.data(), xd.data(), c.labels.data(), B, K, eps);
  // The tolerances of the single-label form (check_gpu): the same sums, one more weighted term.
  require_close(d_losses.read(), ref_losses, 2e-5, 1e-5, "mixed cross_entropy losses");
  require_close(d_loss.read(), {ref_mean}, 2e-5, 1e-5, "mixed cross_entropy mean");
  require_close(d_correct.read(), ref_correct, 0, 0, "mixed cross_entropy correct (first label)");
  require_close(d_dlogits.read(), ref_dlogits, 1e-6 + 1.2e-7 * 8 * dloss / B, 1e-6, "mixed cross_entropy dlogits");
  CHECK(ctx().validation_errors() == 0);
}

}  // namespace

TEST_CASE("mixed cross_entropy reference: timm's soft target, linear in lambda", "[cross_entropy][ref]") {
  // Two classes, p = (1/4, 3/4), labels (1, 0), lambda 0.3, eps 0.2: off 0.1, on 0.9, so
  // q = 0.3 (0.1, 0.9) + 0.7 (0.9, 0.1) = (0.66, 0.34).
  const std::vector<double> x = {0.0, std::log(3.0)};
  const uint32_t y = 1, y_b = 0;
  const double lam = 0.3;
  double loss = 0;
  ops::ref::cross_entropy_forward_mixed(&loss, x.data(), &y, &y_b, &lam, 1, 2, 0.2);
  CHECK(loss == Approx(-(0.66 * std::log(0.25) + 0.34 * std::log(0.75))).epsilon(1e-14));
  std::vector<double> g(2, 0.0);
  ops::ref::cross_entropy_backward_mixed(g.data(), x.data(), &y, &y_b, &lam, 1.0, 1, 2, 0.2);
  CHECK(g[0] == Approx(0.25 - 0.66).epsilon(1e-14));
  CHECK(g[1] == Approx(0.75 - 0.34).epsilon(1e-14));

  // lambda L(y) + (1 - lambda) L(y_b) on random rows; lambda 1 is the plain loss.
  const uint32_t B = 9, K = 11;
  const auto xs = to_double(random_floats(size_t(B) * K, 50, -4, 4));
  const MixedCase c = mixed_case(B, K, 51);
  const auto lams = to_double(c.lam);
  std::vector<double> mixed(B), la(B), lb(B), corr(B);
  ops::ref::cross_entropy_forward_mixed(mixed.data(), xs.data(), c.labels.data(), c.labels_b.data(), lams.data(), B, K,
                                        0.1);
  ops::ref::cross_entropy_forward(la.data(), corr.data(), xs.data(), c.labels.data(), B, K, 0.1);
  ops::ref::cross_entropy_forward(lb.data(), corr.data(), xs.data(), c.labels_b.data(), B, K, 0.1);
  for (uint32_t b = 0; b < B; ++b) CHECK(mixed[b] == Approx(lams[b] * la[b] + (1 - lams[b]) * lb[b]).epsilon(1e-12));
}

TEST_CASE("mixed cross_entropy reference backward matches finite differences", "[cross_entropy][ref]") {
  const uint32_t B = 7, K = 13;
  const auto x = to_double(random_floats(size_t(B) * K, 60, -4, 4));
  const MixedCase c = mixed_case(B, K, 61);
  const auto lam = to_double(c.lam);
  const double dloss = 1.3;
  for (double eps : {0.0, 0.1}) {
    DYNAMIC_SECTION("eps=" << eps) {
      std::vector<double> dx(x.size(), 0.0);
      ops::ref::cross_entropy_backward_mixed(dx.data(), x.data(), c.labels.data(), c.labels_b.data(), lam.data(), dloss,
                                             B, K, eps);
      auto loss = [&](const std::vector<double>& xs) {
        std::vector<double> l(B);
        return dloss * ops::ref::cross_entropy_forward_mixed(l.data(), xs.data(), c.labels.data(), c.labels_b.data(),
                                                             lam.data(), B, K, eps);
      };
      require_gradient_close(dx, numeric_gradient(loss, x), 1e-8, 1e-6, "mixed cross_entropy dlogits");
    }
  }
}

TEST_CASE("mixed cross_entropy on the GPU matches the reference", "[cross_entropy][gpu]") {
  SECTION("B=7 K=13 smoothed") { check_gpu_mixed(7, 13, 0.1f, 70); }
  SECTION("B=5 K=1000 unsmoothed") { check_gpu_mixed(5, 1000, 0.0f, 71); }
  SECTION("B=300 K=10 smoothed") { check_gpu_mixed(300, 10, 0.1f, 72); }
}

TEST_CASE("mixed cross_entropy with lambda 1 is the plain one bit for bit", "[cross_entropy][gpu]") {
  const uint32_t B = 33, K = 17;
  const auto logits = random_floats(size_t(B) * K, 80, -8, 8);
  const auto labels = random_labels(B, K, 81);
  const std::vector<float> ones(B, 1.0f);
  DeviceTensor d_logits(logits), d_labels(label_bits(labels)), d_labels_b(label_bits(random_labels(B, K, 82))),
      d_lam(ones), d_dloss(std::vector<float>{1.0f});
  std::vector<std::vector<float>> losses, grads;
  for (bool mixed : {false, true}) {
    DeviceTensor d_losses(B), d_loss(1), d_correct(B), d_lse(B), d_dlogits(size_t(B) * K);
    vk::Recorder rec(ctx());
    rec.fill(d_dlogits.view(), 0.0f);
    if (mixed)
      ops::cross_entropy_forward_backward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(),
                                          d_dlogits.view(), d_logits.view(), d_labels.view(),
                                          ops::MixedLabels{d_labels_b.view(), d_lam.view()}, d_dloss.view(), B, K, 0.1f);
    else
      ops::cross_entropy_forward_backward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(),
                                          d_dlogits.view(), d_logits.view(), d_labels.view(), d_dloss.view(), B, K, 0.1f);
    rec.submit_and_wait();
    losses.push_back(d_losses.read());
    losses.back().push_back(d_loss.read()[0]);
    grads.push_back(d_dlogits.read());
  }
  CHECK(std::memcmp(losses[0].data(), losses[1].data(), losses[0].size() * 4) == 0);
  CHECK(std::memcmp(grads[0].data(), grads[1].data(), grads[0].size() * 4) == 0);
}

TEST_CASE("cross_entropy reference matches hand-computed values", "[cross_entropy][ref]") {
  // Equal logits: softmax is uniform, so the loss is log K for any smoothing.
  const uint32_t K = 13;
  std::vector<double> x(K, 2.5), losses(1), correct(1);
  const uint32_t y = 4;
  for (double eps : {0.0, 0.1, 1.0})
    CHECK(ops::ref::cross_entropy_forward(losses.data(), correct.data(), x.data(), &y, 1, K, eps) ==
          Approx(std::log(double(K))).epsilon(1e-14));

  // Two classes, p = (1/4, 3/4), label 1, eps = 0.2: q = (0.1, 0.9).
  std::vector<double> x2 = {0.0, std::log(3.0)};
  const uint32_t y2 = 1;
  const double expect = -(0.1 * std::log(0.25) + 0.9 * std::log(0.75));
  CHECK(ops::ref::cross_entropy_forward(losses.data(), correct.data(), x2.data(), &y2, 1, 2, 0.2) ==
        Approx(expect).epsilon(1e-14));
  CHECK(correct[0] == 1.0);
  // Gradient (p - q) / B = (0.25 - 0.1, 0.75 - 0.9).
  std::vector<double> g(2, 0.0);
  ops::ref::cross_entropy_backward(g.data(), x2.data(), &y2, 1.0, 1, 2, 0.2);
  CHECK(g[0] == Approx(0.15).epsilon(1e-14));
  CHECK(g[1] == Approx(-0.15).epsilon(1e-14));
}

TEST_CASE("cross_entropy reference backward matches finite differences", "[cross_entropy][ref]") {
  const uint32_t B = 7, K = 13;
  auto x = to_double(random_floats(size_t(B) * K, 20, -4, 4));
  auto labels = random_labels(B, K, 21);
  const double dloss = 1.3;  // L = dloss * mean loss, so dloss scaling is checked too
  for (double eps : {0.0, 0.1}) {
    DYNAMIC_SECTION("eps=" << eps) {
      std::vector<double> dx(x.size(), 0.0);
      ops::ref::cross_entropy_backward(dx.data(), x.data(), labels.data(), dloss, B, K, eps);
      auto loss = [&](const std::vector<double>& xs) {
        std::vector<double> l(B), c(B);
        return dloss * ops::ref::cross_entropy_forward(l.data(), c.data(), xs.data(), labels.data(), B, K, eps);
      };
      // Central differences in double: truncation ~eps_fd^2 * f''' ~1e-12, rounding ~1e-16 / 1e-6.
      require_gradient_close(dx, numeric_gradient(loss, x), 1e-8, 1e-6, "cross_entropy dlogits");
    }
  }
}

TEST_CASE("validate_labels names the first label outside 0..K-1", "[cross_entropy][ref]") {
  std::vector<uint32_t> ok = {0, 12, 3}, bad = {0, 13, 14};
  CHECK_NOTHROW(ops::validate_labels(ok.data(), ok.size(), 13));
  CHECK_THROWS_WITH(ops::validate_labels(bad.data(), bad.size(), 13),
                    Catch::Contains("label 13 of batch row 1") && Catch::Contains("[0, 13)"));
}

TEST_CASE("cross_entropy forward and backward on the GPU match the reference", "[cross_entropy][gpu]") {
  SECTION("B=7 K=13 smoothed") { check_gpu(7, 13, 0.1f, 30); }
  SECTION("B=5 K=1000 unsmoothed") { check_gpu(5, 1000, 0.0f, 31); }
  SECTION("B=5 K=1000 smoothed, row 0 shifted by +1000") { check_gpu(5, 1000, 0.1f, 32, 1000.0f); }
  SECTION("B=300 K=10: more rows than lanes per row, K below the workgroup") { check_gpu(300, 10, 0.1f, 33); }
  SECTION("an out-of-range label is clamped, not read out of bounds") { check_gpu(7, 13, 0.1f, 34, -1000.0f, 3); }
}

TEST_CASE("cross_entropy mean loss is reproducible bit for bit", "[cross_entropy][gpu]") {
  const uint32_t B = 257, K = 13;
  auto logits = random_floats(size_t(B) * K, 40, -8, 8);
  DeviceTensor d_logits(logits), d_labels(label_bits(random_labels(B, K, 41))), d_losses(B), d_correct(B), d_lse(B);
  std::vector<float> means;
  for (int run = 0; run < 2; ++run) {
    DeviceTensor d_loss(1);
    vk::Recorder rec(ctx());
    ops::cross_entropy_forward(rec, d_losses.view(), d_loss.view(), d_correct.view(), d_lse.view(), d_logits.view(),
                               d_labels.view(), B, K, 0.1f);
    rec.submit_and_wait();
    means.push_back(d_loss.read()[0]);
  }
  CHECK(std::memcmp(&means[0], &means[1], 4) == 0);
  CHECK(ctx().validation_errors() == 0);
}
