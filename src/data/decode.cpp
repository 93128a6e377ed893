// decode_image: read the file once into memory, check size and structure (probe_image), then let
// OpenCV decode from that buffer and normalise depth, alpha and channel order.
#include <algorithm>
#include <fstream>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "data/decode.h"

namespace vkvit::data {

std::vector<uint8_t> read_image_file(const std::string& path, uint64_t max_bytes) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(path + ": cannot open the file (missing or unreadable)");
  const std::streamoff size = f.tellg();
  if (size < 0) throw Error(path + ": cannot read the file size");
  if (uint64_t(size) > max_bytes)
    throw Error(path + ": file is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(max_bytes) +
                " (DecodeLimits.max_file_bytes); shrink the image or raise the limit");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size)) throw Error(path + ": read error");
  return bytes;
}

namespace {

// The sample depth's full scale: the value that means "white".
double full_scale(int depth) { return depth == CV_8U ? 255.0 : depth == CV_16U ? 65535.0 : 1.0; }

// BGRA (or gray + alpha as 4 channels) at any depth -> 3-channel float BGR in the source's scale,
// over a white background.
cv::Mat composite_white(const cv::Mat& bgra) {
  cv::Mat f;
  bgra.convertTo(f, CV_32F);
  const float scale = float(full_scale(bgra.depth()));
  cv::Mat out(f.rows, f.cols, CV_32FC3);
  for (int y = 0; y < f.rows; ++y) {
    const float* s = f.ptr<float>(y);
    float* d = out.ptr<float>(y);
    for (int x = 0; x < f.cols; ++x, s += 4, d += 3) {
      const float a = std::min(std::max(s[3] / scale, 0.0f), 1.0f);
      for (int c = 0; c < 3; ++c) d[c] = s[c] * a + scale * (1.0f - a);
    }
  }
  return out;
}

}  // namespace

cv::Mat decode_image(const std::string& path, int channels, const DecodeLimits& limits) {
  if (channels != 1 && channels != 3) throw Error("decode: channels must be 1 or 3 (got " + std::to_string(channels) + ")");
  return decode_image_bytes(read_image_file(path, limits.max_file_bytes), path, channels, limits);
}

namespace {

// probe_image, then the pixel-count limit.
ImageHeader checked_header(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                           const DecodeLimits& limits) {
  if (channels != 1 && channels != 3) throw Error("decode: channels must be 1 or 3 (got " + std::to_string(channels) + ")");
  const ImageHeader header = probe_image(bytes, path);
  if (header.width * header.height > limits.max_pixels)
    throw Error(path + ": " + header.format + " of " + std::to_string(header.width) + "x" + std::to_string(header.height) +
                " = " + std::to_string(header.width * header.height) + " pixels is over the limit of " +
                std::to_string(limits.max_pixels) + " (DecodeLimits.max_pixels); shrink the image or raise the limit");
  return header;
}

}  // namespace

SourceRegion decode_image_region(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                                 const DecodeLimits& limits, const RegionChooser& choose) {
  const ImageHeader header = checked_header(bytes, path, channels, limits);
  SourceRegion r;
  if (header.format == "JPEG" && decode_jpeg_region(bytes, choose, r)) {
    // The conversions decode_image_bytes makes of OpenCV's output, on the region.
    if (r.pixels.channels() == 1 && channels == 3) cv::cvtColor(r.pixels, r.pixels, cv::COLOR_GRAY2RGB);
    else if (r.pixels.channels() == 3 && channels == 1) cv::cvtColor(r.pixels, r.pixels, cv::COLOR_RGB2GRAY);
    return r;
  }
  r.pixels = decode_image_bytes(bytes, path, channels, limits);
  r.width = r.pixels.cols;
  r.height = r.pixels.rows;
  r.box = choose(r.width, r.height).box;
  return r;
}

cv::Mat decode_image_bytes(const std::vector<uint8_t>& bytes, const std::string& path, int channels,
                           const DecodeLimits& limits) {
  const ImageHeader header = checked_header(bytes, path, channels, limits);

  // IMREAD_UNCHANGED is the only flag that keeps alpha, and the only one without EXIF orientation,
  // so it is used only for files that may be transparent. ANYCOLOR keeps gray sources 1-channel
  // (no round trip when channels == 1); ANYDEPTH keeps 16 bits for the scaling below.
  const int flags = header.alpha ? cv::IMREAD_UNCHANGED : (cv::IMREAD_ANYCOLOR | cv::IMREAD_ANYDEPTH);
  cv::Mat m;
  try {
    const cv::Mat buffer(1, int(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
    m = cv::imdecode(buffer, flags);
  } catch (const cv::Exception& e) {
    throw Error(path + ": OpenCV could not decode this " + header.format + " (" + e.err + ")");
  }
  if (m.empty()) throw Error(path + ": corrupt " + header.format + " (OpenCV could not decode its pixel data)");
  if (m.depth() != CV_8U && m.depth() != CV_16U && m.depth() != CV_32F)
    throw Error(path + ": unsupported sample type (only 8-bit, 16-bit and float images are read); convert it to 8-bit");

  const double scale = full_scale(m.depth());
  cv::Mat color;  // 1 or 3 channels (BGR), any depth
  if (m.channels() == 4) color = composite_white(m);
  else if (m.channels() == 2) {  // gray + alpha, should a decoder return it so
    cv::Mat bgra;
    cv::Mat planes[2];
    cv::split(m, planes);
    cv::Mat four[4] = {planes[0], planes[0], planes[0], planes[1]};
    cv::merge(four, 4, bgra);
    color = composite_white(bgra);
  } else if (m.channels() == 1 || m.channels() == 3) color = m;
  else throw Error(path + ": unsupported channel count " + std::to_string(m.channels()));

  // Scale to 8 bits: 16-bit by 255 / 65535 (rounded), float [0, 1] by 255 (saturated).
  cv::Mat u8;
  if (color.depth() == CV_8U) u8 = color;
  else color.convertTo(u8, CV_8U, 255.0 / scale);

  cv::Mat out;
  if (channels == 3) cv::cvtColor(u8, out, u8.channels() == 1 ? cv::COLOR_GRAY2RGB : cv::COLOR_BGR2RGB);
  else if (u8.channels() == 3) cv::cvtColor(u8, out, cv::COLOR_BGR2GRAY);
  else out = u8;
  return out;
}

}  // namespace vkvit::data
