#!/usr/bin/python3
"""Writes the repeated-augmentation orders that tests/test_sampler.cpp compares vkvit's sampler
(src/data/sampler.h) against, into tests/fixtures/sampler/repeated_aug.txt:

    /usr/bin/python3 tests/reference/make_sampler_fixtures.py    # from the repository root, < 1 s

Plain Python, no torch: the arithmetic of DeiT's RASampler (deit/samplers.py, with its num_repeats
as a parameter as in later DeiT and timm's RepeatAugSampler) applied to a given permutation, since
torch.randperm's stream is not vkvit's shuffle. For each case, the permutation is written out and
each rank's epoch is what RASampler.__iter__ yields for that rank. DeiT keeps
floor(n // 256 * 256 / world) images per rank, none below 256 images; vkvit keeps n // world there
(repeated_aug_per_rank), and so does this reference.

Format, one case per block:
    case <n> <world> <num_repeats>
    perm <n indices>
    rank <r> <the rank's indices>      (world lines)
Rerunning rewrites a byte-identical file (fixed seeds).
"""
import math
import os
import random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "sampler", "repeated_aug.txt")

# (n, world, num_repeats): world 1 (repeats consecutive), several ranks, n not divisible by the
# ranks, DeiT's rounding to 256 (300 and 700 images), and one repeat.
CASES = [(10, 1, 3), (10, 2, 3), (7, 3, 2), (13, 4, 3), (12, 3, 1), (300, 2, 3), (700, 3, 3), (5, 8, 4)]


def num_selected(n, world):
    rounded = n // 256 * 256
    return int(math.floor((rounded if rounded else n) / world))


def rank_epoch(perm, world, rank, num_repeats):
    n = len(perm)
    num_samples = int(math.ceil(n * num_repeats / world))
    total_size = num_samples * world
    indices = [ele for ele in perm for _ in range(num_repeats)]
    indices += indices[:(total_size - len(indices))]
    assert len(indices) == total_size
    indices = indices[rank:total_size:world]
    assert len(indices) == num_samples
    return indices[:num_selected(n, world)]


def main():
    lines = []
    for case, (n, world, repeats) in enumerate(CASES):
        perm = list(range(n))
        random.Random(1000 + case).shuffle(perm)
        lines.append("case %d %d %d" % (n, world, repeats))
        lines.append("perm " + " ".join(map(str, perm)))
        for rank in range(world):
            lines.append(("rank %d " % rank + " ".join(map(str, rank_epoch(perm, world, rank, repeats)))).rstrip())
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
