"""Minimal hand-written safetensors writer/reader (no `safetensors` package needed).

Format: 8-byte little-endian header length N, N bytes of JSON header (padded with spaces so the
data starts on an 8-byte boundary), then the tensors' bytes back to back in header order, no
holes, no trailing bytes. Supports F32 and F16 (and reads BF16 too).
"""
import json
import struct

import torch

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}
TORCH_DTYPE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch.Tensor, dtype_str) in the order their bytes are written."""
    header = {}
    blobs = []
    offset = 0
    seen = set()
    for name, t, dt in tensors:
        assert name not in seen and name != "__metadata__", name
        seen.add(name)
        t = t.detach().to("cpu").to(TORCH_DTYPE[dt]).contiguous()
        if dt == "BF16":
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        assert len(raw) == t.numel() * DTYPE_SIZE[dt]
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        header["__metadata__"] = dict(metadata)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, path)


def _no_dup_pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key in header: %r" % k)
        d[k] = v
    return d


def read_safetensors(path):
    """Strict reader. Returns (list of (name, dtype_str, shape, fp32 tensor) in data order, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("header length past end of file")
    hbytes = data[8:8 + n]
    if not hbytes.startswith(b"{"):
        raise ValueError("header does not start with '{'")
    if (8 + n) % 8 != 0:
        raise ValueError("data does not start on an 8-byte boundary")
    header = json.loads(hbytes.decode("utf-8"), object_pairs_hook=_no_dup_pairs)
    meta = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError("__metadata__ is not str -> str")
    body = data[8 + n:]
    entries = []
    for name, e in header.items():
        if set(e.keys()) != {"dtype", "shape", "data_offsets"}:
            raise ValueError("%s: bad fields %s" % (name, sorted(e.keys())))
        dt = e["dtype"]
        if dt not in DTYPE_SIZE:
            raise ValueError("%s: unsupported dtype %s" % (name, dt))
        shape = e["shape"]
        b, en = e["data_offsets"]
        numel = 1
        for s in shape:
            numel *= s
        if b > en or en - b != numel * DTYPE_SIZE[dt]:
            raise ValueError("%s: byte span %d..%d != %d x %s" % (name, b, en, numel, dt))
        entries.append((b, en, name, dt, shape))
    entries.sort()
    pos = 0
    for b, en, name, dt, shape in entries:
        if b != pos:
            raise ValueError("%s: starts at %d, expected %d (hole/overlap)" % (name, b, pos))
        pos = en
    if pos != len(body):
        raise ValueError("data ends at %d but file body has %d bytes" % (pos, len(body)))
    out = []
    for b, en, name, dt, shape in entries:
        raw = bytearray(body[b:en])
        if dt == "BF16":
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=torch.bfloat16)
        else:
            t = torch.frombuffer(raw, dtype=TORCH_DTYPE[dt]) if raw else torch.empty(0, dtype=TORCH_DTYPE[dt])
        out.append((name, dt, list(shape), t.float().reshape(shape)))
    # header key order must equal data order (our own convention, not required by the format)
    if [x[2] for x in entries] != list(header.keys()):
        raise ValueError("header order differs from data order")
    return out, meta
