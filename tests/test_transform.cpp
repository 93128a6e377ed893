// data: transform geometry (torchvision's resize/center-crop arithmetic, RandomResizedCrop bounds),
// PIL-style resampling on hand-derived cases, train-transform determinism, and patchify's layout.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <random>

#include "base/error.h"
#include "data/patchify.h"
#include "data/rng.h"
#include "data/transform.h"

using namespace vkvit;
using namespace vkvit::data;
using Catch::Matchers::Contains;

namespace {

// mean 0, std 1: outputs are x / 255, so pixel values can be read back.
TransformConfig identity_norm(int size, int channels = 3) {
  TransformConfig c;
  c.image_size = size;
  c.channels = channels;
  c.mean = {0.0f};
  c.std = {1.0f};
  return c;
}

// channel 0 = x, channel 1 = y, channel 2 = 77.
cv::Mat ramp(int w, int h) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(uint8_t(x), uint8_t(y), 77);
  return m;
}

}  // namespace

TEST_CASE("resample follows PIL: antialiased bilinear shrink and exact identity", "[data]") {
  // Shrinking 8 -> 4 with bilinear widens the triangle to 4 taps (1, 3, 3, 1) / 8 around each
  // output centre, so a single bright pixel at x = 3 spreads into outputs 1 and 2 (not only 1).
  cv::Mat impulse(1, 8, CV_8UC1, cv::Scalar(0));
  impulse.at<uint8_t>(0, 3) = 200;
  const cv::Mat out = resample(impulse, {0, 0, 8, 1}, 4, 1, "bilinear");
  REQUIRE(out.type() == CV_32FC1);
  CHECK(out.at<float>(0, 0) == Approx(0.0f).margin(1e-4));
  CHECK(out.at<float>(0, 1) == Approx(75.0f).epsilon(1e-6));
  CHECK(out.at<float>(0, 2) == Approx(25.0f).epsilon(1e-6));
  CHECK(out.at<float>(0, 3) == Approx(0.0f).margin(1e-4));

  cv::Mat img(7, 9, CV_8UC3);
  cv::randu(img, 0, 256);
  for (const char* f : {"nearest", "bilinear", "bicubic"}) {
    cv::Mat same = resample(img, {0, 0, 9, 7}, 9, 7, f), want;
    img.convertTo(want, CV_32FC3);
    INFO(f);
    CHECK(cv::norm(same, want, cv::NORM_INF) < 1e-3);
  }
  // resample8 gives the same values as 8 bits.
  cv::Mat as8;
  resample(img, {1, 2, 7, 5}, 11, 3, "bicubic").convertTo(as8, CV_8U);
  CHECK(cv::norm(resample8(img, {1, 2, 7, 5}, 11, 3, "bicubic"), as8, cv::NORM_INF) == 0);
  // Nearest picks floor((i + 0.5) * scale): 9 -> 3 takes columns 1, 4, 7.
  const cv::Mat n = resample(img, {0, 0, 9, 7}, 3, 7, "nearest");
  for (int i = 0; i < 3; ++i) CHECK(n.at<cv::Vec3f>(2, i)[1] == float(img.at<cv::Vec3b>(2, 1 + 3 * i)[1]));
  CHECK_THROWS_WITH(resample(img, {0, 0, 9, 7}, 3, 3, "lanczos"), Contains("interpolation"));
}

