#!/usr/bin/python3
"""Generates the attention-map fixture tests/fixtures/rollout/rollout.safetensors (see README.md here).

Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers") written out
in PyTorch as the published rollout code does it, with full matrix products in float64 on float32
probabilities:

    result = I
    for P in layers:                      # P: (H, N, N), forward order
        A = P.mean(0) + I                 # heads averaged, plus the residual connection
        A = A / A.sum(-1, keepdim=True)   # rows renormalised
        result = A @ result               # later layers on the left
    rollout = result[0, 1:]               # the cls token's row over the patch tokens

plus the two single-layer maps of `vkvit explain`: last_layer = P_last.mean(0)[0, 1:] and
head = P_layer[head][0, 1:]. The probabilities are softmaxes of random scores (so rows sum to 1 up to
float32 rounding), some sharp and some flat. Each case `<c>` holds `<c>.probs` (L, H, N, N) and the
expected `<c>.rollout`, `<c>.last_layer`, `<c>.head` (N - 1 each), all F32; the layer and head of
`<c>.head` and the patch grid are in `__metadata__`. Deterministic: rerunning rewrites the same file.

    /usr/bin/python3 tests/reference/make_rollout_fixtures.py      # from the repository root
"""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import write_safetensors  # noqa: E402

torch.set_num_threads(1)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "rollout")

# (name, layers, heads, grid_h, grid_w, head_layer, head): an odd square grid and a non-square one.
CASES = [("grid3x3", 3, 3, 3, 3, 1, 2), ("grid3x4", 2, 2, 3, 4, 0, 1)]


def rollout(probs):
    n = probs.shape[-1]
    eye = torch.eye(n, dtype=torch.float64)
    result = eye.clone()
    for p in probs.double():
        a = p.mean(dim=0) + eye
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result[0, 1:]


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors, meta = [], {"generator": "tests/reference/make_rollout_fixtures.py, torch " + torch.__version__}
    for i, (name, layers, heads, gh, gw, head_layer, head) in enumerate(CASES):
        g = torch.Generator().manual_seed(2000 + i)
        n = 1 + gh * gw
        # Per head a temperature between 0.3 and 3: sharp and flat rows side by side.
        temp = 0.3 + 2.7 * torch.rand(layers, heads, 1, 1, generator=g)
        scores = torch.randn(layers, heads, n, n, generator=g) / temp
        probs = torch.softmax(scores.float(), dim=-1)
        tensors += [
            (name + ".probs", probs, "F32"),
            (name + ".rollout", rollout(probs), "F32"),
            (name + ".last_layer", probs[-1].double().mean(dim=0)[0, 1:], "F32"),
            (name + ".head", probs[head_layer, head, 0, 1:], "F32"),
        ]
        meta.update({name + ".grid": "%d,%d" % (gh, gw), name + ".head_layer": str(head_layer),
                     name + ".head": str(head)})
    path = os.path.join(OUT, "rollout.safetensors")
    write_safetensors(path, tensors, metadata=meta)
    print("wrote", os.path.relpath(path, ROOT), os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
