// Train and eval transforms with timm/torchvision semantics: RandomResizedCrop + horizontal flip for
// training; resize of the shorter side to floor(size / crop_pct) + center crop for evaluation;
// then (x / 255 - mean) / std. Resizing is Pillow's resample (antialiased when shrinking, bicubic
// a = -0.5), which torchvision applies to PIL images, reproduced to the bit: Pillow's fixed-point
// weights, and each pass (horizontal, then vertical) rounded and clamped to 8 bits, so bicubic
// overshoot is clamped where Pillow clamps it. tests/test_transform_pillow.cpp compares against
// Pillow's own outputs (tests/reference/make_pillow_fixtures.py).
//
// With auto_augment set, training follows timm's order: crop + flip (8-bit, as Pillow's resize
// output), RandAugment (data/rand_augment.h), then normalisation; with reprob > 0,
// random erasing (data/random_erasing.h) follows normalisation. Both draw from the same per-image
// generator after the crop and the flip, and draw nothing when off.
#pragma once
#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "data/decode.h"

namespace vkvit::data {

struct TransformConfig {
  int image_size = 224;
  int channels = 3;
  std::vector<float> mean{0.485f, 0.456f, 0.406f}, std{0.229f, 0.224f, 0.225f};  // one per channel, or one for all
  float crop_pct = 0.875f;
  std::string interpolation = "bicubic";  // bilinear | bicubic | nearest
  bool random_resized_crop = true;        // false: train uses the eval geometry (plus flip)
  float scale_min = 0.08f, scale_max = 1.0f, ratio_min = 3.f / 4, ratio_max = 4.f / 3;
  // > 0 (with random_resized_crop false): torchvision's RandomCrop(image_size, padding) on the eval
  // geometry's output: zero-padded by this many pixels on each side, a window at a uniform offset.
  int crop_padding = 0;
  float hflip = 0.5f;  // probability of a horizontal flip in training (0 = off), as timm
  std::string auto_augment;  // timm RandAugment string ("rand-m9-mstd0.5-inc1"); "" = off
  float reprob = 0.0f;       // random erasing probability (0 = off)
  std::string remode = "pixel";  // const | rand | pixel
  int recount = 1;           // at most this many erased boxes
  // 0: off (Pillow's pixels to the bit). g >= 1: decode a JPEG at 1/2, 1/4 or 1/8 of its size
  // (libjpeg's DCT scaling, as Pillow's Image.draft) when the crop there still has at least g times
  // the output's size, as Pillow's reducing_gap: much less decoding for large photos, pixels close
  // to the exact path (tests/test_dct_scaling.cpp states how close; 2 is Pillow's thumbnail default).
  double jpeg_dct_scaling = 0;
};

// Throws vkvit::Error for an unusable config (sizes, mean/std length, interpolation name, ranges).
void validate(const TransformConfig& config);

// torchvision's RandomResizedCrop.get_params: ten tries at a random area and log-uniform aspect
// ratio, then the whole image clamped to the ratio range, centred. Uniforms are drawn from rng
// with a portable recipe (53-bit doubles, unbiased integers), so a seed gives the same crop on
// every standard library.
CropBox random_resized_crop_box(int width, int height, const TransformConfig& config, std::mt19937_64& rng);

// Resamples the `box` region of an 8-bit HxWxC image to out_w x out_h, as Pillow's
// image.crop(box).resize((out_w, out_h), filter): 8-bit (resample8) or those values as floats.
cv::Mat resample8(const cv::Mat& image8, const CropBox& box, int out_w, int out_h, const std::string& interpolation);
cv::Mat resample(const cv::Mat& image8, const CropBox& box, int out_w, int out_h, const std::string& interpolation);

// torchvision's RandomCrop(size of image8, padding): image8 zero-padded by `padding` pixels on each
// side, then the window of image8's size at a top, then left, offset uniform in [0, 2 * padding].
cv::Mat padded_random_crop(const cv::Mat& image8, int padding, std::mt19937_64& rng);

// (v / 255 - mean[c]) / std[c] for every 8-bit value v of each channel c: the one place the
// normalisation is computed, so that every path that uses it gives the same bits.
struct NormalizeTable {
  int channels = 0;
  float value[3][256] = {};
};
NormalizeTable normalize_table(const TransformConfig& config);
// An 8-bit image through the table, as a float image (transform_train's and transform_eval's last step).
cv::Mat normalize8(const cv::Mat& image8, const NormalizeTable& table);
// transform_train's random erasing (nothing when reprob is 0) on its normalised output.
void random_erase_normalized(cv::Mat& normalized, const TransformConfig& config, std::mt19937_64& rng);

// Train: random-resized-crop (or eval geometry, then the padded random crop) + flip with p = 0.5,
// rng-driven. Eval: resize the shorter side to floor(size / crop_pct) (longer side truncated, as
// torchvision), center crop (offsets rounded half to even, as Python's round). Output: float32
// size x size x C, normalized.
cv::Mat transform_train(const cv::Mat& rgb8, const TransformConfig& config, std::mt19937_64& rng);
cv::Mat transform_eval(const cv::Mat& rgb8, const TransformConfig& config);
// The same transforms up to normalisation: the 8-bit size x size x C image (cropped, resized,
// flipped and RandAugmented for train; random erasing, which works on normalised values, is left
// out). transform_train is normalize_table's values of transform_train_8bit, then random erasing,
// from the same rng draws.
cv::Mat transform_train_8bit(const cv::Mat& rgb8, const TransformConfig& config, std::mt19937_64& rng);
cv::Mat transform_eval_8bit(const cv::Mat& rgb8, const TransformConfig& config);

// Crop-aware decoding (decode_image_region): the source box each transform reads is known from the
// image's size alone. Train draws its crop (the rng's first draws, as in transform_train; with
// random_resized_crop off it is eval's box); eval's is the span of its resize taps over the centre
// crop. The 8-bit transforms then run on a region decoded around that box (src.box), train drawing
// the rest (flip, RandAugment): the same pixels and draws as from the whole image.
CropBox train_source_box(int width, int height, const TransformConfig& config, std::mt19937_64& rng);
CropBox eval_source_box(int width, int height, const TransformConfig& config);
// The DCT scaling to decode a JPEG at for that box (train: the box drawn; eval: eval_source_box):
// the largest d of 8, 4, 2 that leaves what is resized at least jpeg_dct_scaling times the
// resize's output size on both axes at 1/d, else 1 (always 1 with jpeg_dct_scaling 0). The
// transforms read such a region (SourceRegion::scale_denom) as Pillow resizes a float box of a
// reduced image.
int dct_scale_denom(int width, int height, const CropBox& box, const TransformConfig& config, bool train);
cv::Mat transform_train_8bit(const SourceRegion& src, const TransformConfig& config, std::mt19937_64& rng);
cv::Mat transform_eval_8bit(const SourceRegion& src, const TransformConfig& config);

// The part of a width x height source image that transform_eval's output shows, in source pixel
// units (fractional: the crop is cut from the resized image, and resized pixel edge u lies at
// source position u * width / resized_width, as the resampler places pixel centres).
struct CropWindow {
  double x = 0, y = 0, width = 0, height = 0;
};
CropWindow eval_crop_window(int width, int height, const TransformConfig& config);

}  // namespace vkvit::data
