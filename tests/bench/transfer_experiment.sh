#!/bin/sh
# Transfer beats scratch on a small folder: the Fashion-MNIST experiment of README's "Fine-tuning
# on your own folder". Pretrains the demo model on classes 0-4, then trains on 50 images per class
# of classes 5-9 (datasets/make_transfer_folders.py) with the same epochs and batch: from scratch,
# fine-tuned from the pretrained weights (at the scratch run's lr, and at timm's fine-tuning
# settings for large pretrained ViTs: lr / 10 with layer decay 0.75), and a linear probe of them;
# prints each run's best val top-1 over all 5,000 test images of classes 5-9.
#
#   tests/bench/transfer_experiment.sh [--vkvit build/src/vkvit] [--out runs/transfer] [--epochs 20]
set -eu
VKVIT=build/src/vkvit
OUT=runs/transfer
EPOCHS=20
while [ $# -gt 0 ]; do
  case "$1" in
    --vkvit) VKVIT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    *) echo "transfer_experiment.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
DATA=datasets/fmnist-transfer
[ -d "$DATA/finetune/train" ] || /usr/bin/python3 datasets/make_transfer_folders.py
CONFIG=configs/fmnist_vit_tiny.yaml

[ -f "$OUT/pretrain/best.safetensors" ] ||
  "$VKVIT" train --config "$CONFIG" --data-dir "$DATA/pretrain" --num-classes 5 --output "$OUT/pretrain" -q
# The same schedule for all three: batch 32 (7 steps an epoch), one warmup epoch, cosine.
small="--data-dir $DATA/finetune --num-classes 5 -b 32 --epochs $EPOCHS --set train.warmup_epochs=1 -q"
W="$OUT/pretrain/best.safetensors"
"$VKVIT" train --config "$CONFIG" $small --lr 1e-3 --output "$OUT/scratch"
"$VKVIT" train --config "$CONFIG" $small --lr 1e-3 --pretrained "$W" --output "$OUT/finetune"
"$VKVIT" train --config "$CONFIG" $small --lr 1e-4 --layer-decay 0.75 --pretrained "$W" --output "$OUT/finetune-ld"
"$VKVIT" train --config "$CONFIG" $small --lr 1e-2 --linear-probe --pretrained "$W" --output "$OUT/probe"

best() {  # the best val top-1 in a run's summary.csv (column 4)
  awk -F, 'NR > 1 && $4 != "" && $4 > b { b = $4 } END { printf "%.2f", b }' "$1/summary.csv"
}
echo "pretraining (classes 0-4, 30000 images): best val top-1 $(best "$OUT/pretrain")%"
echo "classes 5-9 from 250 images, $EPOCHS epochs, best val top-1 over 5000 test images:"
echo "  from scratch (lr 1e-3):                    $(best "$OUT/scratch")%"
echo "  fine-tuned (lr 1e-3):                      $(best "$OUT/finetune")%"
echo "  fine-tuned (lr 1e-4, layer decay 0.75):    $(best "$OUT/finetune-ld")%"
echo "  linear probe (lr 1e-2, head only):         $(best "$OUT/probe")%"
echo "RESULT scratch=$(best "$OUT/scratch") finetune=$(best "$OUT/finetune") finetune_ld=$(best "$OUT/finetune-ld")" \
     "probe=$(best "$OUT/probe")"
