// The order in which an epoch visits the samples, and how the ranks of a data-parallel run share
// it. The loader (data/loader.h) reads positions of this order; everything here is a pure
// function of its arguments, so every rank computes the same order without talking.
//
// Plain epochs: a shuffle of the n samples driven by (seed, epoch), cut into chunks of one batch
// that go round-robin to the ranks (chunk c to rank c % world), so that step s of a run with
// world ranks of batch B reads exactly the positions [s*world*B, (s+1)*world*B).
//
// Repeated augmentation (data.repeated_aug, DeiT's RASampler in deit/samplers.py, timm's
// RepeatAugSampler): the same shuffle with every sample repeated num_repeats times in a row, then
// dealt position by position (position p to rank p % world), so the repeats of one image land on
// different ranks; with one rank they are consecutive, as in DeiT with world size 1. Each rank keeps
// per_rank = repeated_aug_per_rank(n, world) positions, so the epoch holds world * per_rank
// positions, about n: as long as an epoch without repeats. Step s still reads the positions
// [s*world*B, (s+1)*world*B), dealt instead of chunked, so the rank shards stay disjoint and the
// global batch of a step is fixed by (seed, epoch, world).
#pragma once
#include <cstdint>
#include <vector>

namespace vkvit::data {

// 0..n-1 in order, or when `shuffle` a Fisher-Yates shuffle driven by (seed, epoch).
std::vector<uint32_t> shuffled_indices(uint32_t n, bool shuffle, uint64_t seed, uint64_t epoch);

// DeiT's num_selected_samples: floor(floor(n / 256) * 256 / world), the positions each rank reads
// per epoch. DeiT's rounding keeps none of a dataset under 256 images; vkvit keeps floor(n / world)
// of those (a small fine-tuning folder).
uint64_t repeated_aug_per_rank(uint64_t n, uint32_t world);

// An epoch's order: the sample read at each position, and which of its repeats it is (0 .. num_repeats-1;
// empty without repeated augmentation). The loader keys a position's augmentation draws by both,
// so every repeat of an image is augmented on its own, while repeat 0 draws what the image draws
// without repeats.
struct EpochOrder {
  std::vector<uint32_t> samples;
  std::vector<uint32_t> repeats;
};

// The first `length` positions of `perm` with each entry repeated `num_repeats` times in a row
// (DeiT pads the list by wrapping around to its start; positions past n * num_repeats wrap the
// same way).
EpochOrder repeated_order(const std::vector<uint32_t>& perm, uint32_t num_repeats, uint64_t length);

// The positions of [first, end) that shard `index` of `count` reads, in order. Positions are
// counted from `first` (a resumed run's start), so a resumed epoch splits its rest the way a fresh
// one splits a whole epoch. dealt = false: chunks of `batch` positions round-robin (plain epochs);
// dealt = true: position first + k to shard k % count (repeated augmentation).
std::vector<uint64_t> shard_positions(uint64_t first, uint64_t end, uint32_t batch, uint32_t index, uint32_t count,
                                      bool dealt);

}  // namespace vkvit::data
