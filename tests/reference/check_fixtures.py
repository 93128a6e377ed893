#!/usr/bin/python3
"""Re-reads every file in tests/fixtures/parity/ with the strict hand-written reader (st_io.py) and
checks it against a fresh torchvision model loaded from the stored weights.

    /usr/bin/python3 tests/reference/check_fixtures.py      # from the repository root; exit 0 = OK
"""
import os
import sys

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixtures as gen  # noqa: E402
from st_io import DTYPE_SIZE, read_safetensors  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

failures = []


def check(cond, what):
    print(("  ok   " if cond else "  FAIL ") + what)
    if not cond:
        failures.append(what)


def load(path):
    entries, meta = read_safetensors(path)
    raw = sum(t.numel() * DTYPE_SIZE[dt] for _, dt, _, t in entries)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
    check(8 + n + raw == os.path.getsize(path), "%s: header %d + data %d bytes = file size, %d tensors" %
          (os.path.basename(path), n, raw, len(entries)))
    return {name: (dt, t) for name, dt, _, t in entries}, [e[0] for e in entries], meta


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def check_model(name, spec):
    arch, half = spec["arch"], spec["half"]
    wdt = "F16" if half else "F32"
    w, wnames, wmeta = load(os.path.join(gen.OUT, name + "_weights.safetensors"))
    e, enames, emeta = load(os.path.join(gen.OUT, name + "_expected.safetensors"))
    model = gen.make_model(arch)
    sd = model.state_dict()
    check(wnames == list(sd.keys()), "%s weights: names/order == torchvision state_dict (%d)" % (name, len(sd)))
    check(all(list(w[k][1].shape) == list(sd[k].shape) and w[k][0] == wdt for k in sd),
          "%s weights: shapes match, dtype %s" % (name, wdt))
    check(wmeta == {"format": "pt", "source": "torchvision", **{k: str(v) for k, v in arch.items()}},
          "%s weights: metadata %s" % (name, wmeta))
    expect = ["input"] + (["pixels"] if spec["pixels"] else []) + ["labels", "logits", "loss", "adamw_losses"] + \
             ["grad." + k for k in sd]
    check(enames == expect, "%s expected: %d tensors in the expected order" % (name, len(expect)))
    check(all(list(e["grad." + k][1].shape) == list(sd[k].shape) and e["grad." + k][0] == wdt for k in sd),
          "%s expected: grad shapes match, dtype %s" % (name, wdt))
    model.load_state_dict({k: w[k][1] for k in sd}, strict=True)
    model.eval()
    x = e["input"][1]
    labels = e["labels"][1].long()
    check(torch.equal(labels.float(), e["labels"][1]), "%s: labels are integers" % name)
    if spec["pixels"]:
        px = e["pixels"][1]
        check(torch.equal(px, px.round()) and px.min() >= 0 and px.max() <= 255, "%s: pixels are 0..255 ints" % name)
        mean = torch.tensor([float(v) for v in emeta["mean"].split(",")]).view(1, 1, 1, 3)
        std = torch.tensor([float(v) for v in emeta["std"].split(",")]).view(1, 1, 1, 3)
        x2 = ((px / 255.0 - mean) / std).permute(0, 3, 1, 2)
        check(torch.equal(x2, x), "%s: input == (pixels/255 - mean)/std exactly" % name)
        # what vkvit's transform.cpp computes: px * (1/(255 s)) + (-m/s), in fp32
        mul, add = 1.0 / (255.0 * std), -mean / std
        x3 = (px * mul + add).permute(0, 3, 1, 2)
        print("       note: px*(1/(255s)) + (-m/s) differs from input by max %.3g" % (x3 - x).abs().max().item())
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = gen.loss_fn(logits, labels)
    loss.backward()
    exact = torch.equal(logits, e["logits"][1])
    if half:
        r = rel_err(logits.detach(), e["logits"][1])
        check(r <= 1e-6, "%s: logits reproduced (rel err %.3g, bit-exact: %s)" % (name, r, exact))
    else:
        check(exact, "%s: logits reproduced bit for bit" % name)
    check(torch.equal(loss.detach().reshape(1), e["loss"][1]), "%s: loss reproduced (%.6f)" % (name, loss.item()))
    gexact = all(torch.equal(p.grad.half().float() if half else p.grad, e["grad." + k][1])
                 for k, p in model.named_parameters())
    check(gexact, "%s: grads reproduced bit for bit%s" % (name, " (after F16 rounding)" if half else ""))
    model.zero_grad(set_to_none=True)
    adam = gen.adamw_losses(model, x, labels)
    check(torch.equal(adam, e["adamw_losses"][1]) and adam[0].item() == e["loss"][1].item(),
          "%s: adamw_losses reproduced %s" % (name, adam.tolist()))
    check(all(k in emeta for k in ("label_smoothing", "lr", "weight_decay", "betas", "eps", "torch",
                                   "torchvision", "note")), "%s expected: metadata keys present" % name)


def check_pos():
    t, names, meta = load(os.path.join(gen.OUT, "pos_resample.safetensors"))
    check(names == ["pos_embed", "resampled", "resampled_4", "resampled_aa", "resampled_4_aa"], "pos names %s" % names)
    shapes = {k: list(v[1].shape) for k, v in t.items()}
    check(shapes == {"pos_embed": [1, 50, 96], "resampled": [1, 101, 96], "resampled_4": [1, 17, 96],
                     "resampled_aa": [1, 101, 96], "resampled_4_aa": [1, 17, 96]}, "pos shapes %s" % shapes)
    pos = t["pos_embed"][1]
    for key, new, aa in (("resampled", 10, False), ("resampled_4", 4, False),
                         ("resampled_aa", 10, True), ("resampled_4_aa", 4, True)):
        grid = pos[:, 1:].reshape(1, 7, 7, 96).permute(0, 3, 1, 2)
        g = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False, antialias=aa)
        ref = torch.cat([pos[:, :1], g.permute(0, 2, 3, 1).reshape(1, new * new, 96)], 1)
        check(torch.equal(ref, t[key][1]), "pos %s reproduced" % key)
    d = (t["resampled"][1] - t["resampled_aa"][1]).abs().max().item()
    print("       note: 7->10 antialias True vs False differ by max %.3g" % d)


def main():
    for name, spec in gen.MODELS.items():
        print(name)
        check_model(name, spec)
    print("pos_resample")
    check_pos()
    total = sum(os.path.getsize(os.path.join(gen.OUT, f)) for f in os.listdir(gen.OUT))
    print("total fixture size: %d bytes (%.2f MiB)" % (total, total / 2 ** 20))
    print("FAILED: %d" % len(failures) if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
