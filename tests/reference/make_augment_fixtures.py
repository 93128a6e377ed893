#!/usr/bin/python3
"""Writes the Pillow reference images that tests/test_rand_augment.cpp compares vkvit's RandAugment
ops against, into tests/fixtures/augment/:

    /usr/bin/python3 tests/reference/make_augment_fixtures.py    # from the repository root, < 1 s

Needs only Pillow (Debian's python3-pil, 9.4). Two small synthetic scenes (a sky gradient, a sun, a
hill with texture, a dark stripe, noise; values kept inside [40, 200] so that autocontrast and
equalize have work to do), one RGB of 37x29 and one greyscale of 31x23, go through each op the way
timm's auto_augment.py calls Pillow: ImageOps.autocontrast/equalize/invert/posterize/solarize, the
SolarizeAdd lookup table, ImageEnhance Color/Contrast/Brightness/Sharpness, Image.rotate and
Image.transform(AFFINE) for shear and translate, with nearest, bilinear and bicubic filters and the
ImageNet mean as fill. cases.txt lists one case a line: output input op argument filter.
Rerunning rewrites byte-identical files (fixed seed, PNG without timestamps).
"""
import os
import random

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "augment")
FILL_RGB = (124, 116, 104)  # min(255, round(255 * m)) of the ImageNet mean, as timm's img_mean
FILL_L = (124,)
FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def scene(mode, w, h, seed):
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            sky = (90 + 3 * y, 120 + 2 * y, 200 - y)
            px[x, y] = sky
    d = ImageDraw.Draw(img)
    d.ellipse((w * 0.6, h * 0.1, w * 0.9, h * 0.45), fill=(230, 200, 90))
    d.polygon([(0, h * 0.7), (w * 0.4, h * 0.45), (w, h * 0.8), (w, h), (0, h)], fill=(70, 120, 50))
    d.line([(w * 0.1, h * 0.2), (w * 0.5, h * 0.9)], fill=(30, 25, 20), width=3)
    img = img.filter(ImageFilter.SMOOTH)
    px = img.load()
    for y in range(h):
        for x in range(w):
            # noise, then squeezed into [40, 200]
            px[x, y] = tuple(40 + min(255, max(0, v + rng.randint(-12, 12))) * 160 // 255 for v in px[x, y])
    return img.convert(mode) if mode != "RGB" else img


def solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * len(img.getbands()))


def cases(img, fill):
    yield "auto_contrast", 0, "-", ImageOps.autocontrast(img)
    yield "equalize", 0, "-", ImageOps.equalize(img)
    yield "invert", 0, "-", ImageOps.invert(img)
    for bits in (0, 1, 4, 7):
        yield "posterize", bits, "-", ImageOps.posterize(img, bits)
    for t in (0, 77, 128, 256):
        yield "solarize", t, "-", ImageOps.solarize(img, t)
    for add in (0, 37, 110):
        yield "solarize_add", add, "-", solarize_add(img, add)
    for name, cls in (("color", ImageEnhance.Color), ("contrast", ImageEnhance.Contrast),
                      ("brightness", ImageEnhance.Brightness), ("sharpness", ImageEnhance.Sharpness)):
        for f in (0.1, 0.55, 1.0, 1.37, 1.9):
            yield name, f, "-", cls(img).enhance(f)
    w, h = img.size
    for fname, f in FILTERS.items():
        for deg in (13.7, -30.0, 90.0):
            yield "rotate", deg, fname, img.rotate(deg, resample=f, fillcolor=fill)
        for s in (0.3, -0.17):
            yield "shear_x", s, fname, img.transform(img.size, Image.AFFINE, (1, s, 0, 0, 1, 0), resample=f, fillcolor=fill)
            yield "shear_y", s, fname, img.transform(img.size, Image.AFFINE, (1, 0, 0, s, 1, 0), resample=f, fillcolor=fill)
        for pct in (0.45, -0.2):
            yield "translate_x", pct, fname, img.transform(img.size, Image.AFFINE, (1, 0, pct * w, 0, 1, 0), resample=f, fillcolor=fill)
            yield "translate_y", pct, fname, img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, pct * h), resample=f, fillcolor=fill)


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    lines = []
    for tag, mode, size, seed, fill in (("rgb", "RGB", (37, 29), 1, FILL_RGB), ("grey", "L", (31, 23), 2, FILL_L)):
        src = scene(mode, size[0], size[1], seed)
        src_name = "input_%s.png" % tag
        src.save(os.path.join(OUT, src_name))
        for i, (op, arg, fname, out) in enumerate(cases(src, fill)):
            name = "%s_%02d_%s.png" % (tag, i, op)
            out.save(os.path.join(OUT, name))
            lines.append("%s %s %s %r %s" % (name, src_name, op, float(arg), fname))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# output input op argument filter (make_augment_fixtures.py; fill = %s / %s)\n" % (FILL_RGB, FILL_L))
        f.write("\n".join(lines) + "\n")
    print("%d cases in %s" % (len(lines), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
