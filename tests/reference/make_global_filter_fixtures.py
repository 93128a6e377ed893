#!/usr/bin/python3
"""Generates the global-filter fixtures under tests/fixtures/global_filter/ (see README.md here).

GFNet's GlobalFilter layer (Rao et al. 2021) written out with torch.fft, in float64 on float32
inputs, its gradients by autograd:

    X = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")      # x: (B, h, w, D)
    y = torch.fft.irfft2(X * torch.view_as_complex(weight), s=(h, w), dim=(1, 2), norm="ortho")

weight is GFNet's complex_weight, (h, w // 2 + 1, D, 2) real. One file per grid, holding x, weight,
dy (the upstream gradient: loss = sum(y * dy)) and the expected y, dx, dweight, all F32.
Deterministic: rerunning rewrites the same files.

    /usr/bin/python3 tests/reference/make_global_filter_fixtures.py      # from the repository root
"""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import write_safetensors  # noqa: E402

torch.set_num_threads(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "global_filter")

# (name, batch, h, w, channels): odd square, odd non-square, even non-square, even square.
CASES = [("grid7x7", 2, 7, 7, 5), ("grid5x9", 2, 5, 9, 3), ("grid4x6", 2, 4, 6, 4), ("grid4x4", 1, 4, 4, 8)]


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, b, h, w, d) in enumerate(CASES):
        g = torch.Generator().manual_seed(1000 + i)
        # Float32 values, computed on in float64.
        x = torch.randn(b, h, w, d, generator=g).float().double().requires_grad_(True)
        weight = torch.randn(h, w // 2 + 1, d, 2, generator=g).float().double().requires_grad_(True)
        dy = torch.randn(b, h, w, d, generator=g).float().double()
        spectrum = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        y = torch.fft.irfft2(spectrum * torch.view_as_complex(weight), s=(h, w), dim=(1, 2), norm="ortho")
        (y * dy).sum().backward()
        path = os.path.join(OUT, name + ".safetensors")
        write_safetensors(path, [
            ("x", x.detach().reshape(b, h * w, d), "F32"),
            ("weight", weight.detach(), "F32"),
            ("dy", dy.reshape(b, h * w, d), "F32"),
            ("y", y.detach().reshape(b, h * w, d), "F32"),
            ("dx", x.grad.reshape(b, h * w, d), "F32"),
            ("dweight", weight.grad, "F32"),
        ], metadata={"batch": str(b), "h": str(h), "w": str(w), "channels": str(d),
                     "generator": "tests/reference/make_global_filter_fixtures.py, torch " + torch.__version__})
        print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
