// The RandAugment string (timm's `--aa rand-m9-mstd0.5-inc1`) and its parser, apart from the ops
// (rand_augment.h) so that reading a run config needs no image library: vkvit-bench reads configs
// and loads no OpenCV.
#pragma once
#include <string>

namespace vkvit::data {

// The parsed form of a timm RandAugment string such as "rand-m9-mstd0.5-inc1".
struct RandAugmentConfig {
  int magnitude = 10;        // m
  int num_ops = 2;           // n
  double prob = 0.5;         // p: chance that each drawn op is applied
  double magnitude_std = 0;  // mstd; infinity (timm: any value > 100) draws U(0, m) instead
  int magnitude_max = 10;    // mmax: upper clip of the magnitude (timm reads mmax0 as the default 10)
  bool increasing = false;   // inc: the op set whose severity grows with the magnitude
};

// timm's syntax: "rand" then '-'-separated sections <key><number> with key m, n, p, mstd, mmax or
// inc (timm turns inc on for any number, inc0 included). Throws vkvit::Error, one line naming the
// string and the accepted form, for anything else.
RandAugmentConfig parse_rand_augment(const std::string& spec);

}  // namespace vkvit::data
