// Patchify (see patchify.h): a gather from interleaved HxWxC into planar [c][py][px] patch rows.
#include "data/patchify.h"

#include "base/error.h"

namespace vkvit::data {

void patchify(const cv::Mat& image, int patch_size, float* out) {
  const int P = patch_size, C = image.channels(), H = image.rows, W = image.cols;
  if (image.depth() != CV_32F) throw Error("patchify: expected a float32 image");
  if (P <= 0 || H % P != 0 || W % P != 0)
    throw Error("patchify: image " + std::to_string(W) + "x" + std::to_string(H) + " is not a multiple of patch size " +
                std::to_string(P));
  const int gw = W / P;
  const size_t row = size_t(C) * P * P;
  for (int y = 0; y < H; ++y) {
    const float* src = image.ptr<float>(y);
    const int gy = y / P, py = y % P;
    for (int x = 0; x < W; ++x) {
      const int gx = x / P, px = x % P;
      float* dst = out + size_t(gy * gw + gx) * row + size_t(py) * P + px;
      for (int c = 0; c < C; ++c) dst[size_t(c) * P * P] = src[size_t(x) * C + c];
    }
  }
}

}  // namespace vkvit::data
