// RandAugment (data/rand_augment.h): timm's string syntax, every op against Pillow's own output
// (tests/fixtures/augment, written by tests/reference/make_augment_fixtures.py), the magnitude
// draws, the op choice, timm's argument formulas, determinism from the seed and the place of
// RandAugment in transform_train.
#include <catch2/catch.hpp>

#include "harness.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "data/rand_augment.h"
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
