// Transforms with torchvision's geometry and PIL's resampling (see transform.h). The resampler is
// separable: per output pixel a window of source taps with weights filter((j - center + 0.5) / s),
// normalised to sum 1, where s = max(in / out, 1) widens the filter when shrinking (antialiasing),
// as Pillow's ImagingResample does, in Pillow's 8-bit fixed point (weights with 22 fraction bits,
// each pass rounded and clamped to [0, 255], horizontal first), so its output is Pillow's to the
// bit. It computes only the output pixels that survive the crop.
#include "data/transform.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

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

// Pillow's fixed-point weights: 22 fraction bits (32 bits less 8 for the sample and 2 of headroom
// for negative lobes), each weight rounded half away from zero from the normalised double.
constexpr int kPrecisionBits = 22;

// Source taps for a window of output indices of one axis: window index i (output index
// window_start + i) reads in[first[i] .. first[i] + count[i]) with weight[i * stride + k].
struct Taps {
  std::vector<int> first, count;
  std::vector<int32_t> weight;
  int stride = 1;
};

int32_t fixed_point(double w) { return int32_t(w < 0 ? w * (1 << kPrecisionBits) - 0.5 : w * (1 << kPrecisionBits) + 0.5); }

// Only the window [window_start, window_start + window) of the out_size outputs is computed: the eval
// resize of a 1x300000 image to 256 x 76.8 million pixels, of which the crop keeps 224 rows, then
// costs the crop alone instead of gigabytes of taps.
// The source span [in0, in0 + in_span) is resized to out_size pixels; taps read source pixels
// [0, in_size). A crop is the span [0, in_size) (Pillow's crop().resize()); a source decoded at a
// reduced scale has a fractional span (Pillow's resize with a float box), with in_size the pixels
// that cover it.
Taps make_taps(int in_size, double in0, double in_span, int64_t out_size, int64_t window_start, int window, Filter f) {
  Taps t;
  t.first.resize(window);
  t.count.resize(window);
  const double scale = in_span / double(out_size);
  if (f == Filter::nearest) {  // Pillow's affine nearest: floor((i + 0.5) * scale)
    t.weight.assign(window, 1 << kPrecisionBits);
    for (int i = 0; i < window; ++i) {
      t.first[i] = int(std::min<double>(in0 + (double(window_start + i) + 0.5) * scale, in_size - 1));
      t.count[i] = 1;
    }
    return t;
  }
  const double filterscale = std::max(scale, 1.0);
  const double support = (f == Filter::bilinear ? 1.0 : 2.0) * filterscale;
  t.stride = int(std::ceil(support)) * 2 + 1;
  t.weight.assign(size_t(window) * t.stride, 0);
  std::vector<double> w(t.stride);
  for (int i = 0; i < window; ++i) {
    const double center = in0 + (double(window_start + i) + 0.5) * scale;
    const int lo = std::max(int(center - support + 0.5), 0);
    const int hi = std::min(int(center + support + 0.5), in_size);
    double sum = 0.0;
    int n = 0;
    for (int j = lo; j < hi && n < t.stride; ++j, ++n) sum += w[n] = filter_value(f, (j - center + 0.5) / filterscale);
    t.first[i] = lo;
    t.count[i] = n;
    for (int k = 0; k < n; ++k) t.weight[size_t(i) * t.stride + k] = fixed_point(sum != 0.0 ? w[k] / sum : 0.0);
  }
  return t;
}

// A pass's accumulator back to 8 bits: Pillow starts it at one half (rounding), shifts the fraction
// away (an arithmetic shift, so negative sums floor) and clamps to [0, 255].
inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

