#!/usr/bin/python3
"""PyTorch side of `vkvit bench train-step|infer`: the same ViT, batch and optimizer step.

Run with Debian's python3-torch (1.13): /usr/bin/python3 tests/bench/pytorch_bench.py --config
configs/fmnist_vit_tiny.yaml --mode train-step. The model is read from the same run config (or
the same preset name) and built from torch.nn as vkvit's model/vit.h describes it: patches
(B, Np, C*P*P) -> Linear patch embedding, cls token, learned pos embedding, pre-norm blocks
(LN -> MHA with one qkv Linear and proj -> +res, LN -> fc1 -> GELU (erf) -> fc2 -> +res), final
LN over every token, cls or mean pooling, head. The input is random patches, so patchify and
data loading are out of the timing on both sides.

train-step = forward + label-smoothed cross-entropy + backward + gradient norm + AdamW with
timm's decay exclusions, which is the work train::TrainStep records; infer = forward under
no_grad. The last stdout line is `RESULT key=value ...` like vkvit's.

On an NVIDIA GPU (any torch with CUDA): --device cuda times the same step in fp32 eager, --amp
under autocast(float16) with a GradScaler (PyTorch's AMP recipe; vkvit's train.amp follows it),
and --attention sdpa uses F.scaled_dot_product_attention (fused kernels, timm's default) instead
of the explicit products. Each timed step ends with a synchronisation (the loss's .item(), or
torch.cuda.synchronize() for infer).
"""
import argparse
import ctypes
import math
import os
import re
import statistics
import sys
import time

# Before torch loads libgomp: idle OpenMP workers sleep instead of spinning. Spinning workers take
# the cores OpenBLAS's own threads need: measured here on 2 cores without this, 2 intra-op threads
# ran ViT-Ti 2-3x slower than 1 on the idle machine, and 4-50x slower (ViT-Ti, the Fashion-MNIST
# model) while another process held a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:
    import yaml
except ImportError:  # Debian: apt-get install -y python3-yaml
    sys.exit("pytorch_bench.py: needs python3-yaml (apt-get install -y python3-yaml)")

# ModelFields defaults (src/train/config.h) and the presets of src/model/vit_config.cpp, as
# (image, patch, chans, dim, depth, heads, mlp, classes, pool). Keep in step with those files.
DEFAULTS = dict(image_size=224, patch_size=16, in_chans=3, dim=768, depth=12, heads=12, mlp_dim=3072,
                num_classes=1000, pool="cls", mixer="attention", ln_eps=1e-6)
PRESETS = {
    "vit_tiny_patch16_224": (224, 16, 3, 192, 12, 3, 768, 1000, "cls"),
    "vit_small_patch16_224": (224, 16, 3, 384, 12, 6, 1536, 1000, "cls"),
    "vit_base_patch16_224": (224, 16, 3, 768, 12, 12, 3072, 1000, "cls"),
    "vit_fmnist_tiny": (28, 14, 1, 128, 2, 4, 256, 10, "mean"),
    "vit_fmnist_small": (28, 7, 1, 128, 4, 4, 256, 10, "mean"),
    "vit_cifar_small": (32, 4, 3, 192, 6, 3, 384, 10, "cls"),
}
PRESET_KEYS = ("image_size", "patch_size", "in_chans", "dim", "depth", "heads", "mlp_dim", "num_classes", "pool")
# TrainConfig defaults (src/train/config.h): what a preset runs with.
OPTIM = dict(batch_size=128, lr=5e-4, weight_decay=0.05, betas=[0.9, 0.999], eps=1e-8, clip_grad=0.0,
             label_smoothing=0.1, seed=42)


def preset_fields(name):
    if name not in PRESETS:
        sys.exit(f"pytorch_bench.py: unknown preset '{name}': use one of {', '.join(PRESETS)}")
    return dict(zip(PRESET_KEYS, PRESETS[name]))


def resolve(args):
    """(model name, model fields, optimizer fields), resolved as vkvit's config loader does:
    preset first, explicit fields over it, mlp_ratio -> int(ratio * dim)."""
    model, optim = dict(DEFAULTS), dict(OPTIM)
    if args.config:
        with open(args.config) as f:
            cfg = yaml.safe_load(f) or {}
        m = dict(cfg.get("model") or {})
        if m.get("preset"):
            model.update(preset_fields(m.pop("preset")))
        m.pop("preset", None)
        ratio = m.pop("mlp_ratio", None)
        model.update(m)
        if ratio is not None:
            model["mlp_dim"] = int(ratio * model["dim"])
        optim.update({k: v for k, v in (cfg.get("train") or {}).items() if k in OPTIM})
        name = args.config
    else:
        model.update(preset_fields(args.preset))
        name = args.preset
    if model["mixer"] != "attention":
        sys.exit(f"pytorch_bench.py: mixer '{model['mixer']}' is not built here (attention only)")
    if args.batch:
        optim["batch_size"] = args.batch
    return name, model, optim


