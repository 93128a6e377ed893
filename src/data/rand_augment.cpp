// RandAugment (see rand_augment.h). The magnitude formulas are timm's (timm/data/auto_augment.py,
// the *_level_to_arg functions); the pixel arithmetic is Pillow 9.4's: lookup tables for the
// point ops, Image.blend's float interpolation for the enhancements, the SMOOTH 3x3 kernel for
// sharpness, and Image.transform's affine samplers (nearest in its three code paths, bilinear,
// and a = -1 bicubic) with truncation to 8 bits.
#include "data/rand_augment.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "data/rng.h"

namespace vkvit::data {
namespace {

constexpr double kLevelDenom = 10.0;  // timm's _LEVEL_DENOM: magnitude 10 is the full-strength argument

uint8_t clip8(double v) { return v <= 0.0 ? 0 : v >= 255.0 ? 255 : uint8_t(v); }

void check_image(const cv::Mat& image8) {
  if (image8.empty() || image8.depth() != CV_8U || (image8.channels() != 1 && image8.channels() != 3))
    throw Error("rand_augment: expected an 8-bit image with 1 or 3 channels");
}

// A 256-entry table per channel, as Pillow's Image.point applies it.
cv::Mat apply_luts(const cv::Mat& image8, const std::vector<std::array<uint8_t, 256>>& luts) {
  check_image(image8);
  const int C = image8.channels();
  cv::Mat out(image8.size(), image8.type());
  for (int y = 0; y < image8.rows; ++y) {
    const uint8_t* s = image8.ptr<uint8_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int c = 0; c < C; ++c) {
      const uint8_t* lut = luts[size_t(c)].data();
      for (int i = c; i < image8.cols * C; i += C) d[i] = lut[s[i]];
    }
  }
  return out;
}

std::vector<std::array<uint8_t, 256>> same_lut(const cv::Mat& image8, const std::array<uint8_t, 256>& lut) {
  return std::vector<std::array<uint8_t, 256>>(size_t(image8.channels()), lut);
}

// Image.histogram: 256 counts per channel.
std::vector<std::array<int64_t, 256>> histograms(const cv::Mat& image8) {
  check_image(image8);
  const int C = image8.channels();
  std::array<int64_t, 256> zeros{};
  std::vector<std::array<int64_t, 256>> h(size_t(C), zeros);
  for (int y = 0; y < image8.rows; ++y) {
    const uint8_t* s = image8.ptr<uint8_t>(y);
    for (int i = 0; i < image8.cols * C; ++i) ++h[size_t(i % C)][s[i]];
  }
  return h;
}

// Pillow's convert("L") of one pixel: ITU-R 601-2 luma in 16-bit fixed point, rounded.
uint8_t luma(const uint8_t* px, int channels) {
  if (channels == 1) return px[0];
  return uint8_t((px[0] * 19595 + px[1] * 38470 + px[2] * 7471 + 0x8000) >> 16);
}

// Image.blend(degenerate, image, factor): a float interpolation, truncated; clipped when the
// factor extrapolates (outside [0, 1]).
cv::Mat blend(const cv::Mat& degenerate, const cv::Mat& image8, double factor) {
  const float alpha = float(factor);
  const bool inside = alpha >= 0.0f && alpha <= 1.0f;
  cv::Mat out(image8.size(), image8.type());
  const int n = image8.cols * image8.channels();
  for (int y = 0; y < image8.rows; ++y) {
    const uint8_t* a = degenerate.ptr<uint8_t>(y);
    const uint8_t* b = image8.ptr<uint8_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int i = 0; i < n; ++i) {
      const float v = float(a[i]) + alpha * float(int(b[i]) - int(a[i]));
      d[i] = inside ? uint8_t(v) : clip8(v);
    }
  }
  return out;
}

// ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, divided by 13) as Pillow's 3x3 filter
// runs it: float weights, rounded to 8 bits, the outermost rows and columns copied unchanged.
cv::Mat smooth(const cv::Mat& image8) {
  cv::Mat out = image8.clone();
  const int C = image8.channels(), W = image8.cols, H = image8.rows;
  if (W < 3 || H < 3) return out;
  const float side = 1.0f / 13.0f, centre = 5.0f / 13.0f;
  for (int y = 1; y < H - 1; ++y) {
    const uint8_t* up = image8.ptr<uint8_t>(y - 1);
    const uint8_t* mid = image8.ptr<uint8_t>(y);
    const uint8_t* down = image8.ptr<uint8_t>(y + 1);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int i = C; i < (W - 1) * C; ++i) {
      const float below = float(down[i - C]) * side + float(down[i]) * side + float(down[i + C]) * side;
      const float row = float(mid[i - C]) * side + float(mid[i]) * centre + float(mid[i + C]) * side;
      const float above = float(up[i - C]) * side + float(up[i]) * side + float(up[i + C]) * side;
      d[i] = clip8(double(below + row + above) + 0.5);
    }
  }
  return out;
}

