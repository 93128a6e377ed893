// Fuzz target: arbitrary bytes as an image file -> data::decode_image with small limits, and
// data::decode_image_region (the loader's crop-aware path) on a box drawn from the input, which
// must give the same pixels in its box as the whole decode, or the same refusal; then the same box
// decoded at a reduced scale (JPEG DCT scaling, 1/2 to 1/8) must hold the box and resample without
// an error.
// The input's length picks the channel count (odd: gray, even: RGB) so one corpus covers both
// conversions without a prefix byte that would make the seeds stop being images.
// A vkvit::Error is the expected answer to a bad file; anything else (another exception such as
// cv::Exception, a sanitizer report, a broken promise checked below) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "data/decode.h"
#include "data/transform.h"
#include "memfile.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "vkvit fuzz decode: decoded image breaks a promise: %s\n", what);
  std::abort();
}

// The crop-aware decode of a box picked from the input's first bytes: its box's pixels must be
// the whole decode's.
void check_region(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                  const vkvit::data::DecodeLimits& limits, const cv::Mat& whole) {
  const uint32_t pick = bytes.size() >= 4 ? uint32_t(bytes[bytes.size() - 1]) | uint32_t(bytes[bytes.size() - 2]) << 8 |
                                                uint32_t(bytes[bytes.size() - 3]) << 16 | uint32_t(bytes[bytes.size() - 4]) << 24
                                          : 0;
  auto choose = [pick](int w, int h) {
    vkvit::data::CropBox b;
    b.width = 1 + int(pick % uint32_t(w));
    b.height = 1 + int((pick >> 8) % uint32_t(h));
    b.x = int((pick >> 16) % uint32_t(w - b.width + 1));
    b.y = int((pick >> 24) % uint32_t(h - b.height + 1));
    return b;
  };
  vkvit::data::SourceRegion r;
  try {
    r = vkvit::data::decode_image_region(bytes, path, channels, limits, choose);
  } catch (const vkvit::Error&) {
    broken("decode_image_region refused a file that decode_image decodes");
  }
  const vkvit::data::CropBox b = r.box;  // r is decoded again below
  if (r.width != whole.cols || r.height != whole.rows) broken("the region's image size differs from the whole decode's");
  if (b.x < r.x || b.y < r.y || b.x + b.width > r.x + r.pixels.cols || b.y + b.height > r.y + r.pixels.rows)
    broken("the decoded region does not hold the box");
  if (r.pixels.channels() != whole.channels() && !(r.pixels.channels() == 1 && whole.channels() == 3))
    broken("the region has another channel count");
  cv::Mat region = r.pixels(cv::Rect(b.x - r.x, b.y - r.y, b.width, b.height));
  if (region.channels() != whole.channels()) cv::cvtColor(region, region, cv::COLOR_GRAY2RGB);
  cv::Mat diff;
  cv::absdiff(region, whole(cv::Rect(b.x, b.y, b.width, b.height)), diff);
  if (cv::countNonZero(diff.reshape(1)) != 0) broken("the region's box differs from the same box of the whole decode");

  // The same box at 1/2, 1/4 or 1/8 (two more bits of the pick): the region covers the box in
  // decoded pixels, and a RandomResizedCrop of it to 8 px reads only pixels the region holds.
  const int denom = 2 << ((pick >> 12) % 3);
  try {
    r = vkvit::data::decode_image_region(bytes, path, channels, limits, [&](int w, int h) {
      return vkvit::data::RegionRequest(choose(w, h), denom);
    });
  } catch (const vkvit::Error&) {
    broken("decode_image_region at a reduced scale refused a file that decode_image decodes");
  }
  const int d = r.scale_denom;
  if (d != 1 && d != denom) broken("the region's scale is neither full nor the requested one");
  if (d == 1 && (r.pixels.cols != whole.cols || r.pixels.rows != whole.rows)) broken("a full-scale fallback is not whole");
  if (r.x > b.x / d || r.y > b.y / d || (b.x + b.width + d - 1) / d > r.x + r.pixels.cols ||
      (b.y + b.height + d - 1) / d > r.y + r.pixels.rows)
    broken("the region decoded at a reduced scale does not cover the box");
  vkvit::data::TransformConfig t;
  t.image_size = 8;
  t.channels = channels;
  t.mean.assign(1, 0.5f);
  t.std.assign(1, 0.25f);
  std::mt19937_64 rng(pick);
  try {
    vkvit::data::transform_train_8bit(r, t, rng);
  } catch (const vkvit::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    broken("the resize of a region decoded at a reduced scale failed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vkvit::fuzz::MemFile file("vkvit-fuzz-decode");
  const std::string& path = file.write(data, size);
  const int channels = size % 2 ? 1 : 3;
  // Small enough that an accepted image never nears libFuzzer's memory limit, large enough for
  // every seed; the point is that the limit holds, whatever its value.
  vkvit::data::DecodeLimits limits;
  limits.max_pixels = 1u << 20;
  limits.max_file_bytes = 1u << 20;

  vkvit::data::ImageHeader header;
  try {
    header = vkvit::data::probe_image(std::vector<uint8_t>(data, data + size), path);
  } catch (const vkvit::Error&) {
    return 0;  // rejected with a message: the expected outcome for bad input
  }
  // decode_image compares width * height with the limit: the product must be exact.
  if (header.width * header.height / header.width != header.height)
    broken("the header's width * height overflows 64 bits, so the pixel limit compares a wrapped value");

  cv::Mat img;
  try {
    img = vkvit::data::decode_image(path, channels, limits);
  } catch (const vkvit::Error&) {
    return 0;
  }
  if (img.empty()) broken("empty image returned without an error");
  if (img.depth() != CV_8U) broken("not 8-bit");
  if (img.channels() != channels) broken("wrong channel count");
  if (uint64_t(img.total()) > limits.max_pixels) broken("more pixels than DecodeLimits.max_pixels");
  // The pixel limit is checked on the header's size: the decoder must agree with it (EXIF
  // orientation may swap the sides, never change the area), or a file could slip past the limit.
  if (uint64_t(img.total()) != header.width * header.height) {
    std::fprintf(stderr, "header %s %llux%llu, decoded %dx%d\n", header.format.c_str(),
                 (unsigned long long)header.width, (unsigned long long)header.height, img.cols, img.rows);
    broken("decoded size differs from the size probe_image read from the header");
  }
  check_region(std::vector<uint8_t>(data, data + size), path, channels, limits, img);
  return 0;
}