class Attention(nn.Module):
    sdpa = False  # --attention sdpa

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)  # rows [q; k; v], each head contiguous, as timm
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, N, D)
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, N, d)
        if Attention.sdpa:
            return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D))
        # Explicit products + softmax: torch 1.13 has no fused attention on CPU, and vkvit's
        # default path is unfused too.
        p = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
        return self.proj((p @ v).transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_dim, eps):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim)  # GELU: erf form

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, m):
        super().__init__()
        D, P, C = m["dim"], m["patch_size"], m["in_chans"]
        num_patches = (m["image_size"] // P) ** 2
        self.pool = m["pool"]
        self.patch_embed = nn.Linear(C * P * P, D)  # = Conv2d(C, D, P, stride P) on patchified input
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, D) * 0.02)
        self.blocks = nn.ModuleList(Block(D, m["heads"], m["mlp_dim"], m["ln_eps"]) for _ in range(m["depth"]))
        self.norm = nn.LayerNorm(D, eps=m["ln_eps"])
        self.head = nn.Linear(D, m["num_classes"])

    def forward(self, patches):  # (B, Np, C*P*P)
        x = self.patch_embed(patches)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)  # every token, then pool: vkvit's order for both pools (model/vit.h)
        return self.head(x[:, 0] if self.pool == "cls" else x[:, 1:].mean(dim=1))


