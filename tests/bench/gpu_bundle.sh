#!/usr/bin/env bash
# Packs what the NVIDIA comparison (tests/bench/gpu_compare.sh) needs on a GPU machine that has
# none of vkvit's build dependencies: vkvit-bench (vkvit's `devices` and `bench` commands alone,
# linked without OpenCV and MPI), the two shared libraries it loads beyond the C/C++ runtime (the
# Vulkan loader and yaml-cpp), the configs and the comparison scripts. Run here, after
# scripts/install-deps.sh; copy or carry the folder there.
#
#   tests/bench/gpu_bundle.sh [OUT_DIR]     (default .gpu, ignored by git; about 15 MB)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/.gpu}
build=${BUILD:-$root/build-bench}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVKVIT_MPI=OFF -DVKVIT_BENCH_BINARY=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target vkvit-bench
rm -rf "$out"
mkdir -p "$out/lib" "$out/tests/bench"
strip -o "$out/vkvit-bench" "$build/src/vkvit-bench"
# The libraries the binary loads, except the C/C++ runtime every Linux machine has.
ldd "$build/src/vkvit-bench" | awk '$3 ~ /^\// { print $3 }' |
  grep -v -E '/lib(c|m|gcc_s|stdc\+\+|pthread|dl|rt)\.so' | while read -r lib; do cp -L "$lib" "$out/lib/"; done
cp -r "$root/configs" "$out/"
cp "$root/tests/bench/gpu_compare.sh" "$root/tests/bench/pytorch_bench.py" "$out/tests/bench/"
echo "gpu_bundle.sh: $out ($(du -sh "$out" | cut -f1)): $(ls "$out/lib" | tr '\n' ' ')"