// acc[i] += s[i] * w over a row, in blocks of 16 and then the rest: GCC's -O2 vectorises only
// loops of a known trip count, and only with __restrict (unsigned char may alias anything).
void accumulate_row(const uint8_t* __restrict s, int32_t w, int32_t* __restrict acc, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (size_t j = 0; j < 16; ++j) acc[i + j] += s[i + j] * w;
  for (; i < n; ++i) acc[i] += s[i] * w;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define VKVIT_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define VKVIT_AVX2_CLONE
#endif

// acc[i] = clamp(acc[i] >> 22, 0, 255) as bytes, blocked as accumulate_row.
void clip_row(const int32_t* __restrict acc, uint8_t* __restrict dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (size_t j = 0; j < 16; ++j) dst[i + j] = clip8(acc[i + j]);
  for (; i < n; ++i) dst[i] = clip8(acc[i]);
}

// One pass along the rows of `in`, whose row 0 is source index `base`: output row i is the
// weighted sum of input rows t.first[i] - base onwards, rounded and clamped to 8 bits. On x86-64
// built for AVX2 as well as the baseline (chosen at run time): 32-bit multiplies and clamps have
// no SSE2 instruction. Integer arithmetic, so every build gives the same bits.
VKVIT_AVX2_CLONE void vertical_pass(const cv::Mat& in, const Taps& t, int base, cv::Mat& out) {
  const int n = int(t.first.size());
  out.create(n, in.cols, in.type());
  const size_t row_values = size_t(in.cols) * in.channels();
  std::vector<int32_t> acc(row_values);
  for (int i = 0; i < n; ++i) {
    const int32_t* wt = &t.weight[size_t(i) * t.stride];
    std::fill(acc.begin(), acc.end(), kHalf);
    for (int k = 0; k < t.count[i]; ++k) accumulate_row(in.ptr<uint8_t>(t.first[i] + k - base), wt[k], acc.data(), row_values);
    clip_row(acc.data(), out.ptr<uint8_t>(i), row_values);
  }
}

// Taps index the box; the decoded pixels start `shift` pixels into it and hold `available`.
void rebase(Taps& t, int shift, int available) {
  for (size_t i = 0; i < t.first.size(); ++i) {
    t.first[i] -= shift;
    if (t.first[i] < 0 || t.first[i] + t.count[i] > available)
      throw Error("internal: the decoded region lacks pixels the resize reads");
  }
}

// A window of output indices [start, start + n) of an axis that keeps its size: pixel for pixel.
Taps identity_taps(int64_t start, int n) {
  Taps t;
  t.weight.assign(size_t(n), 1 << kPrecisionBits);
  t.count.assign(size_t(n), 1);
  for (int i = 0; i < n; ++i) t.first.push_back(int(start + i));
  return t;
}

// One axis of a box in the decoded pixels of an image decoded at 1/denom of its full size: the
// span [start / denom, (start + length) / denom), fractional unless denom is 1, and the whole
// decoded pixels [first, first + count) that cover it.
struct DecodedSpan {
  int first = 0, count = 0;
  double in0 = 0, span = 0;  // the span, relative to `first`
};
DecodedSpan decoded_span(int start, int length, int full_size, int denom) {
  DecodedSpan s;
  s.first = start / denom;
  s.count = std::min((start + length + denom - 1) / denom, (full_size + denom - 1) / denom) - s.first;
  s.in0 = double(start) / denom - s.first;
  s.span = double(length) / denom;
  return s;
}

// Resamples `box` (in source-image pixels) of the source to a virtual full_w x full_h image and
// returns its window [ox, ox + w) x [oy, oy + h), 8-bit, as Pillow's ImagingResample computes it:
// the horizontal pass first (only over the source rows the vertical pass reads), each pass clamped
// to 8 bits. An axis whose size does not change is not resampled (Pillow skips that pass; its
// weights would be the identity anyway). The source may be a region of the image (crop-aware
// decoding) as long as it holds every pixel the window reads, also one decoded at a reduced
// scale (its box is then a fractional span of the decoded pixels, see decoded_span).
cv::Mat resample_window(const SourceRegion& src, const CropBox& box, int64_t full_w, int64_t full_h, int64_t ox,
                        int64_t oy, int w, int h, Filter f) {
  const cv::Mat& px = src.pixels;
  if (px.depth() != CV_8U) throw Error("transform: expected an 8-bit image");
  if (box.width <= 0 || box.height <= 0 || box.x < 0 || box.y < 0 || box.x + box.width > src.width ||
      box.y + box.height > src.height)
    throw Error("transform: crop box outside the image");
  const int d = src.scale_denom;
  const DecodedSpan sx = decoded_span(box.x, box.width, src.width, d), sy = decoded_span(box.y, box.height, src.height, d);
  const bool same_w = d == 1 && full_w == box.width, same_h = d == 1 && full_h == box.height;
  Taps tx = same_w ? identity_taps(ox, w) : make_taps(sx.count, sx.in0, sx.span, full_w, ox, w, f);
  Taps ty = same_h ? identity_taps(oy, h) : make_taps(sy.count, sy.in0, sy.span, full_h, oy, h, f);
  rebase(tx, src.x - sx.first, px.cols);
  rebase(ty, src.y - sy.first, px.rows);
  const int row0 = ty.first[0];
  int row1 = row0;
  for (int y = 0; y < h; ++y) row1 = std::max(row1, ty.first[y] + ty.count[y]);

  cv::Mat rows;  // the horizontal pass's output for region rows row0 .. row1
  const cv::Mat band = px.rowRange(row0, row1);
  if (same_w) {
    rows = band.colRange(tx.first[0], tx.first[0] + w);
  } else {
    // The horizontal pass as a vertical one on the transposed band: integer sums, so the same
    // values as pixel by pixel, but each tap is one vectorised pass over a whole column.
    int col0 = tx.first[0], col1 = col0;
    for (int x = 0; x < w; ++x) col1 = std::max(col1, tx.first[x] + tx.count[x]);
    cv::Mat columns, out_t;
    cv::transpose(band.colRange(col0, col1), columns);
    vertical_pass(columns, tx, col0, out_t);
    cv::transpose(out_t, rows);
  }
  if (same_h) return rows.clone();
  cv::Mat out;
  vertical_pass(rows, ty, row0, out);
  return out;
}

SourceRegion whole(const cv::Mat& image8) {
  return {image8, 0, 0, image8.cols, image8.rows, {0, 0, image8.cols, image8.rows}, 1};
}

// (x / 255 - mean) / std of an 8-bit image, through the table, into a new float image.
cv::Mat normalize(const cv::Mat& image8, const NormalizeTable& table) {
  const int C = image8.channels();
  cv::Mat out(image8.rows, image8.cols, CV_32FC(C));
  const size_t row_values = size_t(image8.cols) * C;
  for (int y = 0; y < image8.rows; ++y) {
    const uint8_t* s = image8.ptr<uint8_t>(y);
    float* d = out.ptr<float>(y);
    for (size_t i = 0; i < row_values; ++i) d[i] = table.value[i % C][s[i]];
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

// RandAugment of the (cropped, flipped) 8-bit image.
cv::Mat augment_8bit(const cv::Mat& img8, const TransformConfig& config, std::mt19937_64& rng) {
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

cv::Mat eval_geometry(const SourceRegion& src, const TransformConfig& config) {
  const int size = config.image_size;
  const EvalGeometry g = eval_geometry_of(src.width, src.height, config);
  return resample_window(src, {0, 0, src.width, src.height}, g.rw, g.rh, g.left, g.top, size, size,
                         parse_filter(config.interpolation));
}

void check_region(const SourceRegion& src, const TransformConfig& config) {
  validate(config);
  if (src.pixels.empty() || src.pixels.depth() != CV_8U || src.pixels.channels() != config.channels)
    throw Error("transform: expected an 8-bit image with " + std::to_string(config.channels) + " channel(s)");
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
  if (c.crop_padding < 0) bad("crop_padding must be >= 0 (got " + std::to_string(c.crop_padding) + ")");
  if (c.crop_padding > 0 && c.random_resized_crop) bad("crop_padding needs random_resized_crop off (it replaces it)");
  if (!c.auto_augment.empty()) parse_rand_augment(c.auto_augment);
  if (!(c.jpeg_dct_scaling == 0 || (c.jpeg_dct_scaling >= 1 && c.jpeg_dct_scaling <= 64)))
    bad("jpeg_dct_scaling is 0 (off) or a gap in [1, 64] (got " + std::to_string(c.jpeg_dct_scaling) + ")");
  validate(erasing_config(c));
}

cv::Mat padded_random_crop(const cv::Mat& image8, int padding, std::mt19937_64& rng) {
  // torchvision's RandomCrop.get_params draws the top offset, then the left one, each uniform over
  // the padded image's positions (transforms.py, RandomCrop.forward: pad, then crop).
  const int top = int(uniform_below(rng, uint64_t(2 * padding) + 1));
  const int left = int(uniform_below(rng, uint64_t(2 * padding) + 1));
  cv::Mat padded;
  cv::copyMakeBorder(image8, padded, padding, padding, padding, padding, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return padded(cv::Rect(left, top, image8.cols, image8.rows)).clone();
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

cv::Mat resample8(const cv::Mat& image8, const CropBox& box, int out_w, int out_h, const std::string& interpolation) {
  return resample_window(whole(image8), box, out_w, out_h, 0, 0, out_w, out_h, parse_filter(interpolation));
}

cv::Mat resample(const cv::Mat& image8, const CropBox& box, int out_w, int out_h, const std::string& interpolation) {
  cv::Mat f;
  resample8(image8, box, out_w, out_h, interpolation).convertTo(f, CV_32F);
  return f;
}

NormalizeTable normalize_table(const TransformConfig& config) {
  validate(config);
  NormalizeTable t;
  t.channels = config.channels;
  for (int c = 0; c < config.channels; ++c) {
    const float m = config.mean.size() == 1 ? config.mean[0] : config.mean[size_t(c)];
    const float s = config.std.size() == 1 ? config.std[0] : config.std[size_t(c)];
    const float mul = 1.0f / (255.0f * s), add = -m / s;
    for (int v = 0; v < 256; ++v) t.value[c][v] = float(v) * mul + add;
  }
  return t;
}

CropBox eval_source_box(int width, int height, const TransformConfig& config) {
  validate(config);
  const EvalGeometry g = eval_geometry_of(width, height, config);
  const Filter f = parse_filter(config.interpolation);
  const int size = config.image_size;
  // The taps of the centre crop's window on each axis bound the source pixels it reads.
  auto span = [&](int in, int64_t out, int64_t start) {
    if (out == in) return std::pair<int, int>(int(start), int(start) + size);
    const Taps t = make_taps(in, 0.0, in, out, start, size, f);
    int lo = in, hi = 0;
    for (int i = 0; i < size; ++i) lo = std::min(lo, t.first[i]), hi = std::max(hi, t.first[i] + t.count[i]);
    return std::pair<int, int>(lo, hi);
  };
  const auto [x0, x1] = span(width, g.rw, g.left);
  const auto [y0, y1] = span(height, g.rh, g.top);
  return {x0, y0, x1 - x0, y1 - y0};
}

int dct_scale_denom(int width, int height, const CropBox& box, const TransformConfig& config, bool train) {
  if (config.jpeg_dct_scaling <= 0) return 1;
  double have_w = box.width, have_h = box.height, need_w = config.image_size, need_h = config.image_size;
  if (!(train && config.random_resized_crop)) {  // eval geometry: the whole image is resized
    const EvalGeometry g = eval_geometry_of(width, height, config);
    have_w = width, have_h = height, need_w = double(g.rw), need_h = double(g.rh);
  }
  const double gap = config.jpeg_dct_scaling;
  for (int d : {8, 4, 2})
    if (have_w >= need_w * d * gap && have_h >= need_h * d * gap) return d;
  return 1;
}

CropBox train_source_box(int width, int height, const TransformConfig& config, std::mt19937_64& rng) {
  return config.random_resized_crop ? random_resized_crop_box(width, height, config, rng)
                                    : eval_source_box(width, height, config);
}

cv::Mat transform_train_8bit(const SourceRegion& src, const TransformConfig& config, std::mt19937_64& rng) {
  check_region(src, config);
  const int size = config.image_size;
  cv::Mat img8 = config.random_resized_crop ? resample_window(src, src.box, size, size, 0, 0, size, size,
                                                              parse_filter(config.interpolation))
                                            : eval_geometry(src, config);
  if (config.crop_padding > 0) img8 = padded_random_crop(img8, config.crop_padding, rng);
  const bool flip = config.hflip > 0 && uniform01(rng) < config.hflip;
  if (flip) cv::flip(img8, img8, 1);
  if (!config.auto_augment.empty()) img8 = augment_8bit(img8, config, rng);
  return img8;
}

cv::Mat transform_train_8bit(const cv::Mat& rgb8, const TransformConfig& config, std::mt19937_64& rng) {
  check_input(rgb8, config);
  SourceRegion src = whole(rgb8);
  src.box = train_source_box(rgb8.cols, rgb8.rows, config, rng);
  return transform_train_8bit(src, config, rng);
}

cv::Mat normalize8(const cv::Mat& image8, const NormalizeTable& table) { return normalize(image8, table); }

void random_erase_normalized(cv::Mat& normalized, const TransformConfig& config, std::mt19937_64& rng) {
  if (config.reprob > 0) random_erase(normalized, erasing_config(config), rng);
}

cv::Mat transform_train(const cv::Mat& rgb8, const TransformConfig& config, std::mt19937_64& rng) {
  cv::Mat out = normalize(transform_train_8bit(rgb8, config, rng), normalize_table(config));
  random_erase_normalized(out, config, rng);
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

cv::Mat transform_eval_8bit(const SourceRegion& src, const TransformConfig& config) {
  check_region(src, config);
  return eval_geometry(src, config);
}

cv::Mat transform_eval_8bit(const cv::Mat& rgb8, const TransformConfig& config) {
  check_input(rgb8, config);
  return eval_geometry(whole(rgb8), config);
}

cv::Mat transform_eval(const cv::Mat& rgb8, const TransformConfig& config) {
  return normalize(transform_eval_8bit(rgb8, config), normalize_table(config));
}

}  // namespace vkvit::data
