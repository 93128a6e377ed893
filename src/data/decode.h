// Decoding one image file into 8-bit RGB (or gray) with OpenCV, after checking the file cheaply:
// the file size and the pixel count read from the format's own header are checked before any
// pixel buffer is allocated, and a JPEG or PNG that ends early is rejected instead of being
// decoded into half-grey pixels. decode_image_region decodes a JPEG only around the box a
// transform reads, with libjpeg-turbo directly (decode_jpeg.cpp), giving the same pixels there.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace vkvit::data {

struct DecodeLimits {
  uint64_t max_pixels = 89478485;        // PIL's Image.MAX_IMAGE_PIXELS: width * height above this is refused
  uint64_t max_file_bytes = 1ull << 30;  // files larger than this are refused before being read
};

// What the header says, without decoding pixels.
struct ImageHeader {
  std::string format;  // "JPEG", "PNG", "BMP", "WebP", "TIFF", "PNM"
  uint64_t width = 0, height = 0;
  bool alpha = false;  // the file may carry transparency (PNG colour types 4/6 or tRNS, WebP alpha)
};

// Parses the header of an in-memory file. Throws vkvit::Error ("<path>: <reason>") for an empty
// file, an unrecognised or unsupported format, a truncated JPEG/PNG/WebP, or a header without a
// usable size. `path` is only used in messages.
ImageHeader probe_image(const std::vector<uint8_t>& bytes, const std::string& path);

// Reads and decodes `path` into an 8-bit HxWxC cv::Mat, C = channels (3: RGB order, 1: gray).
// - 16-bit images are scaled (value * 255 / 65535, rounded), not clamped; float TIFFs are read as [0, 1].
// - grayscale becomes 3 equal channels when channels == 3; colour becomes gray (ITU-R 601 luma,
//   as PIL's convert('L')) when channels == 1.
// - alpha (PNG, WebP) is composited over a white background. PIL's convert('RGB'), which timm
//   uses, drops alpha instead and shows whatever colour hides under transparent pixels; white
//   gives a defined picture. TIFF alpha is dropped.
// - EXIF orientation is applied (OpenCV does it for every flag but IMREAD_UNCHANGED, which only
//   the alpha path uses; PNG/WebP files rarely carry EXIF orientation).
// Throws vkvit::Error naming the file and the reason.
cv::Mat decode_image(const std::string& path, int channels, const DecodeLimits& limits = {});

// decode_image's two halves, for callers that time them apart: reading the file (refused above
// max_bytes) and decoding the bytes read (`path` only names the file in messages).
std::vector<uint8_t> read_image_file(const std::string& path, uint64_t max_bytes);
cv::Mat decode_image_bytes(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                           const DecodeLimits& limits);

// A box in source pixels.
struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};

// What a transform asks of a decode: the box it reads, and the coarsest JPEG DCT scaling it accepts
// (1, 2, 4 or 8: libjpeg then decodes at 1/scale_denom of the size, much faster, as Pillow's
// Image.draft does; 1 = full size). Other formats are always decoded at full size.
struct RegionRequest {
  CropBox box;
  int scale_denom = 1;
  RegionRequest(CropBox b = {}, int denom = 1) : box(b), scale_denom(denom) {}  // a box alone: full size
};

// Part of a decoded image. width x height is the image's full size (EXIF orientation applied) and
// `box` the box the chooser asked for, in those pixels. The image was decoded at 1/scale_denom of
// its size (ceil(width / scale_denom) pixels wide; decoded pixel i covers full pixels
// [i * scale_denom, (i + 1) * scale_denom)), and pixels holds its columns [x, x + cols) and rows
// [y, y + rows), in decoded pixels, which cover the box.
struct SourceRegion {
  cv::Mat pixels;
  int x = 0, y = 0, width = 0, height = 0;
  CropBox box;
  int scale_denom = 1;
};
// Given the image's size, what a transform will read (called once per decode).
using RegionChooser = std::function<RegionRequest(int width, int height)>;

// decode_image for a transform that reads only a box: the same checks, errors and pixels, but a
// JPEG that is upright (no EXIF rotation) and YCbCr or greyscale is decoded by libjpeg-turbo
// only around the box (data/decode_jpeg.cpp), at the requested DCT scaling; other files are
// decoded whole at full size (region = image, scale_denom 1).
SourceRegion decode_image_region(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                                 const DecodeLimits& limits, const RegionChooser& choose);

// decode_jpeg.cpp's part: false, with nothing decoded, when libjpeg refuses the file or it needs
// the general path. The region has the JPEG's own channels (1 for greyscale, else 3, RGB).
bool decode_jpeg_region(const std::vector<uint8_t>& bytes, const RegionChooser& choose, SourceRegion& out);

}  // namespace vkvit::data
