#!/usr/bin/python3
"""Generates the PyTorch parity fixtures under tests/fixtures/parity/ (see README.md here).

Deterministic (fixed seeds, one CPU thread); rerunning rewrites the same files. Needs torch and
torchvision (Debian: apt-get install -y python3-torch python3-torchvision); writes safetensors by
hand (st_io.py), no `safetensors` package.

    /usr/bin/python3 tests/reference/make_parity_fixtures.py      # from the repository root
"""
import copy
import os
import sys

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__

import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import VisionTransformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import write_safetensors  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "parity")

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LABEL_SMOOTHING = 0.1
LR, BETAS, EPS, WEIGHT_DECAY, ADAMW_STEPS = 1e-3, (0.9, 0.999), 1e-8, 0.05, 3
NO_DECAY_NAMES = ("class_token", "encoder.pos_embedding")

MODELS = {
    "small": dict(arch=dict(image_size=32, patch_size=8, num_layers=3, num_heads=3, hidden_dim=96,
                            mlp_dim=192, num_classes=10),
                  batch=4, seed=1234, half=False, pixels=True),
    "b16ish": dict(arch=dict(image_size=224, patch_size=16, num_layers=2, num_heads=3, hidden_dim=192,
                             mlp_dim=768, num_classes=1000),
                   batch=2, seed=5678, half=True, pixels=False),
}


def make_model(arch):
    return VisionTransformer(dropout=0.0, attention_dropout=0.0, representation_size=None, **arch)


def randomize(model, gen, half):
    """Every parameter ~ N(0, 0.1); LayerNorm weights ~ 1 + 0.1 N(0, 1). Optionally fp16-rounded."""
    ln_weights = {name + ".weight" for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen) * 0.1
            p.copy_(1.0 + r if name in ln_weights else r)
            if half:
                p.copy_(p.half().float())


def loss_fn(logits, labels):
    return F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)


def param_groups(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and name not in NO_DECAY_NAMES else no_decay).append(p)
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


def adamw_losses(model, x, labels):
    opt = torch.optim.AdamW(param_groups(model), lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), labels)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return torch.tensor(losses, dtype=torch.float32)


def versions():
    return {"torch": torch.__version__, "torchvision": torchvision.__version__}