TEST_CASE("bicubic overshoot is clamped to 8 bits after each pass, as Pillow", "[data]") {
  // A step 0 | 255 enlarged 4 -> 8: the bicubic lobes overshoot to about -18 and 273 beside the
  // edge; Pillow clamps each pass to [0, 255] (after rounding: acc + 2^21 >> 22).
  cv::Mat step(1, 4, CV_8UC1, cv::Scalar(0));
  step.at<uint8_t>(0, 2) = step.at<uint8_t>(0, 3) = 255;
  const cv::Mat up = resample8(step, {0, 0, 4, 1}, 8, 1, "bicubic");
  // Output i samples source position (i + 0.5) / 2 - 0.5 with taps f(j - that): at i = 2 (0.75)
  // only tap 2 is bright, with weight f(1.25) = -0.0703125, so 255 * -0.0703 = -17.9 clamps to 0;
  // i = 3 (1.25) is 255 * (f(0.75) + f(1.75)) = 255 * 0.203125 = 51.8 -> 52. Pillow 9.4 gives
  // these eight values.
  const std::vector<int> want{0, 0, 0, 52, 203, 255, 255, 255};
  for (int i = 0; i < 8; ++i) CHECK(int(up.at<uint8_t>(0, i)) == want[size_t(i)]);
  // Two passes: a 4x4 checker of 2x2 blocks of 0 / 255 enlarged to 9x9. Pillow 9.4's output,
  // clamped after the horizontal pass and again after the vertical one.
  cv::Mat checker(4, 4, CV_8UC1);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) checker.at<uint8_t>(y, x) = uint8_t(((x / 2 + y / 2) % 2) * 255);
  const int pillow[9][9] = {{0, 0, 0, 8, 128, 247, 255, 255, 255},       {0, 0, 0, 5, 128, 250, 255, 255, 255},
                            {0, 0, 0, 0, 128, 255, 255, 255, 255},       {8, 8, 8, 16, 128, 239, 247, 247, 247},
                            {128, 128, 128, 128, 128, 128, 128, 128, 128}, {247, 247, 247, 239, 128, 16, 8, 8, 8},
                            {255, 255, 255, 255, 128, 0, 0, 0, 0},       {255, 255, 255, 250, 128, 5, 0, 0, 0},
                            {255, 255, 255, 247, 128, 8, 0, 0, 0}};
  const cv::Mat big = resample8(checker, {0, 0, 4, 4}, 9, 9, "bicubic");
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 9; ++x) {
      INFO("y " << y << " x " << x);
      CHECK(int(big.at<uint8_t>(y, x)) == pillow[y][x]);
    }
}

TEST_CASE("eval transform resizes the shorter side to size over crop_pct and center-crops", "[data]") {
  // 300x200 (W x H), size 224, crop_pct 0.875: shorter side 256, longer int(256 * 300 / 200) = 384,
  // crop at x = 80, y = 16.
  cv::Mat img(200, 300, CV_8UC3);
  cv::randu(img, 0, 256);
  TransformConfig c = identity_norm(224);
  c.interpolation = "bicubic";
  const cv::Mat e = transform_eval(img, c);
  REQUIRE(e.type() == CV_32FC3);
  REQUIRE(e.size() == cv::Size(224, 224));
  cv::Mat full = resample(img, {0, 0, 300, 200}, 384, 256, "bicubic");
  cv::Mat want = full(cv::Rect(80, 16, 224, 224)) / 255.0f;
  CHECK(cv::norm(e, want, cv::NORM_INF) < 1e-5);

  // A ramp pins the geometry down independently: upsampling bilinearly, output column x samples
  // the source at (x + left + 0.5) * in / out - 0.5, which is also the ramp's value there (rounded
  // to 8 bits, as Pillow's output).
  for (bool landscape : {true, false}) {
    INFO("landscape " << landscape);
    const int W = landscape ? 250 : 200, H = landscape ? 200 : 250;
    TransformConfig b = identity_norm(224);
    b.interpolation = "bilinear";
    const cv::Mat r = transform_eval(ramp(W, H), b);
    // Shorter side 256, longer 320; crop offsets (320 - 224) / 2 = 48 and (256 - 224) / 2 = 16.
    const int left = landscape ? 48 : 16, top = landscape ? 16 : 48;
    const double sx = W / (landscape ? 320.0 : 256.0), sy = H / (landscape ? 256.0 : 320.0);
    for (int x : {3, 100, 220})
      CHECK(r.at<cv::Vec3f>(50, x)[0] * 255.0f == Approx((x + left + 0.5) * sx - 0.5).margin(0.5 + 1e-3));
    for (int y : {3, 100, 220})
      CHECK(r.at<cv::Vec3f>(y, 50)[1] * 255.0f == Approx((y + top + 0.5) * sy - 0.5).margin(0.5 + 1e-3));
    CHECK(r.at<cv::Vec3f>(7, 7)[2] * 255.0f == Approx(77.0f).margin(1e-3));
  }

  // Normalisation: (x / 255 - mean) / std per channel.
  TransformConfig n;
  n.image_size = 8;
  const cv::Mat flat(10, 10, CV_8UC3, cv::Scalar(255, 0, 51));
  const cv::Vec3f v = transform_eval(flat, n).at<cv::Vec3f>(4, 4);
  CHECK(v[0] == Approx((1.0 - 0.485) / 0.229).epsilon(1e-5));
  CHECK(v[1] == Approx((0.0 - 0.456) / 0.224).epsilon(1e-5));
  CHECK(v[2] == Approx((0.2 - 0.406) / 0.225).epsilon(1e-5));

  // Extreme shapes.
  CHECK(transform_eval(cv::Mat(1, 1, CV_8UC3, cv::Scalar(1, 2, 3)), n).size() == cv::Size(8, 8));
  CHECK(transform_eval(cv::Mat(16, 10000, CV_8UC3, cv::Scalar(1, 2, 3)), c).size() == cv::Size(224, 224));
  CHECK_THROWS_WITH(transform_eval(cv::Mat(4, 4, CV_8UC1), n), Contains("channel"));
}

