// Portable random numbers for the data pipeline. std::mt19937_64 is fully specified by the
// standard, but std::uniform_*_distribution and std::shuffle are not (libstdc++ and libc++ differ),
// so draws go through these helpers: a seed then gives the same epoch everywhere.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>

namespace vkvit::data {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A seed for one (run seed, epoch, sample) triple; nearby inputs give unrelated seeds.
inline uint64_t mix_seed(uint64_t seed, uint64_t epoch, uint64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index);
}

// Uniform in [0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }
inline double uniform(std::mt19937_64& rng, double lo, double hi) { return lo + (hi - lo) * uniform01(rng); }

// N(0, 1) from two uniforms (Box-Muller, cosine branch only), for the augmentations' normal draws.
inline double standard_normal(std::mt19937_64& rng) {
  const double u1 = uniform01(rng), u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
}

// Uniform integer in [0, n), without modulo bias (rejects the short top range).
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  if (n <= 1) return 0;
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

}  // namespace vkvit::data
