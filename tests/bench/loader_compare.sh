#!/usr/bin/env bash
# vkvit's loader vs torchvision's ImageFolder + DataLoader (PIL) on the same JPEG folder, the same
# images and the same transforms, run alternately so that both see the same machine load. Builds
# nothing: give it a built vkvit and a folder from datasets/make_jpeg_folder.py.
#
#   tests/bench/loader_compare.sh --data-dir /tmp/jpegs [--split "train val"] [--workers 1]
#                                 [--images 1000] [--rounds 3] [--vkvit PATH] [--log DIR]
#                                 [--jpeg-dct-scaling G]
#
# Transforms: timm's ImageNet defaults, 224 px, bicubic. train: RandomResizedCrop + flip +
# ToTensor + Normalize (vkvit adds patchify); val: Resize(256) + CenterCrop(224) + ToTensor +
# Normalize. torch runs with one intra-op thread and num_workers = --workers (0: in the main
# process). The ratio columns are vkvit over torchvision: images per second (wall) and images per
# CPU-second (all threads and worker processes; the figure that says how many cores a GPU needs).
# One warm-up run of each reads the files into the page cache first. With --workers 0 the torch
# side also prints its stages (open + decode, transform, collate) in its full output.
# --jpeg-dct-scaling G runs vkvit with data.jpeg_dct_scaling G (reduced JPEG decoding; torchvision
# decodes at full size, as timm does), for folders of large photographs (make_jpeg_folder.py --large).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vkvit="$root/build/src/vkvit"
python=/usr/bin/python3
data="" splits="train val" workers=1 images=1000 rounds=3 log="" batch=64 dct=0

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data=$2; shift 2 ;;
    --split) splits=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -b|--batch-size) batch=$2; shift 2 ;;
    --vkvit) vkvit=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --jpeg-dct-scaling) dct=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "loader_compare.sh: unknown argument '$1'" >&2; usage 2 >&2 ;;
  esac
done
[ -n "$data" ] || { echo "loader_compare.sh: give --data-dir (datasets/make_jpeg_folder.py writes one)" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "loader_compare.sh: --rounds takes a positive count" >&2; exit 2; }
[ -x "$vkvit" ] || { echo "loader_compare.sh: no vkvit binary at $vkvit: build it first or pass --vkvit PATH" >&2; exit 2; }
"$python" -c "import torchvision" 2>/dev/null ||
  { echo "loader_compare.sh: $python has no torchvision (apt-get install -y python3-torchvision)" >&2; exit 2; }
[ -n "$log" ] || log=$(mktemp -d /tmp/vkvit-loader-compare.XXXXXX)
mkdir -p "$log"

# torchvision's side: the same samples as `vkvit bench loader` picks (spread evenly over the sorted
# ImageFolder; whole batches for train), one pass, a RESULT line with the same keys.
cat >"$log/torchvision_loader.py" <<'PY'
import resource, sys, time
import torch, torchvision.transforms as T
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import default_loader

root, split, workers, images, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(1)
stage = {"decode": 0.0, "transform": 0.0}

def timed(key, fn):  # thread CPU time of fn, summed per stage (meaningful in-process: workers 0)
    def call(x):
        t = time.thread_time()
        y = fn(x)
        stage[key] += time.thread_time() - t
        return y
    return call

norm = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
bicubic = T.InterpolationMode.BICUBIC
if split == "train":
    tf = T.Compose([T.RandomResizedCrop(224, interpolation=bicubic), T.RandomHorizontalFlip(), T.ToTensor(), norm])
else:
    tf = T.Compose([T.Resize(256, interpolation=bicubic), T.CenterCrop(224), T.ToTensor(), norm])
ds = ImageFolder(root + "/" + split, transform=timed("transform", tf), loader=timed("decode", default_loader))
n = min(images, len(ds))
if split == "train":
    n = n // batch * batch
ds = Subset(ds, [i * len(ds) // n for i in range(n)])
dl = DataLoader(ds, batch_size=batch, shuffle=split == "train", num_workers=workers, drop_last=split == "train")
cpu0 = time.process_time()
wall0 = time.perf_counter()
count = 0
for x, y in dl:
    count += x.shape[0]
wall = time.perf_counter() - wall0
del dl
children = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time() - cpu0 + children.ru_utime + children.ru_stime
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss) / 1024
extra = ""
if workers == 0:
    d, t = stage["decode"] * 1e3 / count, stage["transform"] * 1e3 / count
    extra = " decode_ms=%.4f transform_ms=%.4f collate_ms=%.4f" % (d, t, cpu * 1e3 / count - d - t)
print("RESULT impl=torchvision mode=loader split=%s workers=%d images=%d img_per_s=%.2f img_per_cpu_s=%.2f "
      "cpu_ms_per_img=%.4f%s peak_rss_mib=%.1f" % (split, workers, count, count / wall, count / cpu,
                                                 cpu * 1e3 / count, extra, rss))
PY

field() { grep '^RESULT ' "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
run_vkvit() { "$vkvit" bench loader --data-dir "$data" --split "$1" --workers "$workers" --images "$images" -b "$batch" --jpeg-dct-scaling "$dct"; }
run_torch() { "$python" "$log/torchvision_loader.py" "$data" "$1" "$workers" "$images" "$batch"; }

echo "# $data, $images images, workers $workers, batch $batch, vkvit jpeg_dct_scaling $dct; $(nproc) CPUs; $(uptime | sed 's/.*load/load/')"
{
  echo "split round vkvit_img/s torch_img/s vkvit_img/CPU-s torch_img/CPU-s vkvit/torch vkvit/torch_per_CPU-s"
  for split in $splits; do
    run_vkvit "$split" >/dev/null
    run_torch "$split" >/dev/null
    rm -f "$log/ratios-$split.txt"
    for r in $(seq "$rounds"); do
      v="$log/vkvit-$split-r$r.txt" t="$log/torch-$split-r$r.txt"
      run_vkvit "$split" >"$v"
      run_torch "$split" >"$t"
      a=$(field "$v" img_per_s) b=$(field "$t" img_per_s) c=$(field "$v" img_per_cpu_s) d=$(field "$t" img_per_cpu_s)
      ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
      ratio_cpu=$(awk -v a="$c" -v b="$d" 'BEGIN { printf "%.3f", a / b }')
      echo "$split $r $a $b $c $d $ratio $ratio_cpu"
      echo "$ratio $ratio_cpu" >>"$log/ratios-$split.txt"
    done
    if [ "$rounds" -gt 1 ]; then
      echo "$split median - - - - $(cut -d' ' -f1 "$log/ratios-$split.txt" | median) $(cut -d' ' -f2 "$log/ratios-$split.txt" | median)"
    fi
  done
} | if command -v column >/dev/null; then column -t; else cat; fi
echo "# full outputs (stages per image in each RESULT line): $log"