TEST_CASE("train transform: output size, determinism per rng, crop bounds and flips", "[data]") {
  cv::Mat img(60, 90, CV_8UC3);
  cv::randu(img, 0, 256);
  TransformConfig c;
  c.image_size = 32;
  std::mt19937_64 a(123), b(123), other(124);
  const cv::Mat ta = transform_train(img, c, a), tb = transform_train(img, c, b), tc = transform_train(img, c, other);
  REQUIRE(ta.size() == cv::Size(32, 32));
  REQUIRE(ta.type() == CV_32FC3);
  CHECK(cv::norm(ta, tb, cv::NORM_INF) == 0);
  CHECK(cv::norm(ta, tc, cv::NORM_INF) > 0);

  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::mt19937_64 rng(seed);
    const CropBox box = random_resized_crop_box(90, 60, c, rng);
    INFO("seed " << seed);
    REQUIRE(box.width > 0);
    REQUIRE(box.height > 0);
    REQUIRE(box.x + box.width <= 90);
    REQUIRE(box.y + box.height <= 60);
    const double area = double(box.width) * box.height / (90.0 * 60.0);
    CHECK(area <= 1.0);
    CHECK(area >= 0.06);  // 0.08 minus rounding of w and h
  }
  // An impossible ratio range falls back to the whole image clamped to the ratio, centred.
  TransformConfig tall = c;
  tall.ratio_min = tall.ratio_max = 0.5f;
  tall.scale_min = tall.scale_max = 1.0f;
  std::mt19937_64 rng(5);
  const CropBox fb = random_resized_crop_box(90, 60, tall, rng);
  CHECK(fb.width == 30);
  CHECK(fb.height == 60);
  CHECK(fb.x == 30);

  // Scale and ratio pinned to the whole image: the output is the eval-free resize, flipped or not.
  TransformConfig whole = identity_norm(30);
  whole.scale_min = whole.scale_max = 1.0f;
  whole.ratio_min = whole.ratio_max = 1.5f;
  whole.interpolation = "bilinear";
  const cv::Mat plain = resample(img, {0, 0, 90, 60}, 30, 30, "bilinear") / 255.0f;
  cv::Mat mirrored;
  cv::flip(plain, mirrored, 1);
  int flipped = 0, kept = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    std::mt19937_64 r(seed);
    const cv::Mat t = transform_train(img, whole, r);
    if (cv::norm(t, plain, cv::NORM_INF) < 1e-5) ++kept;
    else if (cv::norm(t, mirrored, cv::NORM_INF) < 1e-5) ++flipped;
  }
  CHECK(kept + flipped == 40);
  CHECK(kept > 5);
  CHECK(flipped > 5);
  whole.hflip = 0.0f;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    std::mt19937_64 r(seed);
    CHECK(cv::norm(transform_train(img, whole, r), plain, cv::NORM_INF) < 1e-5);
  }
}

