#!/bin/sh
# What each option of the training recipe costs, side by side (BENCHMARKS.md "The recipe's options:
# cost per step"). Two tables from one config:
#   - the GPU step: `vkvit bench train-step` without and with each option that changes the step
#     (Mixup/CutMix, drop path, model EMA, gradient accumulation, layer decay, freezing, amp);
#   - the loader: `vkvit bench loader` without and with each option that runs on its threads
#     (RandomResizedCrop, flip, RandAugment, random erasing), per CPU-second of one worker.
# Rounds alternate the rows, and each row's ratio is against the plain row of the same round, so
# that a busy machine slows both sides of a ratio alike; the table gives the median over rounds.
#
#   tests/bench/recipe_costs.sh [--vkvit build/src/vkvit] [--config configs/fmnist_vit_small.yaml]
#                               [--data-dir datasets/fashion-mnist] [--loader-config FILE]
#                               [--rounds 3] [--steps 20] [--images 6000] [--out runs/recipe-costs]
#                               [--tables "step loader"]
# --loader-config: the loader table's config (default --config), e.g. configs/imagenet_vit_s16.yaml
# with a folder of photographs (datasets/make_jpeg_folder.py) for ImageNet-sized images.
set -eu
set -f  # the overrides below hold * and [ ]: words, not patterns
VKVIT=build/src/vkvit
CONFIG=configs/fmnist_vit_small.yaml
DATA=datasets/fashion-mnist
ROUNDS=3
STEPS=20
IMAGES=6000
OUT=runs/recipe-costs
LOADER_CONFIG=""
TABLES="step loader"
while [ $# -gt 0 ]; do
  case "$1" in
    --vkvit) VKVIT=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --data-dir) DATA=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --loader-config) LOADER_CONFIG=$2; shift 2 ;;
    --tables) TABLES=$2; shift 2 ;;
    *) echo "recipe_costs.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$VKVIT" ] || { echo "recipe_costs.sh: $VKVIT is not built; build first or pass --vkvit" >&2; exit 1; }
[ -d "$DATA/train" ] || { echo "recipe_costs.sh: $DATA/train is missing; run datasets/prepare_fashion_mnist.sh" >&2; exit 1; }
[ -n "$LOADER_CONFIG" ] || LOADER_CONFIG=$CONFIG
mkdir -p "$OUT"

# The base config with every recipe option off, so that each row adds exactly one.
PLAIN="--set train.mixup=0 --set train.cutmix=0 --set train.drop_path=0 --set train.model_ema=false
       --set train.accum_steps=1 --set train.layer_decay=0 --set train.amp=false"
BATCH=$(sed -n 's/^ *batch_size: *\([0-9]*\).*/\1/p' "$CONFIG" | head -1)
[ -n "$BATCH" ] || { echo "recipe_costs.sh: $CONFIG sets no train.batch_size (the accumulation row halves it)" >&2; exit 1; }
HALF=$((BATCH / 2))

# name|overrides (the GPU step; accumulation runs two half batches per update, the same images)
STEP_ROWS="plain|
mixup+cutmix|--set train.mixup=0.8 --set train.cutmix=1.0
drop path 0.1|--set train.drop_path=0.1
model EMA|--set train.model_ema=true
accum 2 x half batch|--set train.accum_steps=2 -b $HALF
layer decay 0.75|--set train.layer_decay=0.75
freeze all but head|--set train.freeze=[\"*\",\"!head.*\"]
amp|--set train.amp=true"

LOADER_PLAIN="--set data.random_resized_crop=false --set data.hflip=0 --set data.auto_augment=\"\" --set data.reprob=0"
LOADER_ROWS="plain|
crop [0.6, 1]|--set data.random_resized_crop=true --set data.scale=[0.6,1.0] --set data.ratio=[0.8,1.25]
flip 0.5|--set data.hflip=0.5
RandAugment m9|--set data.auto_augment=rand-m9-mstd0.5-inc1
erasing 0.25|--set data.reprob=0.25"

# value of key $2 on the RESULT line of file $1
field() { grep '^RESULT ' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# $1 = table (step | loader), $2 = rows: runs each row once per round, writes "$OUT/$1.tsv"
# (round, name, value), value = process CPU-ms per image, the GPU step's (a CPU driver's work is
# CPU time, steadier than wall time on a shared machine) or the loader's.
measure() {
  : > "$OUT/$1.tsv"
  r=1
  while [ "$r" -le "$ROUNDS" ]; do
    echo "$2" | while IFS='|' read -r name overrides; do
      log="$OUT/$1-$r-$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_').log"
      if [ "$1" = step ]; then
        # shellcheck disable=SC2086
        "$VKVIT" bench train-step --config "$CONFIG" --steps "$STEPS" $PLAIN $overrides > "$log" 2>&1 ||
          { echo "recipe_costs.sh: $name failed, see $log" >&2; exit 1; }
        value=$(awk -v ms="$(field "$log" cpu_ms)" -v b="$(field "$log" batch)" -v k="$(field "$log" accum)" \
          'BEGIN { printf "%.4f", ms / (b * k) }')
      else
        # shellcheck disable=SC2086
        "$VKVIT" bench loader --data-dir "$DATA" --config "$LOADER_CONFIG" --workers 1 --images "$IMAGES" $LOADER_PLAIN $overrides \
          > "$log" 2>&1 || { echo "recipe_costs.sh: $name failed, see $log" >&2; exit 1; }
        value=$(field "$log" cpu_ms_per_img)
      fi
      printf '%s\t%s\t%s\n' "$r" "$name" "$value" >> "$OUT/$1.tsv"
    done
    r=$((r + 1))
  done
}

# The table of "$OUT/$1.tsv": per row the values of each round, the median, and the median of the
# per-round ratios to the plain row.
table() {
  awk -F'\t' -v unit="$2" '
    function median(list,   n, a, i, j, t) {
      n = split(list, a, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { v[$1, $2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++rows] = $2 } if ($1 > rounds) rounds = $1 }
    END {
      printf "| option | %s, each round | median | x plain (median of rounds) |\n|---|---|---:|---:|\n", unit
      for (i = 1; i <= rows; i++) {
        name = order[i]; vals = ""; ratios = ""
        for (r = 1; r <= rounds; r++) {
          vals = vals (r > 1 ? " " : "") v[r, name]
          ratios = ratios (r > 1 ? " " : "") v[r, name] / v[r, "plain"]
        }
        shown = vals; gsub(/ /, ", ", shown)
        printf "| %s | %s | %.4f | %.3f |\n", name, shown, median(vals), median(ratios)
      }
    }' "$OUT/$1.tsv"
}

echo "# $ROUNDS rounds, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
for t in $TABLES; do
  case "$t" in
    step)
      measure step "$STEP_ROWS"
      echo "## GPU step: $CONFIG (bench train-step --steps $STEPS, median step's process CPU-ms per image)"
      table step "CPU-ms per image" ;;
    loader)
      measure loader "$LOADER_ROWS"
      echo "## loader: $LOADER_CONFIG on $DATA (bench loader --workers 1 --images $IMAGES, CPU-ms per image)"
      table loader "CPU-ms per image" ;;
    *) echo "recipe_costs.sh: unknown table $t (step, loader)" >&2; exit 2 ;;
  esac
done
