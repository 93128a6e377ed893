// Fuzz target: arbitrary bytes as an image file -> data::decode_image with small limits.
// The input's length picks the channel count (odd: gray, even: RGB) so one corpus covers both
// conversions without a prefix byte that would make the seeds stop being images.
// A vkvit::Error is the expected answer to a bad file; anything else (another exception such as
// cv::Exception, a sanitizer report, a broken promise checked below) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "base/error.h"
#include "data/decode.h"
#include "memfile.h"

namespace {

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "vkvit fuzz decode: decoded image breaks a promise: %s\n", what);
  std::abort();
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
  return 0;
}
