#!/usr/bin/python3
"""Writes the reference that tests/test_mixup.cpp compares vkvit's Mixup/CutMix against,
into tests/fixtures/mixup/:

    /usr/bin/python3 tests/reference/make_mixup_fixtures.py    # from the repository root, < 2 s

Needs PyTorch (Debian's python3-torch, 1.13). The semantics are those of timm's Mixup class
(huggingface/pytorch-image-models, timm/data/mixup.py), written here from its description with the
random draws taken as inputs instead of drawn, so that vkvit can be given the same ones:
  - image i mixes with image B-1-i of the unmixed batch;
  - mixup: x_i = lam x_i + (1 - lam) x_{B-1-i} in float32;
  - CutMix: rows [yl, yh) and columns [xl, xh) of x_i come from x_{B-1-i}; lam = 1 - box / image;
  - mode batch: one draw for all; pair: draw k for images k and B-1-k (same box); elem: one each;
  - targets: lam_i smooth(y_i) + (1 - lam_i) smooth(y_{B-1-i}), smooth = one-hot with
    on = 1 - eps + eps/K, off = eps/K;
  - loss: timm's SoftTargetCrossEntropy, mean_i sum_k -target_ik log_softmax(logits_i)_k, and its
    gradient with respect to the logits by autograd.
cases.json lists each case's draws; mixup.safetensors holds the images, the mixed images, the
targets, the logits, the loss and the gradient, all float32. Rerunning rewrites identical files.
"""
import json
import os

import torch

from st_io import write_safetensors

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "mixup")
B, C, H, W, K, EPS = 6, 2, 12, 12, 5, 0.1

# Each draw: kind none | mixup | cutmix, lam (mixup: the drawn one; cutmix: the box decides), box
# [yl, yh, xl, xh] for cutmix (what timm's rand_bbox gives after clipping).
CASES = [
    {"name": "batch_mixup", "mode": "batch", "draws": [{"kind": "mixup", "lam": 0.7}]},
    {"name": "batch_cutmix", "mode": "batch", "draws": [{"kind": "cutmix", "box": [2, 9, 0, 5]}]},
    {"name": "pair", "mode": "pair", "draws": [
        {"kind": "mixup", "lam": 0.35}, {"kind": "none"}, {"kind": "cutmix", "box": [7, 12, 3, 11]}]},
    {"name": "elem", "mode": "elem", "draws": [
        {"kind": "cutmix", "box": [0, 4, 8, 12]}, {"kind": "mixup", "lam": 0.9}, {"kind": "none"},
        {"kind": "mixup", "lam": 0.05}, {"kind": "cutmix", "box": [3, 3, 1, 6]}, {"kind": "cutmix", "box": [1, 11, 2, 10]}]},
]


def box_lam(box):
    yl, yh, xl, xh = box
    return 1.0 - (yh - yl) * (xh - xl) / float(H * W)


def mix_one(dst, src, draw):
    """dst and src: (C, H, W); returns (mixed, lam)."""
    if draw["kind"] == "none":
        return dst.clone(), 1.0
    if draw["kind"] == "mixup":
        lam = draw["lam"]
        return dst * lam + src * (1.0 - lam), lam
    yl, yh, xl, xh = draw["box"]
    out = dst.clone()
    out[:, yl:yh, xl:xh] = src[:, yl:yh, xl:xh]
    return out, box_lam(draw["box"])


def per_image_draws(case):
    mode, draws = case["mode"], case["draws"]
    if mode == "batch":
        return [draws[0]] * B
    if mode == "elem":
        return draws
    return draws + draws[::-1]  # pair: image B-1-k shares draw k


def smooth(labels):
    off = EPS / K
    t = torch.full((len(labels), K), off, dtype=torch.float32)
    t[torch.arange(len(labels)), labels] = 1.0 - EPS + off
    return t


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)
    images = torch.rand((B, C, H, W), generator=gen, dtype=torch.float32) * 2 - 1
    labels = torch.tensor([0, 3, 1, 4, 3, 2])
    logits = torch.randn((B, K), generator=gen, dtype=torch.float32)
    tensors = [("images", images, "F32"), ("labels", labels.to(torch.float32), "F32"), ("logits", logits, "F32")]
    for case in CASES:
        draws = per_image_draws(case)
        mixed, lams = [], []
        for i in range(B):
            m, lam = mix_one(images[i], images[B - 1 - i], draws[i])
            mixed.append(m)
            lams.append(lam)
        lam_t = torch.tensor(lams, dtype=torch.float32).unsqueeze(1)
        target = smooth(labels) * lam_t + smooth(labels.flip(0)) * (1.0 - lam_t)
        x = logits.clone().requires_grad_(True)
        loss = torch.sum(-target * torch.log_softmax(x, dim=-1), dim=-1).mean()
        loss.backward()
        n = case["name"]
        tensors += [(n + ".mixed", torch.stack(mixed), "F32"), (n + ".target", target, "F32"),
                    (n + ".lam", lam_t.squeeze(1), "F32"), (n + ".loss", loss.detach().reshape(1), "F32"),
                    (n + ".dlogits", x.grad, "F32")]
    write_safetensors(os.path.join(OUT, "mixup.safetensors"), tensors)
    meta = {"B": B, "C": C, "H": H, "W": W, "K": K, "label_smoothing": EPS, "cases": CASES}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
