// Patchify: the host side of ViT's patch embedding. A conv with kernel = stride = P over the image
// equals a matmul of the image's patches, each flattened [c][py][px], with the conv weight
// (D, C, P, P) flattened the same way; this writes those rows.
#pragma once
#include <opencv2/core.hpp>

#include "data/transform.h"

namespace vkvit::data {

// image: HxWxC CV_32F, H and W multiples of patch_size. out: (H/P)*(W/P) rows of C*P*P floats;
// row r is patch (r / (W/P), r % (W/P)), laid out [c][py][px]. Throws vkvit::Error on bad shapes.
void patchify(const cv::Mat& image, int patch_size, float* out);

// The same rows from an 8-bit image, normalised on the way through `table` (one pass instead of a
// float image and a gather): the bits patchify(normalized image) writes.
void patchify_8bit(const cv::Mat& image8, const NormalizeTable& table, int patch_size, float* out);

}  // namespace vkvit::data
