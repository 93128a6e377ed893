#!/usr/bin/env bash
# vkvit on this machine's two CPU Vulkan drivers, lavapipe and SwiftShader, on the same model and
# data: the same step and inference side by side, and whether the two agree.
#
#   tests/bench/drivers_compare.sh [--config configs/fmnist_vit_tiny.yaml] [--data-dir DIR]
#       [--rounds 3] [--steps 50] [--images DIR] [--vkvit PATH] [--log DIR] [--choices]
#
# 1. Speed: `bench train-step` and `bench infer`, lavapipe then SwiftShader, --rounds times; one
#    row per round and the median ratio (SwiftShader time / lavapipe time).
# 2. Training: `train --max-steps S` from the same seed on each driver; the per-step losses of the
#    two steps.csv files compared (largest relative difference, and at which step).
# 3. Logits: `predict --output-type logit` of the lavapipe run's checkpoint over --images (default:
#    the val split) on each driver; the largest difference relative to each image's largest logit.
# --choices: first, what each kernel choice costs: `bench train-step` on each driver with every
#    matmul kernel and attention path forced (VKVIT_MATMUL_KERNEL, VKVIT_ATTENTION), one run each;
#    a choice the device cannot run shows its one-line refusal.
# Each driver is selected alone with VK_ICD_FILENAMES; SwiftShader comes from
# scripts/install-swiftshader.sh. Full outputs go to --log DIR (default: a temporary folder).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vkvit="$root/build/src/vkvit"
config=configs/fmnist_vit_tiny.yaml data_dir="" rounds=3 steps=50 images="" log="" choices=0

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --vkvit) vkvit=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --choices) choices=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "drivers_compare.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "drivers_compare.sh: --rounds takes a positive count, not '$rounds'" >&2; exit 2; }
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || { echo "drivers_compare.sh: --steps takes a positive count, not '$steps'" >&2; exit 2; }
[ -x "$vkvit" ] || { echo "drivers_compare.sh: no vkvit binary at $vkvit: build first or pass --vkvit" >&2; exit 2; }
cd "$root"
[ -n "$log" ] || log=$(mktemp -d)
mkdir -p "$log"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

lavapipe_icd=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1)
[ -n "$lavapipe_icd" ] || { echo "drivers_compare.sh: lavapipe's ICD file is missing: apt-get install mesa-vulkan-drivers" >&2; exit 2; }
swiftshader_icd=$("$root/scripts/install-swiftshader.sh" --no-register)
drivers=(lavapipe swiftshader)
declare -A icd=([lavapipe]=$lavapipe_icd [swiftshader]=$swiftshader_icd)
on() { local driver=$1; shift; VK_ICD_FILENAMES=${icd[$driver]} "$vkvit" "$@"; }

data_args=()
[ -z "$data_dir" ] || data_args=(--data-dir "$data_dir")
echo "# vkvit on lavapipe and SwiftShader: $config; logs in $log"
for d in "${drivers[@]}"; do echo "# $d: $(on "$d" devices | sed -n 's/^device [0-9]* (selected): //p')"; done

result_field() { sed -n 's/^RESULT .* ms=\([0-9.]*\) .*/\1/p' "$1"; }

# 0. What each kernel choice costs on each driver.
if [ "$choices" -eq 1 ]; then
  echo
  echo "kernel choices: bench train-step ms per step (one run each)"
  printf '%-36s %14s %14s\n' choice lavapipe swiftshader
  for choice in "" VKVIT_MATMUL_KERNEL=register_blocked VKVIT_MATMUL_KERNEL=tiled VKVIT_MATMUL_KERNEL=naive \
                VKVIT_ATTENTION=fused VKVIT_ATTENTION=unfused; do
    row=()
    for d in "${drivers[@]}"; do
      out="$log/choice-${choice:-default}-$d.txt"
      env $choice VK_ICD_FILENAMES="${icd[$d]}" "$vkvit" bench train-step --config "$config" --steps 3 --warmup 1 >"$out" 2>&1 || true
      ms=$(result_field "$out")
      row+=("${ms:-refused}")
    done
    printf '%-36s %14s %14s\n' "${choice:-default}" "${row[@]}"
    for d in "${drivers[@]}"; do
      out="$log/choice-${choice:-default}-$d.txt"
      [ -n "$(result_field "$out")" ] || echo "  $d: $(grep -m1 'error' "$out" || tail -n 1 "$out")"
    done
  done
