// Epoch orders and rank shards (see sampler.h).
#include "data/sampler.h"

#include <random>
#include <utility>

#include "base/error.h"
#include "data/rng.h"

namespace vkvit::data {

std::vector<uint32_t> shuffled_indices(uint32_t n, bool shuffle, uint64_t seed, uint64_t epoch) {
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i) order[i] = i;
  if (shuffle) {
    std::mt19937_64 rng(mix_seed(seed, epoch, ~0ull));  // index ~0: never a sample index
    for (uint32_t i = n; i > 1; --i) std::swap(order[i - 1], order[uniform_below(rng, i)]);
  }
  return order;
}

uint64_t repeated_aug_per_rank(uint64_t n, uint32_t world) {
  if (world == 0) throw Error("internal: repeated_aug_per_rank with no ranks");
  const uint64_t rounded = n / 256 * 256;
  return (rounded ? rounded : n) / world;
}

EpochOrder repeated_order(const std::vector<uint32_t>& perm, uint32_t num_repeats, uint64_t length) {
  if (perm.empty() || num_repeats == 0) throw Error("internal: repeated_order of an empty list");
  const uint64_t cycle = uint64_t(perm.size()) * num_repeats;
  EpochOrder order;
  order.samples.reserve(length);
  order.repeats.reserve(length);
  for (uint64_t p = 0; p < length; ++p) {
    const uint64_t q = p % cycle;  // DeiT's padding starts the repeated list again
    order.samples.push_back(perm[q / num_repeats]);
    order.repeats.push_back(static_cast<uint32_t>(q % num_repeats));
  }
  return order;
}

std::vector<uint64_t> shard_positions(uint64_t first, uint64_t end, uint32_t batch, uint32_t index, uint32_t count,
                                      bool dealt) {
  if (count == 0 || index >= count || batch == 0)
    throw Error("internal: shard " + std::to_string(index) + " of " + std::to_string(count));
  std::vector<uint64_t> mine;
  for (uint64_t p = first; p < end; ++p) {
    const uint64_t k = p - first;
    if ((dealt ? k : k / batch) % count == index) mine.push_back(p);
  }
  return mine;
}

}  // namespace vkvit::data
