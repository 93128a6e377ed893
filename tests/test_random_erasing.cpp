// Random erasing (data/random_erasing.h): the probability, the area and aspect of the boxes,
// the count, the three fill modes, determinism from the seed, and its place after normalisation
// in transform_train.
#include <catch2/catch.hpp>

#include "harness.h"

#include <cmath>

#include "base/error.h"
#include "data/random_erasing.h"
#include "data/rng.h"
#include "data/transform.h"

using namespace vkvit;
using namespace vkvit::data;
using Catch::Matchers::Contains;

namespace {

cv::Mat constant_image(int w, int h, int channels, float v) { return cv::Mat(h, w, CV_32FC(channels), cv::Scalar::all(v)); }

}  // namespace

TEST_CASE("random erasing fires with probability reprob", "[augment]") {
  RandomErasingConfig c;
  c.probability = 0.25;
  std::mt19937_64 rng(1);
  int fired = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    cv::Mat img = constant_image(16, 16, 1, 5.0f);
    fired += !random_erase(img, c, rng).empty();
  }
  CHECK(fired / double(n) == Approx(0.25).margin(0.01));

  c.probability = 0;  // off: no draw at all, as timm adds no transform
  const std::mt19937_64 before = rng;
  cv::Mat img = constant_image(16, 16, 1, 5.0f);
  CHECK(random_erase(img, c, rng).empty());
  CHECK(rng == before);
}

TEST_CASE("random erasing boxes: area U(0.02, 1/3) of the image, log-uniform aspect in 0.3..1/0.3", "[augment]") {
  // A range where every first try fits (largest side sqrt(0.1 * 3.33) = 0.58 of the image), so
  // the drawn area and aspect are seen without the bias of rejected tries.
  RandomErasingConfig c;
  c.probability = 1;
  c.max_area = 0.1;
  const int W = 200, H = 160, n = 20000;
  std::mt19937_64 rng(2);
  double area_sum = 0, log_aspect_sum = 0, lo = 1e9, hi = -1e9;
  int tall = 0;
  for (int i = 0; i < n; ++i) {
    cv::Mat img = constant_image(W, H, 1, 0.5f);
    const auto boxes = random_erase(img, c, rng);
    REQUIRE(boxes.size() == 1);
    const EraseBox& b = boxes[0];
    REQUIRE(b.width > 0);
    REQUIRE(b.height > 0);
    const double area = double(b.width) * b.height / (W * H), la = std::log(double(b.height) / b.width);
    area_sum += area;
    log_aspect_sum += la;
    lo = std::min(lo, la), hi = std::max(hi, la);
    tall += b.height > b.width;
  }
  CHECK(area_sum / n == Approx(0.06).margin(0.002));  // mean of U(0.02, 0.1), up to rounding to pixels
  CHECK(log_aspect_sum / n == Approx(0.0).margin(0.02));
  CHECK(lo > std::log(0.3) - 0.05);
  CHECK(lo < std::log(0.3) + 0.05);
  CHECK(hi < std::log(1 / 0.3) + 0.05);
  CHECK(hi > std::log(1 / 0.3) - 0.05);
  CHECK(tall / double(n) == Approx(0.5).margin(0.02));

  // timm's defaults: each box inside the image, at most a third of it (plus rounding).
  RandomErasingConfig d;
  d.probability = 1;
  for (int i = 0; i < 2000; ++i) {
    cv::Mat img = constant_image(24, 24, 3, 0.5f);
    for (const EraseBox& b : random_erase(img, d, rng)) {
      REQUIRE(b.x >= 0);
      REQUIRE(b.y >= 0);
      REQUIRE(b.x + b.width <= 24);
      REQUIRE(b.y + b.height <= 24);
      REQUIRE(double(b.width) * b.height <= (1.0 / 3 * 576) + 2 * 24);
    }
  }
}

