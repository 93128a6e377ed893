#!/usr/bin/env bash
# The whole pipeline on Fashion-MNIST: install what is missing, build, prepare the dataset,
# train configs/fmnist_vit_tiny.yaml, evaluate the best checkpoint, classify the val split, and
# draw the training curves, the confusion matrix and an attention map of one val image.
# Usage: scripts/demo.sh [extra `vkvit train` arguments, e.g. --epochs 1]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VKVIT_BUILD_DIR:-$root/build}
cd "$root"

"$root/scripts/install-deps.sh"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

start=$(date +%s)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target vkvit
vkvit="$build/src/vkvit"

datasets/prepare_fashion_mnist.sh

run="runs/demo-$(date +%Y%m%d-%H%M%S)"
"$vkvit" train --config configs/fmnist_vit_tiny.yaml --data-dir datasets/fashion-mnist --output "$run" "$@"
"$vkvit" eval --checkpoint "$run/best.safetensors" --data-dir datasets/fashion-mnist/val \
  --results-file "$run/eval.json" --confusion "$run/confusion.png" >/dev/null
"$vkvit" predict --checkpoint "$run/best.safetensors" --topk 3 --results-file "$run/val_predictions.csv" \
  datasets/fashion-mnist/val

# What the model looks at in the first val image (the file names sort the same on every machine).
first_val=$(find datasets/fashion-mnist/val -type f -name '*.png' | LC_ALL=C sort | awk 'NR == 1')
"$vkvit" explain --checkpoint "$run/best.safetensors" --output "$run/explain" "$first_val"

top1=$(sed -n 's/^ *"top1": \([0-9.]*\),*$/\1/p' "$run/eval.json")
echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "  run folder:       $run (config.yaml, summary.csv, last/best.safetensors)"
echo "  evaluation:       $run/eval.json (val top-1 ${top1}%)"
echo "  predictions:      $run/val_predictions.csv"
echo "  pictures:         $run/curves.png, $run/confusion.png, $run/explain/ (attention rollout)"