fi

# 1. Speed, alternating drivers within each round.
for mode in train-step infer; do
  echo
  echo "mode $mode: ms per step (median of the run)"
  printf '%-6s %12s %12s %8s\n' round lavapipe swiftshader ratio
  ratios=()
  for r in $(seq 1 "$rounds"); do
    for d in "${drivers[@]}"; do
      on "$d" bench "$mode" --config "$config" --steps 5 --warmup 2 >"$log/$mode-$d-$r.txt" 2>&1
    done
    lp=$(result_field "$log/$mode-lavapipe-$r.txt") ss=$(result_field "$log/$mode-swiftshader-$r.txt")
    ratio=$(awk -v a="$ss" -v b="$lp" 'BEGIN { printf "%.1f", a / b }')
    ratios+=("$ratio")
    printf '%-6s %12s %12s %8s\n' "$r" "$lp" "$ss" "$ratio"
  done
  printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { printf "median ratio (SwiftShader / lavapipe): %s\n", v[int((NR + 1) / 2)] }'
done

# 2. The same training steps on each driver.
for d in "${drivers[@]}"; do
  rm -rf "$log/train-$d"
  on "$d" train --config "$config" "${data_args[@]}" --max-steps "$steps" --output "$log/train-$d" -q \
    >"$log/train-$d.txt" 2>&1
done
echo
/usr/bin/python3 - "$log/train-lavapipe/steps.csv" "$log/train-swiftshader/steps.csv" <<'EOF'
import csv, sys
a, b = ([float(row["loss"]) for row in csv.DictReader(open(p))] for p in sys.argv[1:3])
if len(a) != len(b):
    sys.exit(f"training: {len(a)} steps on lavapipe, {len(b)} on SwiftShader")
rel = [abs(x - y) / abs(x) for x, y in zip(a, b)]
worst = max(range(len(rel)), key=rel.__getitem__)
print(f"training, {len(a)} steps: loss {a[0]:.6f} -> {a[-1]:.6f} on lavapipe, {b[0]:.6f} -> {b[-1]:.6f} on SwiftShader; "
      f"largest relative difference {rel[worst]:.2e} at step {worst + 1}, first step {rel[0]:.2e}")
EOF

# 3. Logits of one checkpoint on each driver.
if [ -z "$images" ]; then
  images=$(/usr/bin/python3 -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); print(c["data"]["dir"] + "/" + c["data"]["val_split"])' "$config" 2>/dev/null || true)
  [ -z "$data_dir" ] || images="$data_dir/val"
fi
[ -d "$images" ] || { echo "drivers_compare.sh: no image folder '$images' for the logits: pass --images DIR" >&2; exit 2; }
for d in "${drivers[@]}"; do
  on "$d" predict --checkpoint "$log/train-lavapipe/last.safetensors" --output-type logit --topk 1000 \
    --results-file "$log/logits-$d.json" "$images" >"$log/predict-$d.txt" 2>&1
done
/usr/bin/python3 - "$log/logits-lavapipe.json" "$log/logits-swiftshader.json" <<'EOF'
import json, sys
def load(path):
    return {r["file"]: {t["index"]: t["score"] for t in r["topk"]} for r in json.load(open(path))}
a, b = (load(p) for p in sys.argv[1:3])
if a.keys() != b.keys():
    sys.exit(f"logits: {len(a)} images on lavapipe, {len(b)} on SwiftShader")
worst, where = 0.0, ""
for image, la in a.items():
    scale = max(abs(v) for v in la.values())
    for cls, v in la.items():
        rel = abs(v - b[image][cls]) / scale
        if rel > worst:
            worst, where = rel, f"{image} class {cls}"
print(f"logits, {len(a)} images: largest difference relative to the image's largest logit {worst:.2e} ({where})")
EOF
