#!/usr/bin/env bash
# vkvit vs PyTorch (CPU) on the same model, batch and step, run back to back so that both see the
# same machine load; prints one table row per mode. Builds nothing: give it a built vkvit.
#
#   tests/bench/compare.sh --config configs/fmnist_vit_tiny.yaml [-b 64] [--steps 20]
#   tests/bench/compare.sh --preset vit_tiny_patch16_224 -b 8 --steps 3 --warmup 1 [--vkvit PATH]
#
# PyTorch runs twice per mode: on 1 thread (torch and OpenBLAS both) and on one per CPU, as
# lavapipe uses (--threads "1 2" to choose). Both are shown: the 1-thread run is the per-core
# figure, and on a small model or a busy machine it is also the faster one. The ratio column
# takes the faster PyTorch run. --rounds N repeats the whole alternation N times, one row per
# round, then the median ratios per mode: on a shared machine one round's ratio can be off by half.
# Full outputs go to --log DIR (default: a temporary folder).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vkvit="$root/build/src/vkvit"
python=/usr/bin/python3
model_args=() batch_args=() steps=10 warmup=2 modes="train-step infer" log="" rounds=1
threads="1 $(nproc)"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --config|--preset) model_args=("$1" "$2"); shift 2 ;;
    -b|--batch) batch_args=(-b "$2"); shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --vkvit) vkvit=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
[ ${#model_args[@]} -eq 2 ] || { echo "compare.sh: give --config FILE or --preset NAME" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds takes a positive count, not '$rounds'" >&2; exit 2; }
[ -x "$vkvit" ] || { echo "compare.sh: no vkvit binary at $vkvit: build it first or pass --vkvit PATH" >&2; exit 2; }
[ -x "$python" ] || { echo "compare.sh: $python not found (apt-get install -y python3-torch python3-yaml)" >&2; exit 2; }
[ -n "$log" ] || log=$(mktemp -d /tmp/vkvit-compare.XXXXXX)
mkdir -p "$log"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}  # lavapipe warns without it

# The RESULT line's value for key $2 in file $1.
field() { grep '^RESULT ' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "# ${model_args[*]} ${batch_args[*]} steps $steps warm-up $warmup; $(uptime | sed 's/.*load/load/')"
for r in $(seq "$rounds"); do
  for mode in $modes; do
    "$vkvit" bench "$mode" "${model_args[@]}" "${batch_args[@]}" --steps "$steps" --warmup "$warmup" \
      >"$log/vkvit-$mode-r$r.txt"
    for t in $threads; do
      "$python" "$here/pytorch_bench.py" --mode "$mode" "${model_args[@]}" "${batch_args[@]}" --steps "$steps" \
        --warmup "$warmup" --threads "$t" >"$log/pytorch-$mode-t$t-r$r.txt"
    done
  done
done
echo "# after: $(uptime | sed 's/.*load/load/')"
grep -h '^# device' "$log"/vkvit-*.txt | head -1
grep -h -e '^# torch' -e '^# BLAS' "$log"/pytorch-*.txt | sort -u

# The median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One table row for mode $1, round $2; also appends the round's two ratios to ratios-$1.txt.
# img/s from the wall clock (median step); the "per CPU-s" ratio uses process CPU time instead,
# which moves less with other load on a CPU driver (it counts work, not waiting for a core).
row() {
  local mode=$1 r=$2 v="$log/vkvit-$1-r$2.txt" best=0 best_cpu=0 line p ratio ratio_cpu
  line="$mode $r $(field "$v" batch) $(field "$v" img_per_s)"
  for t in $threads; do
    p="$log/pytorch-$mode-t$t-r$r.txt"
    line="$line $(field "$p" img_per_s)"
    best=$(awk -v a="$best" -v b="$(field "$p" img_per_s)" 'BEGIN { print (b > a) ? b : a }')
    best_cpu=$(awk -v a="$best_cpu" -v b="$(field "$p" cpu_ms)" -v n="$(field "$p" batch)" \
      'BEGIN { r = n / b * 1000; print (r > a) ? r : a }')
  done
  ratio=$(awk -v a="$(field "$v" img_per_s)" -v b="$best" 'BEGIN { printf "%.3f", a / b }')
  ratio_cpu=$(awk -v c="$(field "$v" cpu_ms)" -v n="$(field "$v" batch)" -v b="$best_cpu" \
    'BEGIN { printf "%.3f", (n / c * 1000) / b }')
  echo "$line $ratio $ratio_cpu"
  echo "$ratio $ratio_cpu" >>"$log/ratios-$mode.txt"
}

header="mode round batch vkvit_img/s"
for t in $threads; do header="$header torch_${t}thr_img/s"; done
header="$header vkvit/torch vkvit/torch_per_CPU-s"
{
  echo "$header"
  for mode in $modes; do
    rm -f "$log/ratios-$mode.txt"
    for r in $(seq "$rounds"); do row "$mode" "$r"; done
    if [ "$rounds" -gt 1 ]; then  # the median ratios under the ratio columns, dashes elsewhere
      dashes="- -"
      for t in $threads; do dashes="$dashes -"; done
      echo "$mode median $dashes $(cut -d' ' -f1 "$log/ratios-$mode.txt" | median)" \
        "$(cut -d' ' -f2 "$log/ratios-$mode.txt" | median)"
    fi
  done
} | if command -v column >/dev/null; then column -t; else cat; fi
echo "# full outputs: $log"