def flops_per_image(m):
    """Forward matmul FLOPs, the formula of VitConfig::flops_per_image (2 per multiply-add)."""
    Np = (m["image_size"] // m["patch_size"]) ** 2
    T, D, Fh, K = Np + 1, m["dim"], m["mlp_dim"], m["num_classes"]
    block = 2 * T * D * 3 * D + 2 * 2 * T * T * D + 2 * T * D * D + 2 * 2 * T * D * Fh
    return 2 * Np * m["in_chans"] * m["patch_size"] ** 2 * D + m["depth"] * block + 2 * D * K


def loaded_blas():
    """The BLAS/LAPACK files this process really loaded, and OpenBLAS's handle if it is one of
    them. torch.__config__ says BLAS_INFO=generic for Debian's build: it links libblas.so.3, and
    the Debian alternatives decide whether that is the reference BLAS or OpenBLAS."""
    torch.randn(64, 64) @ torch.randn(64, 64)  # make sure the library is mapped
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in path or "lapack" in path:
                libs.add(os.path.realpath(path))
    openblas = None
    for path in sorted(libs):
        if "libopenblas" in os.path.basename(path):
            try:
                openblas = ctypes.CDLL(path)  # the instance already loaded (same soname)
            except OSError:
                pass
    return sorted(libs), openblas


def blas_report():
    libs, openblas = loaded_blas()
    threads = f", openblas_get_num_threads() = {openblas.openblas_get_num_threads()}" if openblas else ""
    info = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    built = info.group(1) if info else "?"
    return f"built with BLAS_INFO={built}; loaded: {', '.join(libs) or 'none'}{threads}"


def param_groups(model, weight_decay):
    """timm's decay rule (ops/adamw.h): no decay for ndim <= 1, *.bias, cls_token, pos_embed."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim <= 1 or name.endswith(".bias") or name in ("cls_token", "pos_embed")
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="run config (YAML), e.g. configs/fmnist_vit_tiny.yaml")
    src.add_argument("--preset", help="model preset, e.g. vit_tiny_patch16_224")
    ap.add_argument("--mode", choices=["train-step", "infer"], default="train-step")
    ap.add_argument("-b", "--batch", type=int, default=0, help="batch size (default: the config's)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="torch intra-op threads and OpenBLAS threads (default: every CPU this process may "
                    "use, as lavapipe does)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--amp", action="store_true", help="autocast float16 + GradScaler (needs --device cuda)")
    ap.add_argument("--attention", choices=["explicit", "sdpa"], default="explicit",
                    help="explicit products + softmax (vkvit's unfused path) or F.scaled_dot_product_attention")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("pytorch_bench.py: --device cuda, but this torch sees no CUDA device")
    if args.amp and not cuda:
        sys.exit("pytorch_bench.py: --amp needs --device cuda (float16 autocast)")
    if args.attention == "sdpa" and not hasattr(F, "scaled_dot_product_attention"):
        sys.exit(f"pytorch_bench.py: torch {torch.__version__} has no F.scaled_dot_product_attention")
    Attention.sdpa = args.attention == "sdpa"

    name, m, o = resolve(args)
    B = int(o["batch_size"])
    # Both pools get N: OpenBLAS starts one thread per CPU whatever torch's setting, so without this
    # "1 thread" would still multiply matrices on every core.
    torch.set_num_threads(args.threads)
    openblas = loaded_blas()[1]
    if openblas:
        openblas.openblas_set_num_threads(args.threads)
    torch.manual_seed(int(o["seed"]))
    model = ViT(m).to(args.device)
    Np, CPP = (m["image_size"] // m["patch_size"]) ** 2, m["in_chans"] * m["patch_size"] ** 2
    patches = torch.randn(B, Np, CPP, device=args.device)
    labels = torch.randint(0, m["num_classes"], (B,), device=args.device)
    scaler = None
    if args.amp:
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()
    train = args.mode == "train-step"
    opt = torch.optim.AdamW(param_groups(model, o["weight_decay"]), lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"])
    # vkvit computes the global gradient norm every step (the trainer logs it) and clips only when
    # clip_grad > 0; an infinite max_norm computes the norm and leaves the gradients as they are.
    max_norm = o["clip_grad"] if o["clip_grad"] > 0 else math.inf

    def step():
        if train:
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16, enabled=args.amp):
                loss = F.cross_entropy(model(patches), labels, label_smoothing=o["label_smoothing"])
            if scaler:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                opt.step()
            return loss.item()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=args.amp):
            model(patches)
        if cuda:
            torch.cuda.synchronize()
        return float("nan")

    print(f"# pytorch_bench {args.mode}")
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} intra-op threads "
          f"(asked {args.threads}), {torch.get_num_interop_threads()} inter-op, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    if cuda:
        print(f"# device: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda}), "
              f"{'amp float16' if args.amp else 'fp32'}, attention {args.attention}, "
              f"TF32 matmul {torch.backends.cuda.matmul.allow_tf32}")
    else:
        print(f"# BLAS: {blas_report()}")
    print(f"# model: {name} (image {m['image_size']}, patch {m['patch_size']}, {Np + 1} tokens, dim {m['dim']}, "
          f"depth {m['depth']}, heads {m['heads']}, mlp {m['mlp_dim']}, {m['num_classes']} classes, {m['pool']} pool), "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    print(f"# batch {B}, {args.steps} timed steps after {args.warmup} warm-up steps", flush=True)
    model.train(train)
    wall, cpu = [], []
    loss = float("nan")
    for i in range(-args.warmup, args.steps):
        c0, t0 = time.process_time(), time.perf_counter()
        loss = step()
        t1, c1 = time.perf_counter(), time.process_time()
        if i >= 0:
            wall.append((t1 - t0) * 1e3)
            cpu.append((c1 - c0) * 1e3)
    fwd = flops_per_image(m)
    flops = fwd * (3 if train else 1)
    ms, cms = statistics.median(wall), statistics.median(cpu)
    img_s = B / (ms * 1e-3)
    print(f"FLOPs per image: {fwd:.4g} forward (matmuls only)" + (f" x 3 = {flops:.4g} per train-step image" if train else ""))
    print(f"median step: {ms:.3f} ms wall (min {min(wall):.3f}, max {max(wall):.3f}), {cms:.3f} ms process CPU")
    print(f"throughput: {img_s:.2f} img/s, {flops * B / (ms * 1e6):.3f} GFLOP/s ({B / (cms * 1e-3):.2f} img per CPU-second)")
    if train:
        print(f"loss of the last step: {loss:.4f} (ln K = {math.log(m['num_classes']):.4f})")
    print(f"RESULT impl=pytorch mode={args.mode} model={name} batch={B} steps={args.steps} ms={ms:.3f} cpu_ms={cms:.3f} "
          f"img_per_s={img_s:.3f} gflop_per_s={flops * B / (ms * 1e6):.4f} flops_per_img={flops:.6g} "
          f"threads={torch.get_num_threads()} device={args.device} amp={int(args.amp)} attention={args.attention}",
          flush=True)


if __name__ == "__main__":
    main()
