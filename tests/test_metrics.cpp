// Metrics: top-k on a hand-worked example (ties, NaN, k > classes), per-class accuracy, the
// running mean and the images-per-second timer.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <thread>

#include "base/error.h"
#include "train/metrics.h"

using namespace vkvit;
using namespace vkvit::train;

TEST_CASE("top-k accuracy on a hand example", "[metrics]") {
  // 4 classes. Row ranks of the label: row 0 rank 0, row 1 rank 2, row 2 rank 3, row 3 rank 1.
  const float logits[] = {
      5.0f, 1.0f, 0.0f, -1.0f,  // label 0: top-1
      0.3f, 0.1f, 0.9f, 0.5f,   // label 1: behind 2 and 3 and 0 -> rank 3 (top-4 only)
      2.0f, 2.0f, 2.0f, 2.0f,   // label 3: all tied, lower indices first -> rank 3
      1.0f, 3.0f, -2.0f, 0.5f,  // label 0: behind class 1 -> rank 1
  };
  const int32_t labels[] = {0, 1, 3, 0};
  CHECK(label_rank(logits + 4, 4, 1) == 3);
  CHECK(label_rank(logits + 8, 4, 3) == 3);
  CHECK(label_rank(logits + 8, 4, 0) == 0);  // a tie goes to the lower index
  CHECK(topk_correct(logits, labels, 4, 4, 1) == 1);
  CHECK(topk_correct(logits, labels, 4, 4, 2) == 2);
  CHECK(topk_correct(logits, labels, 4, 4, 3) == 2);
  CHECK(topk_correct(logits, labels, 4, 4, 4) == 4);
  CHECK(topk_correct(logits, labels, 4, 4, 5) == 4);  // k is clamped to the number of classes

  const float nan_row[] = {std::nanf(""), 1.0f, 2.0f};
  const int32_t nan_label[] = {0};
  CHECK(topk_correct(nan_row, nan_label, 1, 3, 3) == 0);  // a NaN logit is never right
  const int32_t other[] = {2};
  CHECK(topk_correct(nan_row, other, 1, 3, 1) == 1);  // a NaN elsewhere does not win

  const int32_t bad[] = {0, 4, 0, 0};
  CHECK_THROWS_WITH(topk_correct(logits, bad, 4, 4, 1), "metrics: label 4 of row 1 is outside [0, 4)");
}

TEST_CASE("accuracy meter: top-1, top-5 and per-class over several batches", "[metrics]") {
  const uint32_t K = 6;
  AccuracyMeter m(K);
  CHECK(std::isnan(m.top1()));
  // Batch 1: logits favour class (b % K) strongly and the label's class second.
  std::vector<float> logits(8 * K);
  std::vector<int32_t> labels(8);
  for (uint32_t b = 0; b < 8; ++b) {
    for (uint32_t c = 0; c < K; ++c) logits[b * K + c] = -float(c);  // class 0 best, then 1, 2, ...
    labels[b] = int32_t(b % K);                                       // rank = label
  }
  m.add(logits.data(), labels.data(), 8);
  // Labels 0..5,0,1: ranks 0,1,2,3,4,5,0,1. top-1: 2 of 8; top-5: 7 of 8.
  CHECK(m.count() == 8);
  CHECK(m.top1() == 2.0 / 8);
  CHECK(m.top5() == 7.0 / 8);
  m.add(logits.data(), labels.data(), 2);  // labels 0, 1 again
  CHECK(m.top1() == 3.0 / 10);
  const std::vector<double> pc = m.per_class();
  CHECK(pc[0] == 1.0);  // 3 of 3
  CHECK(pc[1] == 0.0);  // 0 of 3
  CHECK(m.per_class_total()[1] == 3);
  CHECK(m.per_class_total()[5] == 1);
  m.reset();
  CHECK(m.count() == 0);
  m.add(logits.data(), labels.data(), 1);
  CHECK(std::isnan(m.per_class()[3]));  // no samples of class 3
  CHECK(m.per_class()[0] == 1.0);

  // With fewer than 5 classes top-5 is top-K: always right.
  AccuracyMeter three(3);
  const float l3[] = {0, 1, 2};
  const int32_t y3[] = {0};
  three.add(l3, y3, 1);
  CHECK(three.top1() == 0);
  CHECK(three.top5() == 1);
  CHECK_THROWS_AS(AccuracyMeter(0), Error);
}

TEST_CASE("running mean and images per second", "[metrics]") {
  RunningMean loss;
  CHECK(std::isnan(loss.mean()));
  loss.add(2.0, 64);  // a batch of 64 with mean loss 2
  loss.add(1.0, 32);
  CHECK(loss.mean() == Approx((2.0 * 64 + 1.0 * 32) / 96));
  CHECK(loss.weight() == 96);
  loss.reset();
  loss.add(0.5);
  CHECK(loss.mean() == 0.5);

  Throughput t;
  CHECK(t.images_per_s() == 0);
  t.add(1000, 2.0);
  t.add(500, 1.0);
  CHECK(t.images_per_s() == 500);
  t.reset();
  t.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  t.add_images(100);
  t.stop();
  const double s = t.seconds();
  CHECK(s >= 0.05);
  CHECK(s < 5.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(t.seconds() == s);  // stopped: a pause does not count
  CHECK(t.images_per_s() == Approx(100 / s));
}

TEST_CASE("softmax and top_classes: probabilities of a row and its k best classes, ties by lower index", "[metrics]") {
  const float row[5] = {1.0f, 3.0f, 3.0f, -2.0f, 1000.0f};
  const std::vector<double> p = softmax(row, 4);
  REQUIRE(p.size() == 4);
  double sum = 0;
  for (double v : p) sum += v;
  CHECK(sum == Approx(1.0));
  CHECK(p[1] == Approx(std::exp(2.0) / (2 * std::exp(2.0) + 1 + std::exp(-3.0))));
  CHECK(softmax(row, 5)[4] == Approx(1.0));  // a large logit does not overflow
  CHECK(top_classes(p, 3) == std::vector<uint32_t>{1, 2, 0});
  CHECK(top_classes(p, 9) == std::vector<uint32_t>{1, 2, 0, 3});  // k past the classes: all of them
  CHECK(top_classes({0.5, 0.5, 0.5}, 2) == std::vector<uint32_t>{0, 1});
}