TEST_CASE("padded random crop: torchvision's RandomCrop(size, padding) shifts with zero fill, uniform offsets", "[data]") {
  // The reference is RandomCrop's definition: pad by p with 0, then crop the size x size window at
  // (top, left), both drawn uniform in [0, 2p], top first; out(y, x) = in(y + top - p, x + left - p)
  // where that lies inside the image, else 0.
  cv::Mat img(9, 11, CV_8UC1);
  cv::randu(img, 1, 256);  // no zeros, so the fill is recognisable
  const int p = 3;
  std::map<std::pair<int, int>, int> seen;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    std::mt19937_64 rng(seed), same(seed);
    const cv::Mat out = padded_random_crop(img, p, rng);
    REQUIRE(out.size() == img.size());
    const int top = int(uniform_below(same, 2 * p + 1)), left = int(uniform_below(same, 2 * p + 1));
    ++seen[{top, left}];
    for (int y = 0; y < img.rows; ++y)
      for (int x = 0; x < img.cols; ++x) {
        const int sy = y + top - p, sx = x + left - p;
        const bool inside = sy >= 0 && sy < img.rows && sx >= 0 && sx < img.cols;
        REQUIRE(int(out.at<uint8_t>(y, x)) == (inside ? int(img.at<uint8_t>(sy, sx)) : 0));
      }
  }
  // All 49 offsets occur, each near 2000 / 49 = 40.8 times (binomial sd 6.3: 5 sd either side).
  REQUIRE(seen.size() == size_t((2 * p + 1) * (2 * p + 1)));
  for (const auto& [offset, count] : seen) {
    INFO("offset " << offset.first << ", " << offset.second);
    CHECK(count > 9);
    CHECK(count < 73);
  }

  // In the train transform: eval geometry (a 28 px image at crop_pct 1 is itself), then the crop,
  // then the flip, drawing in that order; normalisation last.
  cv::Mat small(28, 28, CV_8UC1);
  cv::randu(small, 0, 256);
  TransformConfig c = identity_norm(28, 1);
  c.crop_pct = 1.0f;
  c.random_resized_crop = false;
  c.crop_padding = 2;
  c.hflip = 0.5f;
  int shifted = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed), same(seed);
    cv::Mat expect = padded_random_crop(small, 2, same);
    if (uniform01(same) < 0.5) cv::flip(expect, expect, 1);
    cv::Mat expect_f;
    expect.convertTo(expect_f, CV_32F, 1.0 / 255.0);
    const cv::Mat t = transform_train(small, c, rng);
    CHECK(cv::norm(t, expect_f, cv::NORM_INF) < 1e-6);
    shifted += cv::norm(expect, small, cv::NORM_INF) > 0;
  }
  CHECK(shifted > 10);
  c.random_resized_crop = true;
  CHECK_THROWS_WITH(validate(c), Contains("crop_padding needs random_resized_crop off"));
}

TEST_CASE("transform config validation names the bad field", "[data]") {
  TransformConfig c;
  c.mean = {0.5f, 0.5f};
  CHECK_THROWS_WITH(validate(c), Contains("mean"));
  c = TransformConfig{};
  c.crop_pct = 1.5f;
  CHECK_THROWS_WITH(validate(c), Contains("crop_pct"));
  c = TransformConfig{};
  c.interpolation = "area";
  CHECK_THROWS_WITH(validate(c), Contains("interpolation"));
  c = TransformConfig{};
  c.channels = 1;
  c.mean = {0.5f};
  c.std = {0.5f};
  CHECK_NOTHROW(validate(c));
}

TEST_CASE("patchify lays each patch out as c then py then px, patches row-major", "[data]") {
  // H 4, W 6, C 3, P 2: value = 100 c + 10 y + x, so every element names its source.
  cv::Mat img(4, 6, CV_32FC3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) img.at<cv::Vec3f>(y, x) = cv::Vec3f(10.0f * y + x, 100 + 10.0f * y + x, 200 + 10.0f * y + x);
  std::vector<float> out(6 * 12, -1.0f);
  patchify(img, 2, out.data());
  // Patch row 4 = grid (1, 1): source rows 2..3, columns 2..3.
  const std::vector<float> row4(out.begin() + 4 * 12, out.begin() + 5 * 12);
  CHECK(row4 == std::vector<float>{22, 23, 32, 33, 122, 123, 132, 133, 222, 223, 232, 233});
  const std::vector<float> row2(out.begin() + 2 * 12, out.begin() + 3 * 12);  // grid (0, 2): columns 4..5
  CHECK(row2 == std::vector<float>{4, 5, 14, 15, 104, 105, 114, 115, 204, 205, 214, 215});
  for (float v : out) CHECK(v >= 0.0f);

  cv::Mat g(4, 4, CV_32FC1);
  for (int i = 0; i < 16; ++i) g.at<float>(i / 4, i % 4) = float(i);
  std::vector<float> o(16);
  patchify(g, 2, o.data());
  CHECK(o == std::vector<float>{0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15});
  CHECK_THROWS_WITH(patchify(img, 4, out.data()), Contains("multiple of patch size"));
}
