// RandAugment (data/rand_augment.h): timm's string syntax, every op against Pillow's own output
// (tests/fixtures/augment, written by tests/reference/make_augment_fixtures.py), the magnitude
// draws, the op choice, timm's argument formulas, determinism from the seed and the place of
// RandAugment in transform_train.
#include <catch2/catch.hpp>

#include "harness.h"
#include "stripes.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "data/loader.h"
#include "data/rand_augment.h"
#include "data/rng.h"
#include "data/transform.h"

using namespace vkvit;
using namespace vkvit::data;
using Catch::Matchers::Contains;

namespace {

const std::string kFixtures = std::string(VKVIT_SOURCE_DIR) + "/tests/fixtures/augment/";

cv::Mat read_fixture(const std::string& name) {
  cv::Mat m = cv::imread(kFixtures + name, cv::IMREAD_UNCHANGED);
  REQUIRE_FALSE(m.empty());
  if (m.channels() == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
  return m;
}

int max_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  REQUIRE(a.size() == b.size());
  REQUIRE(a.type() == b.type());
  cv::Mat d;
  cv::absdiff(a, b, d);
  double mx = 0;
  cv::minMaxLoc(d.reshape(1), nullptr, &mx);
  return int(mx);
}

// The op of a fixture line, as timm's AugmentOp calls it.
cv::Mat run_case(const std::string& op, double arg, const std::string& filter, const cv::Mat& in) {
  const std::array<uint8_t, 4> fill = in.channels() == 3 ? std::array<uint8_t, 4>{124, 116, 104, 0}
                                                         : std::array<uint8_t, 4>{124, 0, 0, 0};
  if (op == "auto_contrast") return auto_contrast(in);
  if (op == "equalize") return equalize(in);
  if (op == "invert") return invert(in);
  if (op == "posterize") return posterize(in, int(arg));
  if (op == "solarize") return solarize(in, int(arg));
  if (op == "solarize_add") return solarize_add(in, int(arg));
  if (op == "color") return enhance_color(in, arg);
  if (op == "contrast") return enhance_contrast(in, arg);
  if (op == "brightness") return enhance_brightness(in, arg);
  if (op == "sharpness") return enhance_sharpness(in, arg);
  const AffineFilter f = affine_filter(filter);
  if (op == "rotate") return rotate(in, arg, f, fill);
  if (op == "shear_x") return affine(in, {1, arg, 0, 0, 1, 0}, f, fill);
  if (op == "shear_y") return affine(in, {1, 0, 0, arg, 1, 0}, f, fill);
  if (op == "translate_x") return affine(in, {1, 0, arg * in.cols, 0, 1, 0}, f, fill);
  if (op == "translate_y") return affine(in, {1, 0, 0, 0, 1, arg * in.rows}, f, fill);
  FAIL("unknown op in cases.txt: " << op);
  return {};
}

}  // namespace

