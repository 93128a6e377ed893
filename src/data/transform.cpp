// Transforms with torchvision's geometry and PIL's resampling (see transform.h). The resampler is
// separable: per output pixel a window of source taps with weights filter((j - center + 0.5) / s),
// normalised to sum 1, where s = max(in / out, 1) widens the filter when shrinking (antialiasing),
// as Pillow's ImagingResample does. It computes only the output pixels that survive the crop.
#include "data/transform.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/error.h"
#include "data/rand_augment.h"
#include "data/random_erasing.h"
#include "data/rng.h"

namespace vkvit::data {
namespace {

enum class Filter { nearest, bilinear, bicubic };

Filter parse_filter(const std::string& name) {
  if (name == "bicubic") return Filter::bicubic;
  if (name == "bilinear") return Filter::bilinear;
  if (name == "nearest") return Filter::nearest;
  throw Error("transform: interpolation must be bilinear, bicubic or nearest (got '" + name + "')");
}

double filter_value(Filter f, double x) {
  x = std::abs(x);
  if (f == Filter::bilinear) return x < 1.0 ? 1.0 - x : 0.0;
  const double a = -0.5;  // Pillow's bicubic (OpenCV's INTER_CUBIC uses -0.75)
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Source taps for a window of output indices of one axis: window index i (output index
// window_start + i) reads in[first[i] .. first[i] + count[i]).
struct Taps {
  std::vector<int> first, count;
  std::vector<float> weight;  // count[i] weights at i * stride
  int stride = 1;
};

// Only the window [window_start, window_start + window) of the out_size outputs is computed: the eval
// resize of a 1x300000 image to 256 x 76.8 million pixels, of which the crop keeps 224 rows, then
// costs the crop alone instead of gigabytes of taps.
Taps make_taps(int in_size, int64_t out_size, int64_t window_start, int window, Filter f) {
  Taps t;
  t.first.resize(window);
  t.count.resize(window);
  const double scale = double(in_size) / double(out_size);
  if (f == Filter::nearest) {  // Pillow's affine nearest: floor((i + 0.5) * scale)
    t.weight.assign(window, 1.0f);
    for (int i = 0; i < window; ++i) {
      t.first[i] = int(std::min<double>((double(window_start + i) + 0.5) * scale, in_size - 1));
      t.count[i] = 1;
    }
    return t;
  }
  const double filterscale = std::max(scale, 1.0);
  const double support = (f == Filter::bilinear ? 1.0 : 2.0) * filterscale;
  t.stride = int(std::ceil(support)) * 2 + 1;
  t.weight.assign(size_t(window) * t.stride, 0.0f);
  std::vector<double> w(t.stride);
  for (int i = 0; i < window; ++i) {
    const double center = (double(window_start + i) + 0.5) * scale;
    const int lo = std::max(int(center - support + 0.5), 0);
    const int hi = std::min(int(center + support + 0.5), in_size);
    double sum = 0.0;
    int n = 0;
    for (int j = lo; j < hi && n < t.stride; ++j, ++n) sum += w[n] = filter_value(f, (j - center + 0.5) / filterscale);
    t.first[i] = lo;
    t.count[i] = n;
    for (int k = 0; k < n; ++k) t.weight[size_t(i) * t.stride + k] = float(sum != 0.0 ? w[k] / sum : 0.0);
  }
  return t;
}

// Resamples `box` of image8 to a virtual full_w x full_h image and returns its window
// [ox, ox + w) x [oy, oy + h) as floats in [0, 255].
cv::Mat resample_window(const cv::Mat& image8, const CropBox& box, int64_t full_w, int64_t full_h, int64_t ox,
                        int64_t oy, int w, int h, Filter f) {
  if (image8.depth() != CV_8U) throw Error("transform: expected an 8-bit image");
  if (box.width <= 0 || box.height <= 0 || box.x < 0 || box.y < 0 || box.x + box.width > image8.cols ||
      box.y + box.height > image8.rows)
    throw Error("transform: crop box outside the image");
  const int C = image8.channels();
  const Taps tx = make_taps(box.width, full_w, ox, w, f), ty = make_taps(box.height, full_h, oy, h, f);
  // Source rows the window needs.
  const int row0 = ty.first[0];
  int row1 = row0;
  for (int y = 0; y < h; ++y) row1 = std::max(row1, ty.first[y] + ty.count[y]);

  cv::Mat tmp(row1 - row0, w, CV_32FC(C));  // horizontal pass
  for (int r = row0; r < row1; ++r) {
    const uint8_t* src = image8.ptr<uint8_t>(box.y + r) + size_t(box.x) * C;
    float* dst = tmp.ptr<float>(r - row0);
    for (int x = 0; x < w; ++x, dst += C) {
      const float* wt = &tx.weight[size_t(x) * tx.stride];
      const uint8_t* s = src + size_t(tx.first[x]) * C;
      for (int c = 0; c < C; ++c) dst[c] = 0.0f;
      for (int k = 0; k < tx.count[x]; ++k, s += C)
        for (int c = 0; c < C; ++c) dst[c] += wt[k] * float(s[c]);
    }
  }
  cv::Mat out(h, w, CV_32FC(C));  // vertical pass
  const size_t row_floats = size_t(w) * C;
  for (int y = 0; y < h; ++y) {
    const float* wt = &ty.weight[size_t(y) * ty.stride];
    float* dst = out.ptr<float>(y);
    std::fill(dst, dst + row_floats, 0.0f);
    for (int k = 0; k < ty.count[y]; ++k) {
      const float* s = tmp.ptr<float>(ty.first[y] + k - row0);
      const float wk = wt[k];
      for (size_t i = 0; i < row_floats; ++i) dst[i] += wk * s[i];
    }
  }
  return out;
}

// (x / 255 - mean) / std, optionally mirrored left-right, into a new float image.
cv::Mat normalize(const cv::Mat& f255, const TransformConfig& config, bool flip) {
  const int C = f255.channels(), W = f255.cols;
  float mul[4], add[4];
  for (int c = 0; c < C; ++c) {
    const float m = config.mean.size() == 1 ? config.mean[0] : config.mean[c];
    const float s = config.std.size() == 1 ? config.std[0] : config.std[c];
    mul[c] = 1.0f / (255.0f * s);
    add[c] = -m / s;
  }
  cv::Mat out(f255.rows, W, CV_32FC(C));
  for (int y = 0; y < f255.rows; ++y) {
    const float* s = f255.ptr<float>(y);
    float* d = out.ptr<float>(y);
    for (int x = 0; x < W; ++x) {
      const float* px = s + size_t(flip ? W - 1 - x : x) * C;
      for (int c = 0; c < C; ++c) d[size_t(x) * C + c] = px[c] * mul[c] + add[c];
    }
  }
  return out;
}

RandomErasingConfig erasing_config(const TransformConfig& c) {
  RandomErasingConfig e;
  e.probability = c.reprob;
  e.mode = c.remode;
  e.max_count = c.recount;
  return e;
}

// The float [0, 255] crop rounded to 8 bits, mirrored when `flip`, then RandAugment.
cv::Mat augment_8bit(const cv::Mat& f255, const TransformConfig& config, bool flip, std::mt19937_64& rng) {
  cv::Mat img8;
  f255.convertTo(img8, CV_8U);  // rounds to nearest and saturates
  if (flip) cv::flip(img8, img8, 1);
  RandAugmentSettings settings;
  settings.config = parse_rand_augment(config.auto_augment);
  settings.filter = affine_filter(config.interpolation);
  settings.fill = fill_from_mean(config.mean, config.channels);
  return rand_augment(img8, settings, rng);
}

void check_input(const cv::Mat& image, const TransformConfig& config) {
  validate(config);
  if (image.empty() || image.depth() != CV_8U || image.channels() != config.channels)
    throw Error("transform: expected an 8-bit image with " + std::to_string(config.channels) + " channel(s)");
}

// Eval geometry: shorter side to floor(size / crop_pct), then the centred size x size window.
struct EvalGeometry {
  int64_t rw = 0, rh = 0;      // the resized image
  int64_t left = 0, top = 0;   // the crop's corner in it
};
EvalGeometry eval_geometry_of(int W, int H, const TransformConfig& config) {
  const int size = config.image_size;
  const int scale_size = int(std::floor(double(size) / double(config.crop_pct)));
  // torchvision Resize(int): the longer side is int(requested * long / short); 64-bit, as it may
  // exceed an int for a thin image (only the crop window is ever computed).
  EvalGeometry g;
  if (W <= H) {
    g.rw = scale_size;
    g.rh = int64_t(double(scale_size) * H / W);
  } else {
    g.rh = scale_size;
    g.rw = int64_t(double(scale_size) * W / H);
  }
  // CenterCrop offsets use Python's round(): half to even, which std::nearbyint does by default.
  g.left = int64_t(std::nearbyint(double(g.rw - size) / 2.0));
  g.top = int64_t(std::nearbyint(double(g.rh - size) / 2.0));
  return g;
}

cv::Mat eval_geometry(const cv::Mat& image8, const TransformConfig& config) {
  const int W = image8.cols, H = image8.rows, size = config.image_size;
  const EvalGeometry g = eval_geometry_of(W, H, config);
  return resample_window(image8, {0, 0, W, H}, g.rw, g.rh, g.left, g.top, size, size,
                         parse_filter(config.interpolation));
}

}  // namespace

void validate(const TransformConfig& c) {
  auto bad = [](const std::string& what) { throw Error("transform config: " + what); };
  if (c.image_size <= 0) bad("image_size must be > 0 (got " + std::to_string(c.image_size) + ")");
  if (c.channels != 1 && c.channels != 3) bad("channels must be 1 or 3 (got " + std::to_string(c.channels) + ")");
  for (const auto* v : {&c.mean, &c.std})
    if (v->size() != 1 && v->size() != size_t(c.channels))
      bad(std::string(v == &c.mean ? "mean" : "std") + " needs 1 or " + std::to_string(c.channels) + " values (got " +
          std::to_string(v->size()) + ")");
  for (float s : c.std)
    if (!(s > 0.0f)) bad("std values must be > 0");
  if (!(c.crop_pct > 0.0f && c.crop_pct <= 1.0f)) bad("crop_pct must be in (0, 1] (got " + std::to_string(c.crop_pct) + ")");
  parse_filter(c.interpolation);
  if (!(c.scale_min > 0.0f && c.scale_min <= c.scale_max && c.scale_max <= 1.0f))
    bad("scale must satisfy 0 < scale_min <= scale_max <= 1");
  if (!(c.ratio_min > 0.0f && c.ratio_min <= c.ratio_max)) bad("ratio must satisfy 0 < ratio_min <= ratio_max");
  if (!c.auto_augment.empty()) parse_rand_augment(c.auto_augment);
  validate(erasing_config(c));
}

CropBox random_resized_crop_box(int width, int height, const TransformConfig& c, std::mt19937_64& rng) {
  const double area = double(width) * height;
  const double log_lo = std::log(double(c.ratio_min)), log_hi = std::log(double(c.ratio_max));
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * uniform(rng, c.scale_min, c.scale_max);
    const double aspect = std::exp(uniform(rng, log_lo, log_hi));
    const int w = int(std::nearbyint(std::sqrt(target * aspect)));
    const int h = int(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int y = int(uniform_below(rng, uint64_t(height - h) + 1));
      const int x = int(uniform_below(rng, uint64_t(width - w) + 1));
      return {x, y, w, h};
    }
  }
  // Fallback: the whole image, clamped to the ratio range, centred.
  const double in_ratio = double(width) / height;
  int w = width, h = height;
  if (in_ratio < c.ratio_min) h = std::max(1, int(std::nearbyint(w / double(c.ratio_min))));
  else if (in_ratio > c.ratio_max) w = std::max(1, int(std::nearbyint(h * double(c.ratio_max))));
  w = std::min(w, width);
  h = std::min(h, height);
  return {(width - w) / 2, (height - h) / 2, w, h};
}

cv::Mat resample(const cv::Mat& image8, const CropBox& box, int out_w, int out_h, const std::string& interpolation) {
  return resample_window(image8, box, out_w, out_h, 0, 0, out_w, out_h, parse_filter(interpolation));
}

cv::Mat transform_train(const cv::Mat& rgb8, const TransformConfig& config, std::mt19937_64& rng) {
  check_input(rgb8, config);
  cv::Mat f255;
  if (config.random_resized_crop) {
    const CropBox box = random_resized_crop_box(rgb8.cols, rgb8.rows, config, rng);
    f255 = resample(rgb8, box, config.image_size, config.image_size, config.interpolation);
  } else {
    f255 = eval_geometry(rgb8, config);
  }
  const bool flip = config.hflip > 0 && uniform01(rng) < config.hflip;
  cv::Mat out;
  if (config.auto_augment.empty()) {
    out = normalize(f255, config, flip);
  } else {
    cv::Mat augmented;
    augment_8bit(f255, config, flip, rng).convertTo(augmented, CV_32F);
    out = normalize(augmented, config, false);
  }
  if (config.reprob > 0) random_erase(out, erasing_config(config), rng);
  return out;
}

CropWindow eval_crop_window(int width, int height, const TransformConfig& config) {
  validate(config);
  if (width <= 0 || height <= 0) throw Error("transform: eval_crop_window of an empty image");
  const EvalGeometry g = eval_geometry_of(width, height, config);
  const double sx = double(width) / double(g.rw), sy = double(height) / double(g.rh);
  const double size = config.image_size;
  return {double(g.left) * sx, double(g.top) * sy, size * sx, size * sy};
}

cv::Mat transform_eval(const cv::Mat& rgb8, const TransformConfig& config) {
  check_input(rgb8, config);
  return normalize(eval_geometry(rgb8, config), config, false);
}

}  // namespace vkvit::data
