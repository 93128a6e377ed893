#!/usr/bin/python3
"""Build the transfer-learning experiment's two ImageFolder trees from the Fashion-MNIST tree that
datasets/prepare_fashion_mnist.sh builds (datasets/fashion-mnist/{train,val}/<k>_<name>/):

    <out>/pretrain/train/<k>_<name>/   classes 0-4, all their training images   (30000)
    <out>/pretrain/val/<k>_<name>/     classes 0-4, all their test images       (5000)
    <out>/finetune/train/<k>_<name>/   classes 5-9, 50 training images each    (250)
    <out>/finetune/val/<k>_<name>/     classes 5-9, all their test images       (5000)

The 50 images of a fine-tuning class are random.Random(seed).sample() of its sorted file names,
seed 0 unless --seed says otherwise, taken class by class in folder order, so a rerun picks the
same files. Files are relative symlinks into the source tree (--link hard for hard links): nothing
is copied. As the Fashion-MNIST script does, the tree is built beside <out> and renamed into place,
and a marker records the options, so a rerun with the same options does nothing.
Pretrain on <out>/pretrain, then fine-tune on <out>/finetune: README, "Fine-tuning on your own
folder".
"""
import argparse
import json
import os
import random
import shutil
import sys

MARKER = ".complete.json"
VERSION = 1
PRETRAIN_CLASSES = range(0, 5)
FINETUNE_CLASSES = range(5, 10)


def fail(message):
    print("make_transfer_folders: " + message, file=sys.stderr)
    sys.exit(1)


def class_folders(split_dir):
    """The source split's ten class folders, in label order (<k>_<name>, sorted)."""
    if not os.path.isdir(split_dir):
        fail(f"{split_dir} is missing; build the Fashion-MNIST tree first (datasets/prepare_fashion_mnist.sh)")
    names = sorted(n for n in os.listdir(split_dir) if not n.startswith("."))
    if len(names) != 10 or [n.split("_", 1)[0] for n in names] != [str(k) for k in range(10)]:
        fail(f"{split_dir} should hold the ten class folders 0_... to 9_..., found {names}")
    return names


def images(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".png"))


def link(src, dst, mode):
    if mode == "hard":
        os.link(src, dst)
    else:
        os.symlink(os.path.relpath(src, os.path.dirname(dst)), dst)


def add_class(src_dir, dst_dir, files, mode):
    os.makedirs(dst_dir)
    for name in files:
        link(os.path.join(src_dir, name), os.path.join(dst_dir, name), mode)
    return len(files)


def build(source, tmp, per_class, seed, mode):
    counts = {}
    rng = random.Random(seed)
    for split in ("train", "val"):
        names = class_folders(os.path.join(source, split))
        for k in list(PRETRAIN_CLASSES) + list(FINETUNE_CLASSES):
            src_dir = os.path.join(source, split, names[k])
            files = images(src_dir)
            tree = "pretrain" if k in PRETRAIN_CLASSES else "finetune"
            if tree == "finetune" and split == "train":
                if len(files) < per_class:
                    fail(f"{src_dir} has {len(files)} images, fewer than --per-class {per_class}")
                files = sorted(rng.sample(files, per_class))
            n = add_class(src_dir, os.path.join(tmp, tree, split, names[k]), files, mode)
            counts[f"{tree}/{split}"] = counts.get(f"{tree}/{split}", 0) + n
    return counts


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=os.path.join(here, "fashion-mnist"), help="the Fashion-MNIST ImageFolder tree")
    p.add_argument("--out", default=os.path.join(here, "fmnist-transfer"), help="output folder")
    p.add_argument("--per-class", type=int, default=50, help="fine-tuning training images per class")
    p.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning images' choice")
    p.add_argument("--link", choices=("symlink", "hard"), default="symlink", help="how files are linked")
    args = p.parse_args()
    if args.per_class < 1:
        fail("--per-class must be at least 1")
    source, out = os.path.abspath(args.source), os.path.abspath(args.out)
    wanted = {"version": VERSION, "source": source, "per_class": args.per_class, "seed": args.seed, "link": args.link}
    try:
        with open(os.path.join(out, MARKER)) as f:
            if json.load(f) == wanted:
                print(f"make_transfer_folders: {out} is already complete")
                return
    except (OSError, ValueError):
        pass
    tmp = f"{out}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    counts = build(source, tmp, args.per_class, args.seed, args.link)
    with open(os.path.join(tmp, MARKER), "w") as f:
        json.dump(wanted, f)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)
    print("make_transfer_folders: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" images in {out}")


if __name__ == "__main__":
    main()
