#!/usr/bin/env bash
# vkvit on a GPU's own Vulkan driver vs PyTorch eager on the same GPU: the cases ViT-S/16 at
# batch 128 and ViT-B/16 at batch 64, each a training step in fp32 and in mixed precision, and the
# fp32 forward. PyTorch runs fp32 with explicit attention products (vkvit's GPU path) and with
# F.scaled_dot_product_attention (timm's default), and AMP with the latter; each ratio takes the
# faster PyTorch run of its precision. Then vkvit's per-op profile of the ViT-S fp32 step.
# Run it from a folder made by tests/bench/gpu_bundle.sh (or from a checkout with
# VKVIT=build/src/vkvit); outputs go to $LOG (default a temporary folder).
#
#   .gpu/tests/bench/gpu_compare.sh
#   CASES="vit_fmnist_tiny 64" TORCH_DEVICE=cpu tests/bench/gpu_compare.sh   (a smoke test on a CPU)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bundle=$(cd "$here/../.." && pwd)
vkvit=${VKVIT:-$bundle/vkvit-bench}
python=${PYTHON:-python3}
cases=${CASES:-"vit_small_patch16_224 128,vit_base_patch16_224 64"}
torch_device=${TORCH_DEVICE:-cuda}
steps=${STEPS:-10}
warmup=${WARMUP:-3}
log=${LOG:-$(mktemp -d /tmp/vkvit-gpu.XXXXXX)}
mkdir -p "$log"
[ -d "$bundle/lib" ] && export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The NVIDIA driver's Vulkan ICD where containers usually mount it, unless the caller chose one.
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
           /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$f" ]; then export VK_DRIVER_FILES=$f; break; fi
  done
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

field() { grep '^RESULT ' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
best() { awk 'BEGIN { m = 0 } { if ($1 > m) m = $1 } END { print m }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }

"$vkvit" devices >"$log/devices.txt"
echo "# $(grep -m1 -i -E 'name|device 0' "$log/devices.txt" || head -1 "$log/devices.txt")"
rows=("case vkvit_img/s torch_img/s vkvit/torch")
IFS=, read -r -a case_list <<<"$cases"
for c in "${case_list[@]}"; do
  read -r preset batch <<<"$c"
  common=(--preset "$preset" -b "$batch" --steps "$steps" --warmup "$warmup")
  for mode in train-step infer; do
    precisions="fp32"
    [ "$mode" = train-step ] && precisions="fp32 amp"
    for prec in $precisions; do
      tag="$preset-b$batch-$mode-$prec"
      amp_flag=()
      [ "$prec" = amp ] && amp_flag=(--amp)
      "$vkvit" bench "$mode" "${common[@]}" "${amp_flag[@]}" >"$log/vkvit-$tag.txt" 2>&1 || echo "vkvit failed: $log/vkvit-$tag.txt"
      torch_runs=()
      if [ "$torch_device" = cuda ]; then
        if [ "$prec" = amp ]; then torch_runs=("--amp --attention sdpa"); else torch_runs=("--attention explicit" "--attention sdpa"); fi
      elif [ "$prec" = fp32 ]; then
        torch_runs=("--attention explicit")
      fi
      torch_ips=()
      for run in "${torch_runs[@]}"; do
        name="torch-$tag-$(echo "$run" | tr -d ' -')"
        # shellcheck disable=SC2086
        "$python" "$here/pytorch_bench.py" --mode "$mode" "${common[@]}" --device "$torch_device" $run >"$log/$name.txt" 2>&1 ||
          echo "pytorch failed: $log/$name.txt"
        torch_ips+=("$(field "$log/$name.txt" img_per_s)")
      done
      v=$(field "$log/vkvit-$tag.txt" img_per_s)
      t=$(printf '%s\n' "${torch_ips[@]:-0}" | best)
      rows+=("$tag ${v:--} $t $(ratio "${v:-0}" "$t")")
    done
  done
done
first=$(echo "${case_list[0]}" | awk '{ print $1 }') first_b=$(echo "${case_list[0]}" | awk '{ print $2 }')
"$vkvit" --profile bench train-step --preset "$first" -b "$first_b" --steps 3 --warmup 2 >"$log/vkvit-profile.txt" 2>&1 || true
printf '%s\n' "${rows[@]}" | if command -v column >/dev/null; then column -t; else cat; fi
grep -h '^# device' "$log"/torch-*.txt 2>/dev/null | sort -u || true
echo "# per-op profile ($first, batch $first_b, fp32): $log/vkvit-profile.txt"
sed -n '/per-op/,/^total/p' "$log/vkvit-profile.txt" | head -25
echo "# full outputs: $log"
