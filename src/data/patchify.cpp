// Patchify (see patchify.h): a gather from interleaved HxWxC into planar [c][py][px] patch rows.
#include "data/patchify.h"

#include "base/error.h"

namespace vkvit::data {
namespace {

void check_shape(const cv::Mat& image, int P) {
  if (P <= 0 || image.rows % P != 0 || image.cols % P != 0)
    throw Error("patchify: image " + std::to_string(image.cols) + "x" + std::to_string(image.rows) +
                " is not a multiple of patch size " + std::to_string(P));
}

// Walks the image row by row and hands each source row with the start of its first patch row in
// `out` to write(src_row, dst, patch_stride): pixel x of the row goes to dst + (x / P) * row +
// x % P, channel c a further c * P * P on.
template <class T, class Write>
void gather(const cv::Mat& image, int P, float* out, Write&& write) {
  const int gw = image.cols / P;
  const size_t row = size_t(image.channels()) * P * P;
  for (int y = 0; y < image.rows; ++y)
    write(image.ptr<T>(y), out + size_t(y / P) * gw * row + size_t(y % P) * P, row);
}

}  // namespace

void patchify(const cv::Mat& image, int patch_size, float* out) {
  if (image.depth() != CV_32F) throw Error("patchify: expected a float32 image");
  check_shape(image, patch_size);
  const int P = patch_size, C = image.channels(), W = image.cols;
  gather<float>(image, P, out, [&](const float* src, float* dst, size_t row) {
    for (int x = 0; x < W; ++x) {
      float* d = dst + size_t(x / P) * row + x % P;
      for (int c = 0; c < C; ++c) d[size_t(c) * P * P] = src[size_t(x) * C + c];
    }
  });
}

void patchify_8bit(const cv::Mat& image8, const NormalizeTable& table, int patch_size, float* out) {
  if (image8.depth() != CV_8U) throw Error("patchify: expected an 8-bit image");
  if (image8.channels() != table.channels) throw Error("patchify: the normalisation table is for another channel count");
  check_shape(image8, patch_size);
  const int P = patch_size, C = image8.channels(), W = image8.cols;
  const size_t plane = size_t(P) * P;
  gather<uint8_t>(image8, P, out, [&](const uint8_t* src, float* dst, size_t row) {
    // Patch by patch along the row: reads stay sequential and each channel plane is written in
    // runs of P floats, with no division per pixel.
    for (int gx = 0; gx < W / P; ++gx, dst += row) {
      const uint8_t* s = src + size_t(gx) * P * C;
      if (C == 3) {  // the common case, unrolled: three tables, three planes
        float *d0 = dst, *d1 = dst + plane, *d2 = dst + 2 * plane;
        for (int px = 0; px < P; ++px, s += 3) {
          d0[px] = table.value[0][s[0]];
          d1[px] = table.value[1][s[1]];
          d2[px] = table.value[2][s[2]];
        }
      } else {
        for (int px = 0; px < P; ++px, s += C)
          for (int c = 0; c < C; ++c) dst[size_t(c) * plane + px] = table.value[c][s[c]];
      }
    }
  });
}

}  // namespace vkvit::data
