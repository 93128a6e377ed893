#!/usr/bin/env bash
# Data-parallel scaling: one `vkvit train` epoch as one process with global batch G, then as N
# ranks (mpirun) with G/N each, back to back on the same data so both see the same machine load;
# prints each img/s and the ratio. Builds nothing: give it a vkvit built with MPI.
#
#   tests/bench/data_parallel.sh [--ranks 2] [-b 128] [--images 5120] [--config configs/fmnist_vit_tiny.yaml]
#                                [--vkvit PATH] [--repeat 2] [-- extra mpirun arguments, e.g. -x VKVIT_ALLREDUCE_OVERLAP=0]
#
# On one machine the ranks share its cores (and, without GPUs, the CPU driver): the ratio then
# shows the cost of the exchange, not a speed-up. Uses datasets/prepare_fashion_mnist.sh for a
# training subset of --images images (64 for val) in a temporary folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vkvit="$root/build/src/vkvit" config="$root/configs/fmnist_vit_tiny.yaml"
ranks=2 batch=128 images=5120 repeat=2 extra=()

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    -b|--batch) batch=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --vkvit) vkvit=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "data_parallel.sh: unknown argument $1" >&2; usage 1 ;;
  esac
done
if [ $((batch % ranks)) -ne 0 ]; then
  echo "data_parallel.sh: the global batch $batch does not split into $ranks equal ranks" >&2
  exit 1
fi
command -v mpirun >/dev/null || { echo "data_parallel.sh: no mpirun (Debian: openmpi-bin)" >&2; exit 1; }
# OpenMPI refuses to start as root unless told that it is meant.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/datasets/prepare_fashion_mnist.sh" --limit-train "$images" --limit-val 64 --out "$work/data" >/dev/null

# The training img/s of one epoch (the line `train N img/s, ...` that vkvit prints at the end).
img_per_s() { sed -n 's/^train \([0-9.]*\) img\/s.*/\1/p'; }
args=(train --config "$config" --data-dir "$work/data" --epochs 1 -q)

printf '%-8s %12s %12s %8s\n' round "1 process" "$ranks ranks" ratio
for i in $(seq "$repeat"); do
  rm -rf "$work/one" "$work/many"
  one=$("$vkvit" "${args[@]}" -b "$batch" --output "$work/one" | img_per_s)
  many=$(mpirun --oversubscribe -np "$ranks" "${extra[@]}" "$vkvit" "${args[@]}" -b $((batch / ranks)) \
           --output "$work/many" | img_per_s)
  printf '%-8s %12s %12s %8s\n' "$i" "$one" "$many" "$(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.2f", a / b }')"
done
echo "img/s of training at global batch $batch ($images images, $config); ratio = $ranks ranks / 1 process"