// Python's round(v, 15), which Image.rotate applies to the cosine and sine.
double round15(double v) { return std::nearbyint(v * 1e15) / 1e15; }

// Pillow's COORD: the pixel index of a coordinate, -1 for any negative one.
int coord(double v) { return v < 0.0 ? -1 : int(v); }

cv::Mat filled(const cv::Mat& image8, const std::array<uint8_t, 4>& fill) {
  const int C = image8.channels();
  cv::Mat out(image8.size(), image8.type());
  for (int y = 0; y < out.rows; ++y) {
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int i = 0; i < out.cols * C; ++i) d[i] = fill[size_t(i % C)];
  }
  return out;
}

void copy_pixel(const cv::Mat& in, int xin, int yin, cv::Mat& out, int x, int y) {
  const int C = in.channels();
  std::copy_n(in.ptr<uint8_t>(yin) + size_t(xin) * C, C, out.ptr<uint8_t>(y) + size_t(x) * C);
}

// Nearest, pure translation/scale: Pillow's ImagingScaleAffine (positions stepped in doubles).
void nearest_scale(const cv::Mat& in, const std::array<double, 6>& a, cv::Mat& out) {
  std::vector<int> xin(size_t(out.cols));
  double xo = a[2] + a[0] * 0.5;
  for (int x = 0; x < out.cols; ++x, xo += a[0]) xin[size_t(x)] = coord(xo);
  double yo = a[5] + a[4] * 0.5;
  for (int y = 0; y < out.rows; ++y, yo += a[4]) {
    const int yi = coord(yo);
    if (yi < 0 || yi >= in.rows) continue;
    for (int x = 0; x < out.cols; ++x)
      if (xin[size_t(x)] >= 0 && xin[size_t(x)] < in.cols) copy_pixel(in, xin[size_t(x)], yi, out, x, y);
  }
}

// Nearest, general matrix: Pillow's affine_fixed (16.16 fixed point) when every corner fits,
// else its double-stepping loop.
void nearest_general(const cv::Mat& in, const std::array<double, 6>& a, cv::Mat& out) {
  const int W = out.cols, H = out.rows;
  auto fits = [&](int x, int y) {
    return std::fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && std::fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
  };
  if (fits(0, 0) && fits(W, H) && fits(0, H) && fits(W, 0)) {
    auto fix = [](double v) { return int64_t(std::floor(v * 65536.0 + 0.5)); };
    const int64_t a0 = fix(a[0]), a1 = fix(a[1]), a3 = fix(a[3]), a4 = fix(a[4]);
    int64_t a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5), a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for (int y = 0; y < H; ++y, a2 += a1, a5 += a4) {
      int64_t xx = a2, yy = a5;
      for (int x = 0; x < W; ++x, xx += a0, yy += a3) {
        const int64_t xi = xx >> 16, yi = yy >> 16;  // arithmetic shift: floor, as Pillow's int shift
        if (xi >= 0 && xi < in.cols && yi >= 0 && yi < in.rows) copy_pixel(in, int(xi), int(yi), out, x, y);
      }
    }
    return;
  }
  double xo = a[2] + a[1] * 0.5 + a[0] * 0.5, yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
  for (int y = 0; y < H; ++y, xo += a[1], yo += a[4]) {
    double xx = xo, yy = yo;
    for (int x = 0; x < W; ++x, xx += a[0], yy += a[3]) {
      const int xi = coord(xx), yi = coord(yy);
      if (xi >= 0 && xi < in.cols && yi >= 0 && yi < in.rows) copy_pixel(in, xi, yi, out, x, y);
    }
  }
}

// Pillow's cubic through four samples (its BICUBIC macro: a = -1).
double cubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

