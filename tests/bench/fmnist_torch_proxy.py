#!/usr/bin/python3
"""Fashion-MNIST recipe search in PyTorch on the CPU: the same ViT as vkvit's Fashion-MNIST configs
(pre-norm blocks, learned positions, cls token, mean pool over the patch tokens, LayerNorm eps 1e-6)
and the same recipe (AdamW without decay on biases/norms/positions, linear warmup + cosine per step,
label smoothing, gradient clipping, model EMA), so a recipe question costs minutes here instead of
the hours vkvit needs on lavapipe. Its figures are proxies: the augmentations are batched affine
resamples (grid_sample), not vkvit's Pillow-exact loader, and PyTorch's init and draws differ. The
recipe that wins here is then trained with vkvit, whose figure is the one BENCHMARKS.md reports.

  /usr/bin/python3 tests/bench/fmnist_torch_proxy.py --epochs 10 --patch 7 --dim 128 --depth 4 \
      --crop 0.8 --flip --ema 0.999 [--spt] [--shift 2]

--stem C: a convolutional stem before the patch embedding (in the spirit of Xiao et al. 2021,
"Early convolutions help transformers see better"): a 3x3 convolution to C channels and GELU at
full resolution, then the patches of those C channels.
--spt: shifted patch tokenization (Lee et al. 2021, "Vision Transformer for Small-Size Datasets"):
each patch also sees the image shifted by half a patch along the four diagonals (zero fill), so the
patch embedding reads 5 x C x P x P values. Reads Debian's dataset-fashion-mnist files.
"""
import argparse
import gzip
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = "/usr/share/datasets/fashion-mnist/"
MEAN, STD = 0.2860, 0.3530


def load(split):
    with gzip.open(ROOT + split + "-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(ROOT + split + "-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)
        self.heads = heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.p, self.spt = a.patch, a.spt
        grid = 28 // a.patch
        channels = 5 if a.spt else 1  # the image and its four shifted copies
        self.stem = nn.Sequential(nn.Conv2d(channels, a.stem, 3, padding=1), nn.GELU()) if a.stem else None
        k = (a.stem or channels) * a.patch * a.patch
        self.embed = nn.Linear(k, a.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, a.dim))
        self.pos = nn.Parameter(torch.randn(1, grid * grid + 1, a.dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(a.dim, a.heads, a.mlp) for _ in range(a.depth)])
        self.norm = nn.LayerNorm(a.dim, eps=1e-6)
        self.head = nn.Linear(a.dim, 10)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):  # x: (B, 1, 28, 28) in [0, 1]
        if self.spt:
            s = self.p // 2
            pad = F.pad(x, (s, s, s, s))
            shifts = [pad[:, :, s + dy:s + dy + 28, s + dx:s + dx + 28] for dy, dx in ((-s, -s), (-s, s), (s, -s), (s, s))]
            x = torch.cat([x] + shifts, 1)
        x = (x - MEAN) / STD
        if self.stem is not None:
            x = self.stem(x)
        b, c = x.shape[:2]
        x = F.unfold(x, self.p, stride=self.p).transpose(1, 2)  # (B, tokens, C*P*P), [c][py][px]
        x = torch.cat([self.cls.expand(b, -1, -1), self.embed(x)], 1) + self.pos
        x = self.norm(self.blocks(x))
        return self.head(x[:, 1:].mean(1))


def augment(x, a, gen):
    b = x.shape[0]
    if a.crop < 1.0:  # RandomResizedCrop: area U(crop, 1), log-uniform ratio, bilinear
        area = torch.empty(b).uniform_(a.crop, 1.0, generator=gen)
        ratio = torch.exp(torch.empty(b).uniform_(math.log(a.ratio), -math.log(a.ratio), generator=gen))
        w, h = (area * ratio).sqrt().clamp(max=1), (area / ratio).sqrt().clamp(max=1)
        cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - w)
        cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - h)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
        x = F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)
    if a.shift:  # RandomCrop(28, padding=shift): integer shifts, zero fill
        s = a.shift
        pad = F.pad(x, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (b,), generator=gen)
        dx = torch.randint(0, 2 * s + 1, (b,), generator=gen)
        idx = torch.arange(28)
        rows = (dy[:, None] + idx)[:, None, :, None].expand(b, 1, 28, 28 + 2 * s)
        x = pad.gather(2, rows)
        cols = (dx[:, None] + idx)[:, None, None, :].expand(b, 1, 28, 28)
        x = x.gather(3, cols)
    if a.flip:
        m = torch.rand(b, generator=gen) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    return x


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    model.train()
    return 100.0 * correct / len(x)


def main():
    ap = argparse.ArgumentParser()
    for name, default in (("epochs", 10), ("patch", 7), ("dim", 128), ("depth", 4), ("heads", 4), ("mlp", 256),
                          ("batch", 128), ("shift", 0), ("stem", 0), ("seed", 42), ("threads", 2)):
        ap.add_argument("--" + name, type=int, default=default)
    for name, default in (("lr", 1e-3), ("min_lr", 1e-5), ("warmup", 2.0), ("wd", 0.05), ("ls", 0.1), ("clip", 1.0),
                          ("crop", 1.0), ("ratio", 0.9), ("ema", 0.0)):
        ap.add_argument("--" + name, type=float, default=default)
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--spt", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = ViT(a)
    ema = None
    if a.ema:
        ema = ViT(a)
        ema.load_state_dict(model.state_dict())
    decay, no_decay = [], []  # weights decay; biases, norms, positions and the cls token do not
    for n, p in model.named_parameters():
        (decay if p.ndim > 1 and n not in ("pos", "cls") else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = len(xtr) // a.batch
    total, warm = a.epochs * steps_per_epoch, int(a.warmup * steps_per_epoch)
    print(f"# {vars(a)}  params {sum(p.numel() for p in model.parameters())}", flush=True)
    step = 0
    for epoch in range(1, a.epochs + 1):
        t0, loss_sum = time.time(), 0.0
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            if step < warm:
                lr = 1e-5 + (a.lr - 1e-5) * step / warm
            else:
                lr = a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model(augment(xtr[idx], a, gen)), ytr[idx], label_smoothing=a.ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if a.clip:
                nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            step += 1
            loss_sum += loss.item()
            if ema is not None:
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.mul_(a.ema).add_(pm, alpha=1 - a.ema)
        secs = time.time() - t0
        top1 = evaluate(model, xte, yte)
        ema_top1 = evaluate(ema, xte, yte) if ema is not None else float("nan")
        print(f"epoch {epoch} loss {loss_sum / steps_per_epoch:.4f} top1 {top1:.2f} ema {ema_top1:.2f} "
              f"img/s {steps_per_epoch * a.batch / secs:.0f}", flush=True)


if __name__ == "__main__":
    main()