TEST_CASE("random erasing count: uniform in min..max boxes, each with area / count", "[augment]") {
  RandomErasingConfig c;
  c.probability = 1;
  c.max_count = 3;
  c.max_area = 0.1;
  std::mt19937_64 rng(3);
  int per_count[4] = {0, 0, 0, 0};
  double area3 = 0;
  int n3 = 0;
  for (int i = 0; i < 9000; ++i) {
    cv::Mat img = constant_image(200, 200, 1, 0.0f);
    const auto boxes = random_erase(img, c, rng);
    REQUIRE(boxes.size() >= 1);
    REQUIRE(boxes.size() <= 3);
    ++per_count[boxes.size()];
    if (boxes.size() == 3)
      for (const EraseBox& b : boxes) area3 += double(b.width) * b.height / 40000, ++n3;
  }
  for (int k = 1; k <= 3; ++k) CHECK(per_count[k] / 9000.0 == Approx(1.0 / 3).margin(0.02));
  CHECK(area3 / n3 == Approx(0.06 / 3).margin(0.001));
}

TEST_CASE("random erasing modes: const writes 0, rand one normal per channel, pixel one per value", "[augment]") {
  const int W = 64, H = 48, C = 3;
  auto erase = [&](const std::string& mode, uint64_t seed, EraseBox& box) {
    RandomErasingConfig c;
    c.probability = 1;
    c.mode = mode;
    std::mt19937_64 rng(seed);
    cv::Mat img = constant_image(W, H, C, 7.0f);
    const auto boxes = random_erase(img, c, rng);
    REQUIRE(boxes.size() == 1);
    box = boxes[0];
    return img;
  };
  auto inside = [](const EraseBox& b, int x, int y) { return x >= b.x && x < b.x + b.width && y >= b.y && y < b.y + b.height; };
  double sum = 0, sq = 0;
  long n = 0;
  for (uint64_t seed = 0; seed < 40; ++seed)
    for (const std::string mode : {"const", "rand", "pixel"}) {
      EraseBox b;
      const cv::Mat img = erase(mode, seed, b);
      REQUIRE(b.width * b.height > 0);
      const cv::Vec3f first = img.at<cv::Vec3f>(b.y, b.x);
      int varied = 0;
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          const cv::Vec3f v = img.at<cv::Vec3f>(y, x);
          if (!inside(b, x, y)) {
            REQUIRE(v == cv::Vec3f(7, 7, 7));  // untouched outside the box
            continue;
          }
          if (mode == "const") REQUIRE(v == cv::Vec3f(0, 0, 0));
          if (mode == "rand") REQUIRE(v == first);
          varied += v != first;
          if (mode == "pixel")
            for (int c = 0; c < C; ++c) sum += v[c], sq += double(v[c]) * v[c], ++n;
        }
      if (mode == "rand") CHECK((first[0] != first[1] && first[1] != first[2]));
      if (mode == "pixel") CHECK(varied >= b.width * b.height - 1);
    }
  const double mean = sum / n;
  CHECK(mean == Approx(0.0).margin(0.02));
  CHECK(std::sqrt(sq / n - mean * mean) == Approx(1.0).margin(0.02));
}

TEST_CASE("random erasing is a function of the seed and comes after normalisation in transform_train",
          "[augment]") {
  cv::Mat card(30, 40, CV_8UC3, cv::Scalar(200, 30, 90));
  TransformConfig c;
  c.image_size = 20;
  c.reprob = 1;
  c.remode = "const";
  for (uint64_t seed = 0; seed < 10; ++seed) {
    std::mt19937_64 a(seed), b(seed);
    const cv::Mat x = transform_train(card, c, a), y = transform_train(card, c, b);
    CHECK(cv::norm(x, y, cv::NORM_INF) == 0);
    // const erases to 0 in normalised units (the mean); the flat card normalises to nonzero values.
    int zeros = 0;
    for (int yy = 0; yy < x.rows; ++yy)
      for (int xx = 0; xx < x.cols; ++xx) zeros += x.at<cv::Vec3f>(yy, xx) == cv::Vec3f(0, 0, 0);
    CHECK(zeros > 0);
  }
  c.remode = "noise";
  CHECK_THROWS_WITH(validate(c), Contains("const, rand or pixel"));
  c.remode = "pixel";
  c.reprob = 1.5f;
  CHECK_THROWS_WITH(validate(c), Contains("probability"));
}
