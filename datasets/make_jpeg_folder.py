#!/usr/bin/python3
"""Builds an ImageNet-like JPEG folder from the real photographs that Debian's python3-skimage
ships, so that `vkvit bench loader` and tests/bench/loader_compare.sh can run without ImageNet:

    /usr/bin/python3 datasets/make_jpeg_folder.py --out /tmp/jpegs [--train 2000 --val 500] [--large]

Writes OUT/train/<class>/*.jpg and OUT/val/<class>/*.jpg; a class is one source photograph. Each
image is a random crop (a third to all of the photograph's area) of one photograph, resized to a
size drawn from ImageNet's common ones (500x375, 375x500, 500x333, 500x500, 640x480, ...; about
500x430 on average), mirrored half the time, saved at quality 90 with Pillow's default 4:2:0
chroma subsampling; one in 30 is greyscale, as a few ImageNet images are. Fixed seed: reruns
write the same files.

--large writes camera-sized images instead (2048x1536 to 4032x3024, portrait or landscape), for
the decoder's DCT scaling (data.jpeg_dct_scaling): the photographs are only about 500 px, so each
image is a mosaic of crops at about their own resolution (tiles of 160 to 480 px, enlarged only
where a photograph is smaller than its tile), not one upscaled photograph, whose smoothness would
make it decode and shrink unrealistically well.
"""
import argparse
import os
import random

from PIL import Image
from skimage import data as skdata

PHOTO_DIR = os.path.dirname(skdata.__file__)
# The colour photographs among scikit-image's samples (no drawings, textures or microscopy).
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
          "rocket.jpg", "retina.jpg", "hubble_deep_field.jpg"]
GREY = "camera.png"
# (width, height, weight): the usual ImageNet sizes, landscape first.
SIZES = [(500, 375, 40), (375, 500, 15), (500, 333, 15), (500, 500, 10), (640, 480, 10), (333, 500, 5),
         (800, 600, 5)]


def random_view(photo, width, height, rng):
    """A crop of `photo` with the aspect of width x height and 1/3 to all of the largest such area."""
    pw, ph = photo.size
    aspect = width / height
    full_w, full_h = (pw, pw / aspect) if pw / ph < aspect else (ph * aspect, ph)
    s = rng.uniform(0.58, 1.0)  # side fraction: area from a third to all
    w, h = max(1, int(full_w * s)), max(1, int(full_h * s))
    x, y = rng.randint(0, pw - w), rng.randint(0, ph - h)
    img = photo.crop((x, y, x + w, y + h)).resize((width, height), Image.LANCZOS)
    return img.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else img


LARGE_SIZES = [(2048, 1536, 3), (1536, 2048, 1), (3024, 2268, 2), (2268, 3024, 1), (4032, 3024, 2), (3024, 4032, 1)]


def mosaic(photos, width, height, rng):
    """A width x height canvas tiled with random crops of the photographs at their own resolution."""
    canvas = Image.new("RGB", (width, height))
    y = 0
    while y < height:
        th = rng.randint(160, 480)
        x = 0
        while x < width:
            tw = rng.randint(160, 480)
            photo = rng.choice(photos)[1]
            pw, ph = photo.size
            w, h = min(tw, pw), min(th, ph)
            px, py = rng.randint(0, pw - w), rng.randint(0, ph - h)
            canvas.paste(photo.crop((px, py, px + w, py + h)).resize((tw, th), Image.LANCZOS), (x, y))
            x += tw
        y += th
    return canvas


def write_split(out, split, count, photos, grey, rng, large):
    sizes = [s[:2] for s in (LARGE_SIZES if large else SIZES) for _ in range(s[2])]
    total = 0
    for i in range(count):
        cls = rng.randrange(len(photos))
        width, height = rng.choice(sizes)
        if large:
            img = mosaic(photos, width, height, rng)
        elif rng.randrange(30) == 0:
            img = random_view(grey, width, height, rng).convert("L")
        else:
            img = random_view(photos[cls][1], width, height, rng)
        folder = os.path.join(out, split, photos[cls][0])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "%s_%06d.jpg" % (split, i))
        img.save(path, quality=90)
        total += os.path.getsize(path)
    print("%s: %d images, %.1f KB on average" % (os.path.join(out, split), count, total / max(count, 1) / 1024))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder to write (train/ and val/ inside)")
    ap.add_argument("--train", type=int, default=2000, help="training images")
    ap.add_argument("--val", type=int, default=500, help="validation images")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--large", action="store_true", help="camera-sized mosaics (2048x1536 to 4032x3024)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    photos = [(os.path.splitext(p)[0], Image.open(os.path.join(PHOTO_DIR, p)).convert("RGB")) for p in PHOTOS]
    grey = Image.open(os.path.join(PHOTO_DIR, GREY)).convert("RGB")
    write_split(args.out, "train", args.train, photos, grey, rng, args.large)
    write_split(args.out, "val", args.val, photos, grey, rng, args.large)


if __name__ == "__main__":
    main()
