// RandAugment on 8-bit images, with the semantics of timm's rand_augment_transform and AugmentOp
// (timm/data/auto_augment.py in huggingface/pytorch-image-models): n ops drawn uniformly with
// replacement, each applied with probability p at a magnitude drawn per use from N(m, mstd)
// (U(0, m) when mstd > 100) and clipped to [0, mmax], mapped to the op's argument by timm's
// formulas, with a random sign where timm negates. The ops reproduce Pillow 9.4's ImageOps,
// ImageEnhance and Image.transform(AFFINE) arithmetic (tests/test_rand_augment.cpp compares them
// with Pillow's output).
//
// Geometric ops resample with Pillow's affine filter named by data.interpolation (nearest,
// bilinear or bicubic), as timm does when an interpolation is fixed; vkvit always has one, so
// timm's random bilinear/bicubic choice (interpolation 'random') is never drawn. Pixels that map
// outside the image take the fill colour, the dataset mean in 8 bits (timm's img_mean).
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "data/rand_augment_config.h"

namespace vkvit::data {

// timm's _RAND_TRANSFORMS / _RAND_INCREASING_TRANSFORMS, in timm's order (the increasing set uses
// other magnitude formulas for posterize, solarize and the four enhancements).
enum class AugmentOp {
  auto_contrast, equalize, invert, rotate, posterize, solarize, solarize_add, color, contrast,
  brightness, sharpness, shear_x, shear_y, translate_x, translate_y
};
constexpr int kAugmentOpCount = 15;
const char* augment_op_name(AugmentOp op);

enum class AffineFilter { nearest, bilinear, bicubic };
// "nearest" | "bilinear" | "bicubic" (data.interpolation); throws vkvit::Error otherwise.
AffineFilter affine_filter(const std::string& interpolation);

// What the ops need besides the RandAugment string.
struct RandAugmentSettings {
  RandAugmentConfig config;
  AffineFilter filter = AffineFilter::bicubic;
  std::array<uint8_t, 4> fill{128, 128, 128, 128};  // per channel; timm's default without a mean is 128
};
// timm's img_mean: min(255, round(255 * mean)) per channel (one mean value serves every channel).
std::array<uint8_t, 4> fill_from_mean(const std::vector<float>& mean, int channels);

// One op that fires: its magnitude and the argument timm's level function gives it (degrees,
// bits, threshold, added value, enhancement factor, shear factor, or translation as a fraction
// of the image side).
struct OpUse {
  AugmentOp op = AugmentOp::auto_contrast;
  double magnitude = 0;
  double argument = 0;
};

// The magnitude of one use: N(m, mstd), or U(0, m) for an infinite mstd, clipped to [0, mmax].
double draw_magnitude(const RandAugmentConfig& config, std::mt19937_64& rng);
// timm's level-to-argument formula for `op`; ops timm negates draw their sign from rng.
double op_argument(AugmentOp op, double magnitude, bool increasing, std::mt19937_64& rng);
// The random part of one RandAugment call, in timm's order of draws: n op indices, then per op
// the p test, its magnitude and its sign. Returns the ops that fire, in order.
std::vector<OpUse> draw_rand_augment(const RandAugmentConfig& config, std::mt19937_64& rng);

// Applies one op to an 8-bit image with 1 or 3 channels; returns a new image of the same size.
cv::Mat apply_op(const cv::Mat& image8, const OpUse& use, const RandAugmentSettings& settings);
// draw_rand_augment, then apply_op for each op that fires.
cv::Mat rand_augment(const cv::Mat& image8, const RandAugmentSettings& settings, std::mt19937_64& rng);

// The ops one by one (Pillow's semantics), for apply_op and the tests.
cv::Mat auto_contrast(const cv::Mat& image8);
cv::Mat equalize(const cv::Mat& image8);
cv::Mat invert(const cv::Mat& image8);
cv::Mat posterize(const cv::Mat& image8, int bits);
cv::Mat solarize(const cv::Mat& image8, int threshold);
cv::Mat solarize_add(const cv::Mat& image8, int add, int threshold = 128);
cv::Mat enhance_color(const cv::Mat& image8, double factor);
cv::Mat enhance_contrast(const cv::Mat& image8, double factor);
cv::Mat enhance_brightness(const cv::Mat& image8, double factor);
cv::Mat enhance_sharpness(const cv::Mat& image8, double factor);
// Image.transform(size, AFFINE, matrix, filter, fillcolor): output pixel centre (x + 0.5, y + 0.5)
// reads the input at (a0 x + a1 y + a2, a3 x + a4 y + a5).
cv::Mat affine(const cv::Mat& image8, const std::array<double, 6>& matrix, AffineFilter filter,
               const std::array<uint8_t, 4>& fill);
// Image.rotate(degrees, filter, fillcolor=fill): counter-clockwise about the centre, same size.
cv::Mat rotate(const cv::Mat& image8, double degrees, AffineFilter filter, const std::array<uint8_t, 4>& fill);

}  // namespace vkvit::data