// One output pixel of the bilinear or bicubic sampler at input position (xin, yin), which lies
// inside the image. Neighbours outside it repeat the edge, as Pillow's XCLIP/YCLIP do (its
// copying of the last in-range row is the same thing).
void sample_filtered(const cv::Mat& in, double xin, double yin, AffineFilter filter, uint8_t* dst) {
  const int C = in.channels();
  const double xs = xin - 0.5, ys = yin - 0.5;
  const int x = int(std::floor(xs)), y = int(std::floor(ys));
  const double dx = xs - x, dy = ys - y;
  const int taps = filter == AffineFilter::bilinear ? 2 : 4, first = filter == AffineFilter::bilinear ? 0 : -1;
  const uint8_t* rows[4];
  size_t cols[4];
  for (int k = 0; k < taps; ++k) {
    rows[k] = in.ptr<uint8_t>(std::clamp(y + first + k, 0, in.rows - 1));
    cols[k] = size_t(std::clamp(x + first + k, 0, in.cols - 1)) * C;
  }
  for (int c = 0; c < C; ++c) {
    auto at = [&](int r, int k) { return double(rows[r][cols[k] + c]); };
    if (filter == AffineFilter::bilinear) {
      const double top = at(0, 0) + (at(0, 1) - at(0, 0)) * dx;
      const double bottom = at(1, 0) + (at(1, 1) - at(1, 0)) * dx;
      dst[c] = uint8_t(top + (bottom - top) * dy);
    } else {
      double v[4];
      for (int r = 0; r < 4; ++r) v[r] = cubic(at(r, 0), at(r, 1), at(r, 2), at(r, 3), dx);
      dst[c] = clip8(cubic(v[0], v[1], v[2], v[3], dy));
    }
  }
}

// timm's _randomly_negate: the sign flips when a uniform draw exceeds 0.5.
double randomly_negate(double v, std::mt19937_64& rng) { return uniform01(rng) > 0.5 ? -v : v; }

}  // namespace