// Measured with Pillow 9.4 on x86-64: all 134 cases bit-exact (largest difference 0). One grey
// level is allowed for another libm's cos/sin in rotate and another compiler's float rounding.
TEST_CASE("every RandAugment op matches Pillow's output within one grey level", "[augment]") {
  std::ifstream cases(kFixtures + "cases.txt");
  REQUIRE(cases.good());
  std::string line;
  int n = 0;
  while (std::getline(cases, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    std::string out, in, op, filter;
    double arg = 0;
    REQUIRE(bool(s >> out >> in >> op >> arg >> filter));
    const int d = max_abs_diff(run_case(op, arg, filter, read_fixture(in)), read_fixture(out));
    INFO(line << ": max difference " << d);
    CHECK(d <= 1);
    ++n;
  }
  CHECK(n == 134);  // every line of make_augment_fixtures.py's cases.txt was read
}

TEST_CASE("RandAugment strings parse as timm parses them", "[augment]") {
  RandAugmentConfig c = parse_rand_augment("rand-m9-mstd0.5-inc1");  // DeiT's recipe
  CHECK(c.magnitude == 9);
  CHECK(c.magnitude_std == 0.5);
  CHECK(c.increasing);
  CHECK(c.num_ops == 2);
  CHECK(c.prob == 0.5);
  CHECK(c.magnitude_max == 10);

  c = parse_rand_augment("rand");  // timm's defaults
  CHECK(c.magnitude == 10);
  CHECK(c.magnitude_std == 0);
  CHECK_FALSE(c.increasing);

  c = parse_rand_augment("rand-n3-p0.8-mmax15-m12");  // any order
  CHECK(c.num_ops == 3);
  CHECK(c.prob == 0.8);
  CHECK(c.magnitude_max == 15);
  CHECK(c.magnitude == 12);

  CHECK(parse_rand_augment("rand-inc0").increasing);  // timm: bool("0") is True
  CHECK(std::isinf(parse_rand_augment("rand-mstd101").magnitude_std));  // > 100: uniform magnitudes
  CHECK(parse_rand_augment("rand-mstd100").magnitude_std == 100);
  CHECK(parse_rand_augment("rand-mmax0").magnitude_max == 10);  // timm: `magnitude_max or 10`
}

TEST_CASE("a bad RandAugment string is one line naming it and the accepted form", "[augment]") {
  for (const std::string bad : {"", "v0", "augmix-m5", "randm9", "rand-", "rand-m", "rand-x9", "rand-m9.5",
                                "rand-n-1", "rand-p0.5x", "rand-mstd1e999", "rand-tweights", "rand-m99999999999"}) {
    INFO("'" << bad << "'");
    try {
      parse_rand_augment(bad);
      FAIL("accepted");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg, Contains("'" + bad + "'") && Contains("accepted: rand[-m<int>]"));
      CHECK(msg.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("RandAugment magnitudes: N(m, mstd) clipped to 0..mmax, uniform for mstd > 100, fixed for 0",
          "[augment]") {
  std::mt19937_64 rng(7);
  const int n = 40000;
  // N(5, 2) clipped to [0, 10]: 2.5 sigma each side, P = 0.00621 at each bound.
  RandAugmentConfig c = parse_rand_augment("rand-m5-mstd2");
  double sum = 0, sq = 0;
  int at0 = 0, at10 = 0;
  for (int i = 0; i < n; ++i) {
    const double m = draw_magnitude(c, rng);
    REQUIRE(m >= 0.0);
    REQUIRE(m <= 10.0);
    at0 += m == 0.0;
    at10 += m == 10.0;
    sum += m;
    sq += m * m;
  }
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  CHECK(mean == Approx(5.0).margin(0.05));
  CHECK(sd == Approx(1.98).margin(0.04));  // 2, a little less for the clipped tails
  CHECK(at0 / double(n) == Approx(0.00621).margin(0.0015));
  CHECK(at10 / double(n) == Approx(0.00621).margin(0.0015));

  // DeiT's m9 mstd0.5: P(N(9, 0.5) > 10) = 0.0228 lands on 10; mmax raises the bound.
  c = parse_rand_augment("rand-m9-mstd0.5");
  int clipped = 0;
  for (int i = 0; i < n; ++i) clipped += draw_magnitude(c, rng) == 10.0;
  CHECK(clipped / double(n) == Approx(0.0228).margin(0.003));
  c = parse_rand_augment("rand-m9-mstd0.5-mmax20");
  double top = 0;
  for (int i = 0; i < n; ++i) top = std::max(top, draw_magnitude(c, rng));
  CHECK(top > 10.5);

  c = parse_rand_augment("rand-m8-mstd101");  // U(0, 8)
  sum = 0;
  double lo = 8, hi = 0;
  for (int i = 0; i < n; ++i) {
    const double m = draw_magnitude(c, rng);
    sum += m, lo = std::min(lo, m), hi = std::max(hi, m);
  }
  CHECK(sum / n == Approx(4.0).margin(0.05));
  CHECK(lo < 0.01);
  CHECK(hi > 7.99);
  CHECK(hi < 8.0);

  c = parse_rand_augment("rand-m7");  // no noise: exactly m, and no draw
  const std::mt19937_64 before = rng;
  CHECK(draw_magnitude(c, rng) == 7.0);
  CHECK(rng == before);
}

TEST_CASE("RandAugment draws n ops with replacement, each applied with probability p", "[augment]") {
  std::mt19937_64 rng(11);
  const RandAugmentConfig c = parse_rand_augment("rand-m9-mstd0.5-inc1");
  std::vector<int> per_op(kAugmentOpCount, 0);
  int uses = 0, negative_rotations = 0, rotations = 0;
  const int calls = 30000;
  for (int i = 0; i < calls; ++i)
    for (const OpUse& u : draw_rand_augment(c, rng)) {
      ++uses;
      ++per_op[size_t(u.op)];
      if (u.op == AugmentOp::rotate) ++rotations, negative_rotations += u.argument < 0;
    }
  CHECK(uses / double(calls) == Approx(1.0).margin(0.02));  // 2 ops x p 0.5
  for (int k = 0; k < kAugmentOpCount; ++k) {
    INFO(augment_op_name(AugmentOp(k)));
    CHECK(per_op[size_t(k)] / double(uses) == Approx(1.0 / 15).margin(0.006));
  }
  CHECK(negative_rotations / double(rotations) == Approx(0.5).margin(0.04));

  std::mt19937_64 r2(3);
  CHECK(draw_rand_augment(parse_rand_augment("rand-n4-p1"), r2).size() == 4);
  CHECK(draw_rand_augment(parse_rand_augment("rand-n3-p0"), r2).empty());
  CHECK(draw_rand_augment(parse_rand_augment("rand-n0"), r2).empty());
}

TEST_CASE("RandAugment arguments follow timm's level formulas", "[augment]") {
  std::mt19937_64 rng(5);
  auto arg = [&](AugmentOp op, double m, bool inc) { return op_argument(op, m, inc, rng); };
  auto magnitude_of = [&](AugmentOp op, double m, bool inc) { return std::abs(arg(op, m, inc)); };
  for (bool inc : {false, true}) {
    CHECK(magnitude_of(AugmentOp::rotate, 10, inc) == Approx(30.0));
    CHECK(magnitude_of(AugmentOp::rotate, 9, inc) == Approx(27.0));
    CHECK(magnitude_of(AugmentOp::shear_x, 10, inc) == Approx(0.3));
    CHECK(magnitude_of(AugmentOp::shear_y, 5, inc) == Approx(0.15));
    CHECK(magnitude_of(AugmentOp::translate_x, 10, inc) == Approx(0.45));
    CHECK(magnitude_of(AugmentOp::translate_y, 2, inc) == Approx(0.09));
    CHECK(arg(AugmentOp::solarize_add, 10, inc) == 110);
    CHECK(arg(AugmentOp::solarize_add, 9, inc) == 99);
    CHECK(arg(AugmentOp::solarize_add, 20, inc) == 128);  // min(128, ...) beyond mmax 10
  }
  CHECK(arg(AugmentOp::posterize, 10, false) == 4);
  CHECK(arg(AugmentOp::posterize, 9, false) == 3);
  CHECK(arg(AugmentOp::posterize, 9, true) == 1);  // 4 - int(3.6)
  CHECK(arg(AugmentOp::posterize, 0, true) == 4);
  CHECK(arg(AugmentOp::solarize, 9, false) == 230);  // int(0.9 * 256)
  CHECK(arg(AugmentOp::solarize, 9, true) == 26);
  CHECK(arg(AugmentOp::solarize, 0, true) == 256);  // nothing solarized at magnitude 0
  for (AugmentOp op : {AugmentOp::color, AugmentOp::contrast, AugmentOp::brightness, AugmentOp::sharpness}) {
    CHECK(arg(op, 10, false) == Approx(1.9));
    CHECK(arg(op, 0, false) == Approx(0.1));
    const double a = arg(op, 9, true);  // 1 +- 0.81
    CHECK((a == Approx(1.81) || a == Approx(0.19)));
    CHECK(arg(op, 0, true) == Approx(1.0));
  }
  // The increasing enhancements keep the factor >= 0.1 when mmax lets the magnitude pass 10.
  double lowest = 2;
  for (int i = 0; i < 64; ++i) lowest = std::min(lowest, arg(AugmentOp::color, 15, true));
  CHECK(lowest == Approx(0.1));
  for (AugmentOp op : {AugmentOp::auto_contrast, AugmentOp::equalize, AugmentOp::invert}) {
    const std::mt19937_64 before = rng;
    CHECK(arg(op, 10, true) == 0.0);
    CHECK(rng == before);  // no sign drawn
  }
}

namespace {

// A 40x30 RGB test card: gradients and a block, so every op changes something.
cv::Mat test_card() {
  cv::Mat m(30, 40, CV_8UC3);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(uint8_t(40 + 4 * x), uint8_t(60 + 5 * y), uint8_t((x > 10 && x < 25 && y > 8) ? 200 : 70));
  return m;
}

bool same(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

}  // namespace

TEST_CASE("RandAugment is a function of the generator's seed", "[augment]") {
  RandAugmentSettings s;
  s.config = parse_rand_augment("rand-m9-mstd0.5-inc1-n4");
  const cv::Mat card = test_card();
  int changed = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 a(seed), b(seed);
    const cv::Mat x = rand_augment(card, s, a), y = rand_augment(card, s, b);
    CHECK(same(x, y));
    CHECK(a == b);
    changed += !same(x, card);
  }
  CHECK(changed >= 15);  // four ops at p 0.5: all skipped 1 time in 16
}

TEST_CASE("transform_train: RandAugment after crop and flip, off by default with the same draws as before",
          "[augment]") {
  TransformConfig c;
  c.image_size = 24;
  c.interpolation = "bilinear";
  const cv::Mat card = test_card();
  // Off: exactly the normalised crop, and the generator ends where crop + flip leave it.
  {
    std::mt19937_64 a(9), b(9);
    const cv::Mat out = transform_train(card, c, a);
    const CropBox box = random_resized_crop_box(card.cols, card.rows, c, b);
    const bool flip = uniform01(b) < c.hflip;
    CHECK(a == b);
    cv::Mat f255 = resample(card, box, 24, 24, "bilinear");
    if (flip) cv::flip(f255, f255, 1);
    const float mean0 = c.mean[0], std0 = c.std[0];
    CHECK(out.at<cv::Vec3f>(5, 7)[0] == Approx((f255.at<cv::Vec3f>(5, 7)[0] / 255.0f - mean0) / std0).margin(1e-5));
  }
  // On: the 8-bit crop (rounded, flipped) through the same RandAugment draws, then normalised.
  c.auto_augment = "rand-m9-mstd0.5-inc1-p1";
  for (uint64_t seed = 0; seed < 6; ++seed) {
    std::mt19937_64 a(seed), b(seed);
    const cv::Mat out = transform_train(card, c, a);
    const CropBox box = random_resized_crop_box(card.cols, card.rows, c, b);
    const bool flip = uniform01(b) < c.hflip;
    cv::Mat img8;
    resample(card, box, 24, 24, "bilinear").convertTo(img8, CV_8U);
    if (flip) cv::flip(img8, img8, 1);
    RandAugmentSettings s;
    s.config = parse_rand_augment(c.auto_augment);
    s.filter = AffineFilter::bilinear;
    s.fill = {124, 116, 104, 128};
    const cv::Mat aug = rand_augment(img8, s, b);
    CHECK(a == b);
    for (int ch = 0; ch < 3; ++ch)
      CHECK(out.at<cv::Vec3f>(11, 13)[ch] ==
            Approx((aug.at<cv::Vec3b>(11, 13)[ch] / 255.0f - c.mean[size_t(ch)]) / c.std[size_t(ch)]).margin(1e-5));
  }
  c.auto_augment = "rand-q9";
  CHECK_THROWS_WITH(validate(c), Contains("rand-q9"));
}

TEST_CASE("RandAugment fills with the dataset mean as timm's img_mean", "[augment]") {
  CHECK(fill_from_mean({0.485f, 0.456f, 0.406f}, 3) == std::array<uint8_t, 4>{124, 116, 104, 128});
  CHECK(fill_from_mean({0.5f}, 3) == std::array<uint8_t, 4>{128, 128, 128, 128});  // round(127.5): half to even
  CHECK(fill_from_mean({0.2860f}, 1)[0] == 73);
  // A translation by the whole width leaves only fill.
  const cv::Mat out = affine(test_card(), {1, 0, 40, 0, 1, 0}, AffineFilter::bicubic, {1, 2, 3, 0});
  CHECK(out.at<cv::Vec3b>(4, 4) == cv::Vec3b(1, 2, 3));
}

// The stripes are greyscale: RandAugment runs on one channel with fill round(255 * 0.5) = 128.
TEST_CASE("vkvit train --aa --reprob trains a few steps and records the keys in the run's config", "[augment][cli]") {
  using namespace vkvit::test;
  TempDir dir("augment_cli");
  const std::filesystem::path data = dir.path / "data", config = dir.path / "tiny.yaml", run = dir.path / "run";
  write_stripe_dataset(data, 8, 2, 77, 0);
  write_file(config, tiny_stripes_config_yaml(1));
  const std::string base = "train --config " + q(config) + " --data-dir " + q(data) + " --max-steps 2 -q";
  CliRun r = run_cli(base + " --output " + q(run) + " --aa rand-m9-mstd0.5-inc1 --reprob 0.25 --set data.remode=rand");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  const std::string saved = read_file(run / "config.yaml");
  CHECK_THAT(saved, Contains("auto_augment: \"rand-m9-mstd0.5-inc1\"") && Contains("reprob: 0.25") &&
                        Contains("remode: rand") && Contains("recount: 1"));

  r = run_cli(base + " --output " + q(dir.path / "bad") + " --aa rand-m9-bogus1");
  CHECK(r.status != 0);
  CHECK_THAT(r.err, Contains("data.auto_augment") && Contains("rand-m9-bogus1") && Contains("accepted:"));
}

namespace {

std::vector<Batch> epoch_batches(const std::vector<Sample>& samples, uint32_t workers, bool augment, uint64_t epoch) {
  LoaderConfig c;
  c.batch_size = 4;
  c.workers = workers;
  c.seed = 5;
  c.patch_size = 8;
  c.transform.image_size = 16;
  if (augment) {
    c.transform.auto_augment = "rand-m9-mstd0.5-inc1";
    c.transform.reprob = 0.5f;
  }
  Loader loader(samples, c);
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

}  // namespace

// What a resumed run relies on: an image's augmentations depend on (seed, epoch, index) only.
TEST_CASE("augmented loader batches are the same for any worker count and on a restarted epoch", "[augment]") {
  vkvit::test::TempDir dir("augment_loader");
  std::vector<Sample> samples;
  cv::RNG rng(3);
  for (int i = 0; i < 12; ++i) {
    cv::Mat m(20 + i % 3, 22, CV_8UC3);
    rng.fill(m, cv::RNG::UNIFORM, 0, 256);
    const std::string path = dir / (std::to_string(i) + ".png");
    REQUIRE(cv::imwrite(path, m));
    samples.push_back({path, uint32_t(i % 2)});
  }
  const auto a = epoch_batches(samples, 0, true, 3), b = epoch_batches(samples, 3, true, 3),
             again = epoch_batches(samples, 2, true, 3), plain = epoch_batches(samples, 2, false, 3);
  REQUIRE(a.size() == 3);
  bool differs_from_plain = false;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].patches == b[i].patches);
    CHECK(a[i].patches == again[i].patches);
    CHECK(a[i].paths == plain[i].paths);  // the same order: augmentation draws nothing the shuffle uses
    differs_from_plain = differs_from_plain || a[i].patches != plain[i].patches;
  }
  CHECK(differs_from_plain);
}

// Hidden: the cost of RandAugment on a 224 x 224 RGB image, every op applied (p1), per op.
TEST_CASE("RandAugment op cost at 224 x 224", "[.augment-bench]") {
  cv::Mat img(224, 224, CV_8UC3);
  cv::RNG(1).fill(img, cv::RNG::UNIFORM, 0, 256);
  for (AffineFilter f : {AffineFilter::nearest, AffineFilter::bilinear, AffineFilter::bicubic}) {
    RandAugmentSettings s;
    s.filter = f;
    std::string line;
    for (int k = 0; k < kAugmentOpCount; ++k) {
      const OpUse use{AugmentOp(k), 9, k == int(AugmentOp::rotate) ? 27.0 : 0.2};
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 20; ++i) apply_op(img, use, s);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 20;
      line += std::string(" ") + augment_op_name(AugmentOp(k)) + " " + std::to_string(ms).substr(0, 5);
    }
    WARN("filter " << int(f) << " (ms per op):" << line);
  }
}