def generate_model(name, spec):
    arch, B, half = spec["arch"], spec["batch"], spec["half"]
    gen = torch.Generator().manual_seed(spec["seed"])
    torch.manual_seed(spec["seed"])  # nothing in the model should draw from it, but be safe
    model = make_model(arch)
    randomize(model, gen, half)
    model.eval()  # no dropout anyway (p = 0)
    wdt = "F16" if half else "F32"
    S, K = arch["image_size"], arch["num_classes"]

    extra_in = []
    meta_in = {}
    if spec["pixels"]:
        pixels = torch.randint(0, 256, (B, S, S, 3), generator=gen).float()  # RGB, HWC
        mean = torch.tensor(MEAN).view(1, 1, 1, 3)
        std = torch.tensor(STD).view(1, 1, 1, 3)
        x = ((pixels / 255.0 - mean) / std).permute(0, 3, 1, 2).contiguous()
        extra_in.append(("pixels", pixels, "F32"))
        meta_in = {"mean": ",".join(repr(v) for v in MEAN), "std": ",".join(repr(v) for v in STD),
                   "normalize": "input = ((pixels / 255 - mean) / std) in fp32, permuted BHWC -> BCHW"}
    else:
        x = torch.randn((B, 3, S, S), generator=gen)
        if half:
            x = x.half().float()
    labels = torch.randint(0, K, (B,), generator=gen)

    # forward + backward in fp32
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = loss_fn(logits, labels)
    loss.backward()
    grads = [("grad." + n, p.grad.detach().clone(), wdt) for n, p in model.named_parameters()]
    assert len(grads) == len(model.state_dict())  # no buffers: state_dict == parameters

    # AdamW from the same starting weights
    model2 = copy.deepcopy(model)
    model2.zero_grad(set_to_none=True)
    adam = adamw_losses(model2, x, labels)
    assert adam[0].item() == loss.item(), (adam[0].item(), loss.item())

    arch_meta = {k: str(v) for k, v in arch.items()}
    wmeta = {"format": "pt", "source": "torchvision", **arch_meta}
    weights = [(n, t.detach(), wdt) for n, t in model.state_dict().items()]
    write_safetensors(os.path.join(OUT, name + "_weights.safetensors"), weights, wmeta)

    emeta = {
        "format": "pt", "source": "torchvision", **arch_meta, **versions(), **meta_in,
        "batch": str(B), "label_smoothing": str(LABEL_SMOOTHING), "lr": str(LR),
        "weight_decay": str(WEIGHT_DECAY), "betas": "%r,%r" % BETAS, "eps": str(EPS),
        "adamw_steps": str(ADAMW_STEPS),
        "adamw_no_decay": "params with ndim < 2, class_token, encoder.pos_embedding (weight_decay 0)",
        "seed": str(spec["seed"]),
        "weights_dtype": wdt,
        "note": ("Reference for %s_weights.safetensors (torchvision VisionTransformer, random weights%s, "
                 "dropout 0, exact erf GELU, LayerNorm eps 1e-6). input: (B,3,H,W) what forward() receives%s; "
                 "labels: class indices as floats; logits: model(input) in fp32; loss: [1] mean "
                 "cross_entropy(logits, labels, label_smoothing); grad.<name>: d loss / d parameter%s; "
                 "adamw_losses: loss before each of %d torch.optim.AdamW steps on the same batch "
                 "(step 1 == loss)." % (
                     name, ", fp16-rounded, computed in fp32" if half else "",
                     " (= normalized pixels)" if spec["pixels"] else (" (fp16-rounded)" if half else ""),
                     " (fp32 result rounded to F16)" if half else "", ADAMW_STEPS)),
    }
    tensors = ([("input", x, wdt)] + extra_in +
               [("labels", labels.float(), "F32"), ("logits", logits.detach(), "F32"),
                ("loss", loss.detach().reshape(1), "F32"), ("adamw_losses", adam, "F32")] + grads)
    write_safetensors(os.path.join(OUT, name + "_expected.safetensors"), tensors, emeta)

    print("%s: loss %.6f  adamw_losses %s  logits std %.3f" % (name, loss.item(), adam.tolist(), logits.std().item()))
    if half:
        g = torch.cat([p.grad.flatten() for p in model.parameters()])
        nz = g != 0
        sub = (g.abs() < 2 ** -14) & nz
        zero16 = (g.half() == 0) & nz
        rel = ((g.half().float() - g).abs() / g.abs().clamp_min(1e-30))[nz]
        print("  grads: %d values, |g| max %.3g median %.3g; fp16 subnormal %d, flushed to 0 %d; "
              "rel. rounding err max %.3g" % (g.numel(), g.abs().max().item(), g.abs().median().item(),
                                              sub.sum().item(), zero16.sum().item(), rel.max().item()))


def generate_pos_resample():
    gen = torch.Generator().manual_seed(91011)
    D, old = 96, 7
    pos = torch.randn((1, 1 + old * old, D), generator=gen)

    def resample(p, new, antialias):
        cls, grid = p[:, :1], p[:, 1:]
        grid = grid.reshape(1, old, old, D).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False, antialias=antialias)
        grid = grid.permute(0, 2, 3, 1).reshape(1, new * new, D)
        return torch.cat([cls, grid], dim=1)

    tensors = [("pos_embed", pos, "F32"),
               ("resampled", resample(pos, 10, False), "F32"),
               ("resampled_4", resample(pos, 4, False), "F32"),
               ("resampled_aa", resample(pos, 10, True), "F32"),
               ("resampled_4_aa", resample(pos, 4, True), "F32")]
    meta = {**versions(), "prefix_tokens": "1", "old_grid": "7,7", "dim": str(D),
            "note": ("timm resample_abs_pos_embed: keep the cls row, grid (1,49,96) -> (1,96,7,7), "
                     "F.interpolate(mode='bicubic', align_corners=False), back to (1,N,96), cls first. "
                     "resampled: 7x7->10x10 antialias=False; resampled_4: 7x7->4x4 antialias=False; "
                     "*_aa: same with antialias=True (timm's default; bicubic A=-0.5 PIL-style kernel, "
                     "differs from antialias=False even when upsampling).")}
    write_safetensors(os.path.join(OUT, "pos_resample.safetensors"), tensors, meta)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, spec in MODELS.items():
        generate_model(name, spec)
    generate_pos_resample()
    total = 0
    for f in sorted(os.listdir(OUT)):
        sz = os.path.getsize(os.path.join(OUT, f))
        total += sz
        print("  %-32s %9d bytes" % (f, sz))
    print("  total %d bytes (%.2f MiB)" % (total, total / 2 ** 20))


if __name__ == "__main__":
    main()