const char* augment_op_name(AugmentOp op) {
  static const char* const names[kAugmentOpCount] = {
      "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
      "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};
  return names[int(op)];
}

AffineFilter affine_filter(const std::string& interpolation) {
  if (interpolation == "nearest") return AffineFilter::nearest;
  if (interpolation == "bilinear") return AffineFilter::bilinear;
  if (interpolation == "bicubic") return AffineFilter::bicubic;
  throw Error("rand_augment: interpolation must be nearest, bilinear or bicubic (got '" + interpolation + "')");
}

std::array<uint8_t, 4> fill_from_mean(const std::vector<float>& mean, int channels) {
  std::array<uint8_t, 4> fill{128, 128, 128, 128};
  for (int c = 0; c < channels && !mean.empty(); ++c) {
    const double m = mean.size() == 1 ? mean[0] : mean[size_t(c)];
    fill[size_t(c)] = uint8_t(std::clamp(std::nearbyint(255.0 * m), 0.0, 255.0));  // Python round: half to even
  }
  return fill;
}

double draw_magnitude(const RandAugmentConfig& c, std::mt19937_64& rng) {
  double m = c.magnitude;
  if (std::isinf(c.magnitude_std)) m = uniform(rng, 0.0, m);
  else if (c.magnitude_std > 0) m += c.magnitude_std * standard_normal(rng);
  return std::max(0.0, std::min(m, double(c.magnitude_max)));
}

double op_argument(AugmentOp op, double m, bool increasing, std::mt19937_64& rng) {
  const double level = m / kLevelDenom;
  switch (op) {
    case AugmentOp::rotate: return randomly_negate(level * 30.0, rng);
    case AugmentOp::posterize: {
      const int bits = int(level * 4);
      return increasing ? 4 - bits : bits;
    }
    case AugmentOp::solarize: {
      const int threshold = std::min(256, int(level * 256));
      return increasing ? 256 - threshold : threshold;
    }
    case AugmentOp::solarize_add: return std::min(128, int(level * 110));
    case AugmentOp::color:
    case AugmentOp::contrast:
    case AugmentOp::brightness:
    case AugmentOp::sharpness:
      if (increasing) return std::max(0.1, 1.0 + randomly_negate(level * 0.9, rng));
      return level * 1.8 + 0.1;
    case AugmentOp::shear_x:
    case AugmentOp::shear_y: return randomly_negate(level * 0.3, rng);
    case AugmentOp::translate_x:
    case AugmentOp::translate_y: return randomly_negate(level * 0.45, rng);  // timm's translate_pct
    default: return 0.0;  // auto_contrast, equalize, invert take no argument
  }
}

std::vector<OpUse> draw_rand_augment(const RandAugmentConfig& c, std::mt19937_64& rng) {
  std::vector<AugmentOp> chosen(size_t(std::max(c.num_ops, 0)));
  for (AugmentOp& op : chosen) op = AugmentOp(uniform_below(rng, kAugmentOpCount));
  std::vector<OpUse> uses;
  for (AugmentOp op : chosen) {
    if (c.prob < 1.0 && uniform01(rng) > c.prob) continue;
    OpUse use;
    use.op = op;
    use.magnitude = draw_magnitude(c, rng);
    use.argument = op_argument(op, use.magnitude, c.increasing, rng);
    uses.push_back(use);
  }
  return uses;
}

cv::Mat apply_op(const cv::Mat& img, const OpUse& use, const RandAugmentSettings& s) {
  const double arg = use.argument;
  switch (use.op) {
    case AugmentOp::auto_contrast: return auto_contrast(img);
    case AugmentOp::equalize: return equalize(img);
    case AugmentOp::invert: return invert(img);
    case AugmentOp::rotate: return rotate(img, arg, s.filter, s.fill);
    case AugmentOp::posterize: return posterize(img, int(arg));
    case AugmentOp::solarize: return solarize(img, int(arg));
    case AugmentOp::solarize_add: return solarize_add(img, int(arg));
    case AugmentOp::color: return enhance_color(img, arg);
    case AugmentOp::contrast: return enhance_contrast(img, arg);
    case AugmentOp::brightness: return enhance_brightness(img, arg);
    case AugmentOp::sharpness: return enhance_sharpness(img, arg);
    case AugmentOp::shear_x: return affine(img, {1, arg, 0, 0, 1, 0}, s.filter, s.fill);
    case AugmentOp::shear_y: return affine(img, {1, 0, 0, arg, 1, 0}, s.filter, s.fill);
    case AugmentOp::translate_x: return affine(img, {1, 0, arg * img.cols, 0, 1, 0}, s.filter, s.fill);
    case AugmentOp::translate_y: return affine(img, {1, 0, 0, 0, 1, arg * img.rows}, s.filter, s.fill);
  }
  throw Error("rand_augment: unknown op");
}

cv::Mat rand_augment(const cv::Mat& image8, const RandAugmentSettings& settings, std::mt19937_64& rng) {
  check_image(image8);
  cv::Mat img = image8;
  for (const OpUse& use : draw_rand_augment(settings.config, rng)) img = apply_op(img, use, settings);
  return img;
}

cv::Mat auto_contrast(const cv::Mat& image8) {
  std::vector<std::array<uint8_t, 256>> luts;
  for (const auto& h : histograms(image8)) {
    int lo = 0, hi = 255;
    while (lo < 255 && !h[size_t(lo)]) ++lo;
    while (hi > 0 && !h[size_t(hi)]) --hi;
    std::array<uint8_t, 256> lut;
    const double scale = hi > lo ? 255.0 / (hi - lo) : 0.0, offset = -lo * scale;
    for (int i = 0; i < 256; ++i) {
      const int v = int(i * scale + offset);  // Python int(): toward zero
      lut[size_t(i)] = hi <= lo ? uint8_t(i) : uint8_t(std::clamp(v, 0, 255));
    }
    luts.push_back(lut);
  }
  return apply_luts(image8, luts);
}

cv::Mat equalize(const cv::Mat& image8) {
  std::vector<std::array<uint8_t, 256>> luts;
  for (const auto& h : histograms(image8)) {
    int64_t total = 0, last = 0, used = 0;
    for (int64_t count : h)
      if (count) total += count, last = count, ++used;
    const int64_t step = used <= 1 ? 0 : (total - last) / 255;
    std::array<uint8_t, 256> lut;
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[size_t(i)] = step ? uint8_t(std::min<int64_t>(n / step, 255)) : uint8_t(i);
      n += h[size_t(i)];
    }
    luts.push_back(lut);
  }
  return apply_luts(image8, luts);
}

cv::Mat invert(const cv::Mat& image8) {
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(255 - i);
  return apply_luts(image8, same_lut(image8, lut));
}

