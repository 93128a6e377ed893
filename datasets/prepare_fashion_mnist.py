#!/usr/bin/python3
"""Convert Debian's Fashion-MNIST IDX files into an ImageFolder tree of 8-bit grayscale PNGs.

    <out>/train/<k>_<name>/<index>.png   (60000 images)
    <out>/val/<k>_<name>/<index>.png     (10000 images, the t10k test split)

Class folders are the dataset's documented names in label order, made folder-safe and prefixed
with the label digit so that sorted folder order (what ImageFolder uses) equals label order.
<index> is the image's position in its IDX file, zero-padded so byte order is file order.

Only the standard library: gzip + struct read IDX, zlib + a hand-written chunk writer make PNGs.
The tree is built in a sibling temp folder and renamed into place, and a marker records the
options it was built with, so a rerun with the same options does nothing and an interrupted run
leaves no half tree behind.
"""
import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import struct
import sys
import time
import zlib

CLASSES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]
SPLITS = {"train": "train", "val": "t10k"}
MARKER = ".complete.json"
VERSION = 1


def fail(message):
    print("prepare_fashion_mnist: " + message, file=sys.stderr)
    sys.exit(1)


def read_idx(path, magic):
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        fail(f"cannot read {path} ({e}); install Debian's dataset-fashion-mnist package "
             "(apt-get install dataset-fashion-mnist) or pass --source DIR")
    if len(data) < 8 or struct.unpack(">I", data[:4])[0] != magic:
        fail(f"{path} is not an IDX file with magic {magic}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    size = 1
    for d in dims:
        size *= d
    if len(body) != size:
        fail(f"{path}: {len(body)} bytes of data, header says {size}")
    return dims, body


def png_gray8(width, height, pixels):
    """A grayscale 8-bit PNG: IHDR, one IDAT (each row with filter byte 0), IEND."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload +
                struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def pick(labels, limit):
    """Indices to write: all, or a class-balanced subset (IDX order within each class)."""
    if limit is None or limit >= len(labels):
        return list(range(len(labels)))
    quota = [limit // 10 + (1 if k < limit % 10 else 0) for k in range(10)]
    chosen = []
    for i, label in enumerate(labels):
        if quota[label] > 0:
            quota[label] -= 1
            chosen.append(i)
    return chosen


# Split name -> (folder, rows, cols, images, labels); filled before the pool forks, so workers
# inherit the decompressed arrays instead of receiving a pickled copy with every job.
DATA = {}


def write_range(job):
    split, indices = job
    folder, rows, cols, images, labels = DATA[split]
    size = rows * cols
    for i in indices:
        name = os.path.join(folder, f"{labels[i]}_{CLASSES[labels[i]]}", f"{i:05d}.png")
        with open(name, "wb") as f:
            f.write(png_gray8(cols, rows, images[i * size:(i + 1) * size]))
    return len(indices)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="folder with the *-ubyte.gz files")
    p.add_argument("--out", default=os.path.join(here, "fashion-mnist"), help="output folder")
    p.add_argument("--limit-train", type=int, default=None, help="class-balanced subset of N training images")
    p.add_argument("--limit-val", type=int, default=None, help="class-balanced subset of N validation images")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = p.parse_args()
    for name in ("limit_train", "limit_val"):
        v = getattr(args, name)
        if v is not None and v < 10:
            fail(f"--{name.replace('_', '-')} must be at least 10 (one image per class)")

    out = os.path.abspath(args.out)
    sources = {}
    for split, stem in SPLITS.items():
        for kind in ("images-idx3", "labels-idx1"):
            path = os.path.join(args.source, f"{stem}-{kind}-ubyte.gz")
            st = os.stat(path) if os.path.exists(path) else None
            sources[path] = [st.st_size, int(st.st_mtime)] if st else None
    wanted = {"version": VERSION, "limit_train": args.limit_train, "limit_val": args.limit_val, "sources": sources}
    try:
        with open(os.path.join(out, MARKER)) as f:
            if json.load(f) == wanted:
                print(f"prepare_fashion_mnist: {out} is already complete")
                return
    except (OSError, ValueError):
        pass

    t0 = time.time()
    tmp = f"{out}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    jobs = []
    counts = {}
    for split, stem in SPLITS.items():
        (n, rows, cols), images = read_idx(os.path.join(args.source, f"{stem}-images-idx3-ubyte.gz"), 0x803)
        (nl,), labels = read_idx(os.path.join(args.source, f"{stem}-labels-idx1-ubyte.gz"), 0x801)
        if n != nl or max(labels) > 9:
            fail(f"{stem}: {n} images but {nl} labels (or a label above 9)")
        folder = os.path.join(tmp, split)
        for k, name in enumerate(CLASSES):
            os.makedirs(os.path.join(folder, f"{k}_{name}"))
        indices = pick(labels, args.limit_train if split == "train" else args.limit_val)
        counts[split] = len(indices)
        step = max(1, len(indices) // (4 * max(1, args.jobs)))
        for s in range(0, len(indices), step):
            jobs.append((split, indices[s:s + step]))
        DATA[split] = (folder, rows, cols, images, labels)
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            written = sum(pool.imap_unordered(write_range, jobs))
    else:
        written = sum(map(write_range, jobs))
    with open(os.path.join(tmp, MARKER), "w") as f:
        json.dump(wanted, f)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)
    print(f"prepare_fashion_mnist: wrote {written} PNGs ({counts['train']} train, {counts['val']} val) "
          f"to {out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
