// Random erasing as timm's RandomErasing does it (timm/data/random_erasing.py in
// huggingface/pytorch-image-models), on one normalised image: with probability `probability`,
// `count` boxes (count drawn uniformly in [min_count, max_count]), each of area
// U(min_area, max_area) * image area / count and aspect (height / width) log-uniform in
// [min_aspect, 1 / min_aspect], placed uniformly after up to 10 tries at a box that fits; the box
// is filled with 0 (const: the dataset mean after normalisation), one N(0, 1) value per channel
// (rand) or one per pixel and channel (pixel).
#pragma once
#include <random>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace vkvit::data {

struct RandomErasingConfig {
  double probability = 0.0;  // reprob; 0 = off (no draws at all, as timm adds no transform)
  std::string mode = "pixel";  // remode: const | rand | pixel
  int min_count = 1, max_count = 1;  // recount is max_count, as timm's transforms_factory passes it
  double min_area = 0.02, max_area = 1.0 / 3.0;
  double min_aspect = 0.3;  // max aspect 1 / min_aspect
};

// Throws vkvit::Error for a probability outside [0, 1], an unknown mode or bad counts.
void validate(const RandomErasingConfig& config);

struct EraseBox {
  int x = 0, y = 0, width = 0, height = 0;
};

// Erases in place a float32 H x W x C image (normalised); returns the boxes it filled, in order
// (a box may be empty: timm rounds a tiny area to 0 rows and still counts it).
std::vector<EraseBox> random_erase(cv::Mat& image, const RandomErasingConfig& config, std::mt19937_64& rng);

}  // namespace vkvit::data
