// Random erasing (see random_erasing.h): timm's _erase, with the loader's portable uniforms and
// Box-Muller normals (data/rng.h) in place of Python's and torch's generators.
#include "data/random_erasing.h"

#include <cmath>

#include "base/error.h"
#include "data/rng.h"

namespace vkvit::data {
namespace {

// The box's values: 0, one normal per channel, or one per pixel and channel (drawn channel by
// channel, row by row, as torch fills a C x h x w tensor).
void fill_box(cv::Mat& image, const EraseBox& b, const std::string& mode, std::mt19937_64& rng) {
  const int C = image.channels();
  std::vector<float> colour(size_t(C), 0.0f);
  if (mode == "rand")
    for (float& v : colour) v = float(standard_normal(rng));
  for (int c = 0; c < C; ++c)
    for (int y = b.y; y < b.y + b.height; ++y) {
      float* row = image.ptr<float>(y);
      for (int x = b.x; x < b.x + b.width; ++x)
        row[size_t(x) * C + c] = mode == "pixel" ? float(standard_normal(rng)) : colour[size_t(c)];
    }
}

}  // namespace

void validate(const RandomErasingConfig& c) {
  auto bad = [](const std::string& what) { throw Error("random erasing: " + what); };
  if (!(c.probability >= 0.0 && c.probability <= 1.0)) bad("probability must be in [0, 1]");
  if (c.mode != "const" && c.mode != "rand" && c.mode != "pixel")
    bad("mode must be const, rand or pixel (got '" + c.mode + "')");
  if (c.min_count < 1 || c.max_count < c.min_count) bad("counts must satisfy 1 <= min_count <= max_count");
  if (!(c.min_area > 0 && c.min_area <= c.max_area && c.max_area <= 1)) bad("area must satisfy 0 < min <= max <= 1");
  if (!(c.min_aspect > 0)) bad("min_aspect must be > 0");
}

std::vector<EraseBox> random_erase(cv::Mat& image, const RandomErasingConfig& c, std::mt19937_64& rng) {
  if (image.depth() != CV_32F) throw Error("random erasing: expected a float32 image");
  std::vector<EraseBox> boxes;
  if (c.probability <= 0.0 || uniform01(rng) > c.probability) return boxes;
  const int W = image.cols, H = image.rows;
  const double area = double(W) * H;
  const double log_lo = std::log(c.min_aspect), log_hi = std::log(1.0 / c.min_aspect);
  const int count = c.min_count == c.max_count ? c.min_count
                                               : c.min_count + int(uniform_below(rng, uint64_t(c.max_count - c.min_count) + 1));
  for (int k = 0; k < count; ++k) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = uniform(rng, c.min_area, c.max_area) * area / count;
      const double aspect = std::exp(uniform(rng, log_lo, log_hi));
      const int h = int(std::nearbyint(std::sqrt(target * aspect)));  // Python round: half to even
      const int w = int(std::nearbyint(std::sqrt(target / aspect)));
      if (w < W && h < H) {
        EraseBox b;
        b.height = h;
        b.width = w;
        b.y = int(uniform_below(rng, uint64_t(H - h) + 1));
        b.x = int(uniform_below(rng, uint64_t(W - w) + 1));
        fill_box(image, b, c.mode, rng);
        boxes.push_back(b);
        break;
      }
    }
  }
  return boxes;
}

}  // namespace vkvit::data
