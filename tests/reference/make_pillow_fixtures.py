#!/usr/bin/python3
"""Writes the Pillow / torchvision reference images that tests/test_transform_pillow.cpp compares
vkvit's resampling and transforms against, into tests/fixtures/pillow/:

    /usr/bin/python3 tests/reference/make_pillow_fixtures.py    # from the repository root, ~1 s

Needs Pillow (Debian's python3-pil, 9.4), torchvision (python3-torchvision, 0.14) and the sample
photographs of scikit-image (python3-skimage, 0.19). Three JPEGs (quality 90, Pillow's default
4:2:0 subsampling) are cut from real photographs at odd sizes: chelsea (RGB), coffee (RGB) and
camera (greyscale). For each, Pillow's own decode is kept as a PNG (<name>.decoded.png), so that
the resampler can be compared exactly, apart from the JPEG decoder, and the cases go through
torchvision's PIL path as timm calls it:
  train: F.resized_crop(img, top, left, height, width, size, filter), boxes from
         RandomResizedCrop.get_params under a fixed torch seed (shrinking and enlarging crops);
  eval:  Resize(floor(size / crop_pct), filter) then CenterCrop(size).
cases.txt lists one case a line: output input kind x y width height size crop_pct filter
(x y width height are the crop box for train, 0 for eval). Rerunning rewrites identical files.

For tests/test_decode_region.cpp it also writes chelsea as 4:4:4 (chelsea_444.jpg), 4:2:2
(chelsea_422.jpg) and progressive 4:2:0 (chelsea_progressive.jpg), all quality 90.
"""
import math
import os

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from skimage import data as skdata

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "pillow")
FILTERS = {"nearest": T.InterpolationMode.NEAREST, "bilinear": T.InterpolationMode.BILINEAR,
           "bicubic": T.InterpolationMode.BICUBIC}

# name, source photograph, its box (left, top, right, bottom): odd sizes on purpose
SOURCES = [
    ("chelsea", skdata.chelsea, (97, 21, 348, 208)),    # 251 x 187 RGB
    ("coffee", skdata.coffee, (201, 57, 394, 314)),     # 193 x 257 RGB, portrait
    ("camera", skdata.camera, (151, 40, 308, 251)),     # 157 x 211 greyscale
]
# (size, filter, count): train boxes per input
TRAIN = [(64, "bicubic", 5), (64, "bilinear", 2), (64, "nearest", 1), (128, "bicubic", 2)]
# (size, crop_pct, filter): eval cases per input
EVAL = [(64, 0.875, "bicubic"), (160, 0.875, "bicubic"), (96, 0.9, "bilinear")]


def make_jpeg(name, photo, box):
    img = Image.fromarray(photo()).crop(box)
    path = os.path.join(OUT, name + ".jpg")
    img.save(path, quality=90)
    decoded = Image.open(path)
    decoded.load()
    decoded.save(os.path.join(OUT, name + ".decoded.png"), optimize=True)
    return decoded


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(22)
    lines = ["# output input kind x y width height size crop_pct filter (make_pillow_fixtures.py)"]
    for name, photo, box in SOURCES:
        img = make_jpeg(name, photo, box)
        n = 0
        for size, filt, count in TRAIN:
            for _ in range(count):
                top, left, h, w = T.RandomResizedCrop.get_params(img, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
                out = F.resized_crop(img, top, left, h, w, [size, size], FILTERS[filt])
                fname = "%s_train_%02d.png" % (name, n)
                out.save(os.path.join(OUT, fname), optimize=True)
                lines.append("%s %s.jpg train %d %d %d %d %d 0 %s" % (fname, name, left, top, w, h, size, filt))
                n += 1
        for size, crop_pct, filt in EVAL:
            tf = T.Compose([T.Resize(math.floor(size / crop_pct), FILTERS[filt]), T.CenterCrop(size)])
            out = tf(img)
            fname = "%s_eval_%02d.png" % (name, n)
            out.save(os.path.join(OUT, fname), optimize=True)
            lines.append("%s %s.jpg eval 0 0 0 0 %d %s %s" % (fname, name, size, repr(crop_pct), filt))
            n += 1
        assert np.asarray(img).ndim == (2 if name == "camera" else 3)
    chelsea = Image.open(os.path.join(OUT, "chelsea.decoded.png"))
    chelsea.save(os.path.join(OUT, "chelsea_444.jpg"), quality=90, subsampling=0)
    chelsea.save(os.path.join(OUT, "chelsea_422.jpg"), quality=90, subsampling=1)
    chelsea.save(os.path.join(OUT, "chelsea_progressive.jpg"), quality=90, progressive=True)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