cv::Mat posterize(const cv::Mat& image8, int bits) {
  if (bits >= 8) return image8.clone();  // timm returns the image unchanged
  // ImageOps.posterize keeps the top `bits` bits; no bits (or fewer) leaves 0.
  const int mask = bits <= 0 ? 0 : ~((1 << (8 - bits)) - 1);
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(i & mask);
  return apply_luts(image8, same_lut(image8, lut));
}

cv::Mat solarize(const cv::Mat& image8, int threshold) {
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(i < threshold ? i : 255 - i);
  return apply_luts(image8, same_lut(image8, lut));
}

cv::Mat solarize_add(const cv::Mat& image8, int add, int threshold) {
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[size_t(i)] = uint8_t(i < threshold ? std::min(255, i + add) : i);
  return apply_luts(image8, same_lut(image8, lut));
}

cv::Mat enhance_color(const cv::Mat& image8, double factor) {
  check_image(image8);
  const int C = image8.channels();
  cv::Mat grey(image8.size(), image8.type());  // convert("L").convert(mode)
  for (int y = 0; y < image8.rows; ++y) {
    const uint8_t* s = image8.ptr<uint8_t>(y);
    uint8_t* d = grey.ptr<uint8_t>(y);
    for (int x = 0; x < image8.cols; ++x) std::fill_n(d + size_t(x) * C, C, luma(s + size_t(x) * C, C));
  }
  return blend(grey, image8, factor);
}

cv::Mat enhance_contrast(const cv::Mat& image8, double factor) {
  check_image(image8);
  const int C = image8.channels();
  int64_t sum = 0;
  for (int y = 0; y < image8.rows; ++y) {
    const uint8_t* s = image8.ptr<uint8_t>(y);
    for (int x = 0; x < image8.cols; ++x) sum += luma(s + size_t(x) * C, C);
  }
  // ImageStat's mean of the grey image, rounded half up as int(mean + 0.5).
  const int mean = int(double(sum) / double(int64_t(image8.rows) * image8.cols) + 0.5);
  return blend(cv::Mat(image8.size(), image8.type(), cv::Scalar::all(mean)), image8, factor);
}

cv::Mat enhance_brightness(const cv::Mat& image8, double factor) {
  check_image(image8);
  return blend(cv::Mat::zeros(image8.size(), image8.type()), image8, factor);
}

cv::Mat enhance_sharpness(const cv::Mat& image8, double factor) {
  check_image(image8);
  return blend(smooth(image8), image8, factor);
}

cv::Mat affine(const cv::Mat& image8, const std::array<double, 6>& a, AffineFilter filter,
               const std::array<uint8_t, 4>& fill) {
  check_image(image8);
  cv::Mat out = filled(image8, fill);  // Pillow starts from a fillcolor image and skips outside pixels
  if (filter == AffineFilter::nearest) {
    if (a[1] == 0 && a[3] == 0) nearest_scale(image8, a, out);
    else nearest_general(image8, a, out);
    return out;
  }
  const int C = image8.channels();
  for (int y = 0; y < out.rows; ++y) {
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int x = 0; x < out.cols; ++x) {
      const double xin = a[0] * (x + 0.5) + a[1] * (y + 0.5) + a[2];
      const double yin = a[3] * (x + 0.5) + a[4] * (y + 0.5) + a[5];
      if (xin < 0.0 || xin >= image8.cols || yin < 0.0 || yin >= image8.rows) continue;
      sample_filtered(image8, xin, yin, filter, d + size_t(x) * C);
    }
  }
  return out;
}

cv::Mat rotate(const cv::Mat& image8, double degrees, AffineFilter filter, const std::array<uint8_t, 4>& fill) {
  // Image.rotate: angle taken modulo 360 (Python's sign), then the inverse map about the centre.
  double angle = std::fmod(degrees, 360.0);
  if (angle < 0) angle += 360.0;
  if (angle == 0.0) return image8.clone();
  const double r = -(angle * (M_PI / 180.0));  // -math.radians(angle)
  const double c = round15(std::cos(r)), s = round15(std::sin(r)), ms = round15(-std::sin(r));
  const double cx = image8.cols / 2.0, cy = image8.rows / 2.0;
  std::array<double, 6> m{c, s, 0.0, ms, c, 0.0};
  m[2] = c * -cx + s * -cy + 0.0 + cx;
  m[5] = ms * -cx + c * -cy + 0.0 + cy;
  return affine(image8, m, filter, fill);
}

}  // namespace vkvit::data
