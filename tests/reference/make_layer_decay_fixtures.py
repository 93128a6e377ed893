#!/usr/bin/python3
"""Writes the layer-wise lr decay scales that tests/test_param_groups.cpp compares vkvit's
train::layer_decay_scales against, into tests/fixtures/layer_decay/scales.txt:

    python3 tests/reference/make_layer_decay_fixtures.py    # from the repository root, standard library only

timm is not needed: this is timm's rule written out again from its source, step by step, for
ViT-S/16 and ViT-B/16 (12 blocks each) at layer decay 0.65 and 0.75:
  - timm/models/vision_transformer.py VisionTransformer.group_matcher(coarse=False):
      stem   r'^cls_token|pos_embed|patch_embed'
      blocks [(r'^blocks\\.(\\d+)', None), (r'^norm', (99999,))]
  - timm/models/_manipulate.py group_with_matcher: each name's ordinal is (group index, regex
    groups..., suffix...) as floats, an unmatched name gets (inf,); the distinct ordinals are sorted
    and numbered from 0, except that an ordinal whose last element is 99999 (MATCH_PREV_GROUP)
    keeps the number of the one before it.
  - timm/optim/_param_groups.py param_groups_layer_decay: num_layers = max id + 1, layer_max =
    num_layers - 1, scale of id i = layer_decay ** (layer_max - i); a name missing from the map
    gets layer_max.
One line per tensor: <model> <layer_decay> <name> <layer id> <scale as repr>.
"""
import os
import re

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "layer_decay", "scales.txt")
MATCH_PREV = 99999.0


def vit_param_names(depth):
    """timm VisionTransformer.named_parameters() order for a plain ViT (class token, no reg tokens)."""
    names = ["cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    for i in range(depth):
        for sub in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            names += [f"blocks.{i}.{sub}.weight", f"blocks.{i}.{sub}.bias"]
    return names + ["norm.weight", "norm.bias", "head.weight", "head.bias"]


def matcher_rules():
    """The matcher as (compiled regex, (group index,), suffix) triples, in the dict's order."""
    spec = {"stem": r"^cls_token|pos_embed|patch_embed",
            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}
    rules = []
    for index, value in enumerate(spec.values()):
        entries = value if isinstance(value, list) else [(value, None)]
        for regex, suffix in entries:
            rules.append((re.compile(regex), (index,), suffix))
    return rules


def ordinal(name, rules):
    for regex, prefix, suffix in rules:
        m = regex.match(name)
        if m:
            parts = list(prefix) + list(m.groups()) + list(suffix or ())
            return tuple(float(p) for p in parts)
    return (float("inf"),)


def layer_ids(names):
    rules = matcher_rules()
    ordinals = {n: ordinal(n, rules) for n in names}
    number = {}
    current = -1
    for o in sorted(set(ordinals.values())):
        if current < 0 or o[-1] != MATCH_PREV:
            current += 1
        number[o] = current
    return {n: number[ordinals[n]] for n in names}


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    lines = []
    for model, depth in (("vit_small_patch16_224", 12), ("vit_base_patch16_224", 12)):
        names = vit_param_names(depth)
        ids = layer_ids(names)
        layer_max = max(ids.values())
        for decay in (0.65, 0.75):
            for n in names:
                i = ids.get(n, layer_max)
                lines.append(f"{model} {decay!r} {n} {i} {decay ** (layer_max - i)!r}")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
