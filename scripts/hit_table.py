"""Print docs/hit.md: the hit_b preset (what experiment=imagenet128/256 trains) next to HiT-B,
stage by stage, and the point-by-point list of what matches HiT and what does not.

    python scripts/hit_table.py            # print the document
    python scripts/hit_table.py --write    # also rewrite docs/hit.md

HiT's side is computed here from the layout and layers of HiT's official code
(github.com/google-research/hit-gan, models/generators.py, layers.py, discriminators.py):
the parameter count of each layer, with trainable parameters only (BatchNorm scale and
offset, not its moving statistics). Summed, they give HiT's totals (32.87M / 35.73M G,
23.88M / 24.00M D at 128 / 256 px with ImageNet's 256-d latent); tests/test_hit.py checks that.
FLOPs are counted the way torch.utils.flop_counter.FlopCounterMode counts ours: 2 x the
multiply-adds of matmuls, convolutions and attention products; norms, activations, softmax,
resampling and additions are not counted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from maxvit_gan.models import Discriminator, Generator, discriminator_preset, generator_preset
from maxvit_gan.nn import MaxViTBlock, set_attention_backend

DOC = Path(__file__).resolve().parents[1] / "docs" / "hit.md"
RESOLUTIONS = (128, 256)
LATENT_TOKENS = 16  # HiT: a 4x4 grid of latent embeddings

# HiT-B in HiT's models/generators.py: per stage (8 px up) widths, blocks, heads, block size
# (None = attention-free stage).
HIT_B = {
    128: dict(
        channels=[512, 512, 256, 128, 128],
        depths=[2, 2, 2, 2, 2],
        heads=[16, 8, 4, 4, 4],
        patch=[4, 4, 8, 8, None],
    ),
    256: dict(
        channels=[512, 512, 256, 128, 64, 64],
        depths=[2, 2, 2, 2, 1, 1],
        heads=[16, 8, 4, 4, 4, 4],
        patch=[4, 4, 8, 8, None, None],
    ),
}


# --------------------------------------------------------------------------- HiT's side, by arithmetic


def hit_generator(resolution: int, z_dim: int = 256) -> list[dict]:
    """HiT-B's generator as rows: the input layers, then one row per stage (side, width, depth,
    heads, window, grid, params, flops per image). The pixel-shuffle dense into a stage is
    counted in that stage (as ours: HiT applies it at the end of the previous one)."""
    spec = HIT_B[resolution]
    c0 = spec["channels"][0]  # latent-token width (HiT: embedding_dim = the first stage's width)
    bn = lambda c: 2 * c  # noqa: E731  BatchNorm: scale and offset
    dense = lambda i, o: i * o + o  # noqa: E731
    mlp_params = lambda c: bn(c) + dense(c, 4 * c) + dense(4 * c, c)  # noqa: E731  layers.MLP
    mlp_flops = lambda n, c: 2 * n * c * 4 * c * 2  # noqa: E731

    attention_params = _hit_attention_params

    rows = [dict(name="input: z -> 8x8 map, latent tokens", params=dense(z_dim, 64 * c0) + dense(z_dim, 16 * c0)
                 + LATENT_TOKENS * c0 + bn(c0), flops=2 * z_dim * 64 * c0 + 2 * z_dim * 16 * c0)]  # fmt: skip
    prev = None
    for i, (c, depth, heads, p) in enumerate(
        zip(spec["channels"], spec["depths"], spec["heads"], spec["patch"])
    ):
        side = 8 * 2**i
        n, kd = side * side, c // heads
        params, flops = n * c, 0  # position embedding
        if prev is not None:  # PixelShuffle: depth_to_space, then a dense to the new width
            params += dense(prev // 4, c)
            flops += 2 * n * (prev // 4) * c
        # cross-attention Block (queries: the map; keys/values: the latent tokens) + its MLP
        params += bn(c) + attention_params(c, heads, c0) + mlp_params(c)
        flops += (
            2 * n * c * c * 2
            + 2 * 2 * LATENT_TOKENS * c0 * kd
            + 2 * 2 * n * LATENT_TOKENS * c
            + mlp_flops(n, c)
        )
        for _ in range(depth):
            if p is None:  # attention-free stage: layers.MLP only
                params += mlp_params(c)
                flops += mlp_flops(n, c)
            else:  # multi-axis Block: half the heads within p x p blocks, half across them (stride p)
                params += bn(c) + attention_params(c, heads, c) + mlp_params(c)
                local, dilated = p * p, (side // p) ** 2
                flops += (
                    2 * n * c * c * 2 + 2 * 2 * n * c * kd + 2 * n * c * (local + dilated) + mlp_flops(n, c)
                )
        if p is None:  # SkipToRGB: norm + dense to RGB
            params += bn(c) + dense(c, 3)
            flops += 2 * n * c * 3
        rows.append(dict(name=f"{side} px", side=side, width=c, depth=depth, heads=heads,
                         window=p or 0, grid=side // p if p else 0, params=params, flops=flops))  # fmt: skip
        prev = c
    return rows


def _hit_attention_params(c: int, heads: int, kv_dim: int) -> int:
    """layers.MultiAxisAttention, multi-query: query and output c -> c, one key and one value head."""
    kd = c // heads
    return 2 * (c * c + c) + 2 * (kv_dim * kd + kd)


def hit_block_params(c: int, heads: int) -> int:
    """One self-attention Block of HiT: BatchNorm, multi-axis attention, MLP (BatchNorm, 4x, back)."""
    return 2 * c + _hit_attention_params(c, heads, c) + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c)


def _hit_d_width(r: int, multiplier: int = 1) -> int:
    return 512 if r <= 32 else {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}[r] * multiplier


def hit_discriminator_params(resolution: int, multiplier: int = 1) -> int:
    """HiT's StyleGANDiscriminator (no equalized lr, no minibatch stddev) parameter count."""
    ch = lambda r: _hit_d_width(r, multiplier)  # noqa: E731
    total = 9 * 3 * ch(resolution) + ch(resolution)  # fromRGB 3x3
    r = resolution
    while r > 4:  # Block: conv3x3 (in -> in), pool, conv3x3 (in -> out); skip: pool, 1x1 without bias
        total += 9 * ch(r) * ch(r) + ch(r) + 9 * ch(r) * ch(r // 2) + ch(r // 2) + ch(r) * ch(r // 2)
        r //= 2
    c = ch(4)
    return total + 9 * c * c + c + 16 * c * c + c + c + 1  # final conv3x3, dense, dense 1


def hit_discriminator_flops(resolution: int, multiplier: int = 1) -> int:
    """FLOPs per image of HiT's discriminator, blur (4x4 depthwise, stride 2) included."""
    ch = lambda r: _hit_d_width(r, multiplier)  # noqa: E731
    flops = 2 * resolution**2 * 9 * 3 * ch(resolution)
    r = resolution
    while r > 4:
        h = (r // 2) ** 2
        flops += 2 * r * r * 9 * ch(r) * ch(r) + 2 * h * 9 * ch(r) * ch(r // 2) + 2 * h * ch(r) * ch(r // 2)
        flops += 2 * (2 * h * 16 * ch(r))  # two blurs (main path and skip) of ch(r) channels
        r //= 2
    c = ch(4)
    return flops + 2 * 16 * 9 * c * c + 2 * 16 * c * c + 2 * c


# --------------------------------------------------------------------------- our side, by measurement


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _flop_counts(model, *inputs) -> dict[str, int]:
    """FLOPs per module name for one forward pass (reference attention path: plain matmuls)."""
    set_attention_backend(model, use_sdpa=False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}


def our_generator(preset: str, resolution: int, **overrides) -> list[dict]:
    """Rows as :func:`hit_generator`, measured on our Generator (batch 1)."""
    cfg = generator_preset(preset, resolution, **overrides)
    g = Generator(cfg).eval()
    flops = _flop_counts(g, torch.randn(1, cfg.z_dim))
    rows, stage_params, stage_flops = [], 0, 0
    for i, stage in enumerate(g.stages):
        # to-RGB runs from Generator.forward, outside the stage's own forward: add it by name
        f = flops.get(f"Generator.stages.{i}", 0) + flops.get(f"Generator.stages.{i}.to_rgb", 0)
        p = _count(stage)
        heads = cfg.num_heads[i] if cfg.num_heads else max(1, cfg.channels[i] // cfg.head_dim)
        rows.append(dict(name=f"{stage.side} px", side=stage.side, width=cfg.channels[i], depth=cfg.depths[i],
                         heads=heads, window=cfg.window_sizes[i], grid=cfg.grid_sizes[i], params=p, flops=f))  # fmt: skip
        stage_params, stage_flops = stage_params + p, stage_flops + f
    stem = dict(name="input: z -> 8x8 map, latent tokens", params=_count(g) - stage_params,
                flops=flops["Generator"] - stage_flops)  # fmt: skip
    return [stem, *rows]


def our_discriminator(preset: str, resolution: int) -> tuple[int, int]:
    d = Discriminator(discriminator_preset(preset, resolution)).eval()
    return _count(d), _flop_counts(d, torch.randn(1, 3, resolution, resolution))["Discriminator"]


# --------------------------------------------------------------------------- the document

POINTS = [
    # (what, HiT-B (official code), ours in experiment=imagenet128/256 = preset hit_b, verdict)
    (
        "Stage layout",
        "widths 512/512/256/128/128 (256 px: 512/512/256/128/64/64), 2 blocks per stage "
        "(256 px: 1 at 128 and 256 px), heads 16/8/4/4/4(/4), block size 4/4/8/8 at 8..64 px",
        "the same (`hit_b`)",
        "same",
    ),
    (
        "Attention-stage block",
        "one Block = multi-axis attention (half the heads within p x p blocks, half "
        "across them, in parallel; multi-query; learned absolute positions only) + MLP",
        "one MaxViT block = MBConv -> block attention + FFN -> grid attention + FFN (sequential, relative "
        "position bias, full multi-head): {block_ratio:.1f}x the parameters of HiT's Block at width 512 "
        "(16 heads), hence the larger generator",
        "deliberate (the project's premise)",
    ),
    (
        "Attention-free stages (>= 128 px)",
        "per-pixel MLP blocks (HiT's implicit neural function: no spatial mixing)",
        "the same (`highres_block=mlp`); `mbconv` (the default, and `b`) keeps MBConv blocks",
        "same",
    ),
    (
        "Cross-attention to the latent",
        "16 latent tokens (dense of z, position embedding), every stage "
        "starts with a cross-attention Block followed by an MLP",
        "the same tokens; MLP after the cross-attention (`cross_attn_mlp=true`); multi-head, not multi-query",
        "same (multi-head: deliberate, as in Max-SA)",
    ),
    (
        "Latent-token normalisation",
        "one BatchNorm on the tokens, shared by all stages",
        "a LayerNorm of the tokens inside every stage's cross-attention",
        "deviation (small, kept)",
    ),
    (
        "RGB output path",
        "to-RGB (norm + dense) at the attention-free stages only; earlier RGB upsampled nearest and added",
        "the same (`rgb_skip=hit`); the default (`bilinear`, and `b`) adds a to-RGB at "
        "64 px and upsamples bilinearly",
        "same",
    ),
    ("Upsampling between stages", "pixel shuffle, then a dense layer to the next width", "the same", "same"),
    (
        "Input and positions",
        "z -> dense -> 8x8 map; learned absolute position embedding at every stage",
        "the same (plus the relative position bias of Max-SA)",
        "same",
    ),
    (
        "Normalisation",
        "BatchNorm",
        "LayerNorm (no train/eval mismatch, no SyncBN, no EMA buffers)",
        "deliberate",
    ),
    (
        "Latent",
        "256-d N(0, I) on ImageNet, used as drawn",
        "256-d, normalised to unit second moment",
        "deliberate (z normalisation)",
    ),
    (
        "Initialisation",
        "truncated normal (0.02) for every dense kernel",
        "PyTorch defaults, zero-initialised MBConv projections",
        "deviation (not an option)",
    ),
    (
        "Generator size",
        "32.87M (128 px), 35.73M (256 px) with the 256-d latent",
        "{hit_b_128} / {hit_b_256} (`hit_b`); `b` matches HiT-B's count at 128 px ({b_128}), not its layout",
        "deviation (follows from the block)",
    ),
    (
        "Discriminator",
        "StyleGAN2 residual D, channel multiplier 1 (512 up to 32 px, 256 at 64, 128 at "
        "128, 64 at 256), 3x3 fromRGB, conv -> blur-down -> conv per block, skip blur-down + 1x1, no "
        "minibatch stddev, no equalized lr, final conv + dense 512 + dense 1",
        "the same (`channel_base=16384`, `from_rgb_kernel=3`, `blur_position=between`, `mbstd_group=0`); "
        "`b` keeps StyleGAN2's multiplier 2, minibatch stddev, 1x1 fromRGB, blur after both convs",
        "same",
    ),
    (
        "Discriminator initialisation",
        "Keras default (Glorot uniform)",
        "Kaiming normal (a = 0.2)",
        "deviation",
    ),
    (
        "Optimiser, batch, length",
        "Adam 1e-4 (G and D), betas (0, 0.99), batch 256, 1M steps",
        "the same (256,000 kimg)",
        "same",
    ),
    (
        "Loss, R1, EMA",
        "non-saturating; R1 cost 10 every step; EMA 0.999 from step 10",
        "non-saturating; R1 gamma 20 every step (the same penalty); EMA 0.999 from 2.56 kimg",
        "same",
    ),
    ("Augmentation", "random flips; no DiffAugment or bCR on ImageNet (faces only)", "the same", "same"),
    (
        "Crop",
        "random crop of 0.875 of the shorter side, bicubic resize, every step",
        "ADM centre crop at prepare time (`scripts/prepare_dataset.py`); HiT's crop is not offered: it "
        "needs the full-size images decoded every step",
        "deliberate",
    ),
    (
        "Update order",
        "one simultaneous G and D step on the same fakes",
        "alternating D then G steps",
        "deliberate",
    ),
    (
        "ImageNet 256",
        "no result reported (HiT-B's 256-px layout is its FFHQ/CelebA-HQ model)",
        "`imagenet256` trains HiT-B's 256-px layout under the 128-px recipe: nothing in HiT to compare with",
        "deviation (no reference)",
    ),
    (
        "FID",
        "its own protocol (Keras InceptionV3, bilinear resize, validation split): 30.83 at 128 px",
        "standard TF-Inception protocol (docs/metrics.md): numbers are not comparable",
        "deviation (evaluation)",
    ),
]


def _m(x: float) -> str:
    return f"{x / 1e6:.2f}M"


def _g(x: float) -> str:
    return f"{x / 1e9:.2f}"


def _stage_table(resolution: int) -> list[str]:
    ours, hit = our_generator("hit_b", resolution), hit_generator(resolution)
    lines = [
        f"### {resolution} px",
        "",
        "| stage | width | depth | heads | window / grid | block | params (ours) | params (HiT-B) | GFLOPs (ours) | GFLOPs (HiT-B) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, h in zip(ours, hit):
        if "side" not in o:
            lines.append(
                f"| {o['name']} | | | | | | {_m(o['params'])} | {_m(h['params'])} | {_g(o['flops'])} | {_g(h['flops'])} |"
            )
            continue
        assert (o["width"], o["depth"], o["heads"], o["window"], o["grid"]) == (
            h["width"], h["depth"], h["heads"], h["window"], h["grid"],
        ), f"hit_b differs from HiT-B's layout at {o['name']}"  # fmt: skip
        wg = f"{o['window']} / {o['grid']}" if o["window"] else "- (no attention)"
        block = "MaxViT block (ours) / multi-axis Block (HiT)" if o["window"] else "per-pixel MLP (both)"
        lines.append(f"| {o['name']} | {o['width']} | {o['depth']} | {o['heads']} | {wg} | {block} | "
                     f"{_m(o['params'])} | {_m(h['params'])} | {_g(o['flops'])} | {_g(h['flops'])} |")  # fmt: skip
    og, hg = sum(r["params"] for r in ours), sum(r["params"] for r in hit)
    of, hf = sum(r["flops"] for r in ours), sum(r["flops"] for r in hit)
    lines.append(f"| **G total** | | | | | | **{_m(og)}** | **{_m(hg)}** | **{_g(of)}** | **{_g(hf)}** |")
    dp, df = our_discriminator("hit_b", resolution)
    hdp, hdf = hit_discriminator_params(resolution), hit_discriminator_flops(resolution)
    lines.append(f"| **D total** | | | | | | **{_m(dp)}** | **{_m(hdp)}** | **{_g(df)}** | **{_g(hdf)}** |")
    return lines


def _totals_table() -> list[str]:
    lines = [
        "| model | G @ 128 px | G @ 256 px | D @ 128 px | D @ 256 px | G GFLOPs @ 128 / 256 | D GFLOPs @ 128 / 256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, label in (
        ("hit_b", "`hit_b` (experiment=imagenet128/256)"),
        ("b", "`b` (parameter-matched)"),
    ):
        g = {r: our_generator(preset, r) for r in RESOLUTIONS}
        d = {r: our_discriminator(preset, r) for r in RESOLUTIONS}
        gp = [_m(sum(x["params"] for x in g[r])) for r in RESOLUTIONS]
        gf = " / ".join(_g(sum(x["flops"] for x in g[r])) for r in RESOLUTIONS)
        lines.append(f"| {label} | {gp[0]} | {gp[1]} | {_m(d[128][0])} | {_m(d[256][0])} | {gf} | "
                     f"{_g(d[128][1])} / {_g(d[256][1])} |")  # fmt: skip
    hg = {r: hit_generator(r) for r in RESOLUTIONS}
    lines.append(
        f"| HiT-B, ImageNet (latent 256, official code) | {_m(sum(x['params'] for x in hg[128]))} | "
        f"{_m(sum(x['params'] for x in hg[256]))} | {_m(hit_discriminator_params(128))} | "
        f"{_m(hit_discriminator_params(256))} | "
        + " / ".join(_g(sum(x["flops"] for x in hg[r])) for r in RESOLUTIONS)
        + f" | {_g(hit_discriminator_flops(128))} / {_g(hit_discriminator_flops(256))} |"
    )
    faces = [_m(sum(x["params"] for x in hit_generator(r, z_dim=512))) for r in RESOLUTIONS]
    lines.append(f"| HiT-B, FFHQ / CelebA-HQ (latent 512; D multiplier 2) | {faces[0]} | {faces[1]} | "
                 f"{_m(hit_discriminator_params(128, 2))} | {_m(hit_discriminator_params(256, 2))} | | |")  # fmt: skip
    return lines


def document() -> str:
    shallow = {
        r: sum(x["params"] for x in our_generator("hit_b", r, depths=[1 if w else d for w, d in zip(
            generator_preset("hit_b", r).window_sizes, generator_preset("hit_b", r).depths)]))
        for r in RESOLUTIONS
    }  # fmt: skip
    out = [
        "# maxvit-gan next to HiT-B",
        "",
        "<!-- Generated by `python scripts/hit_table.py --write`: edit the script, not this file. -->",
        "",
        "`experiment=imagenet128` / `imagenet256` train the `hit_b` preset: HiT-B's generator layout "
        "(official code, google-research/hit-gan) with MaxViT blocks in the attention stages, and HiT's "
        "ImageNet discriminator, under HiT's ImageNet training recipe. It is not HiT: the attention "
        "block is MaxViT's (the point of this project), and the list below says, point by point, what "
        "is the same, what differs on purpose and what differs otherwise. `b` is the other large "
        "preset: parameter-matched to HiT-B, with its own layout.",
        "",
        "HiT's numbers are computed from its code (layer by layer, trainable parameters: BatchNorm scale "
        "and offset, not its moving statistics); their sums are HiT's totals (32.87M / 35.73M generator, "
        "23.88M / 24.00M discriminator at 128 / 256 px, 256-d latent). Ours are measured on the modules. "
        "GFLOPs per image, one forward pass: 2 x multiply-adds of matmuls, convolutions and attention "
        "products, as `torch.utils.flop_counter.FlopCounterMode` counts them (norms, activations, "
        "softmax, resampling not counted); the same rules for HiT, by arithmetic. Each stage row "
        "includes the upsampling into the stage, its position embedding, cross-attention (+ MLP), "
        "blocks and to-RGB.",
        "",
        "## Totals",
        "",
        *_totals_table(),
        "",
        "HiT-B's 46.22M (the paper's figure) is its 256-px model with the 512-d latent of its face "
        "datasets; with ImageNet's 256-d latent the same layout has 35.73M. HiT reports no ImageNet-256 "
        "result.",
        "",
        "## Per stage (`hit_b` vs HiT-B)",
        "",
    ]
    for r in RESOLUTIONS:
        out += _stage_table(r) + [""]
    ours128, hit128 = our_generator("hit_b", 128), hit_generator(128)
    attn = [i for i, r in enumerate(hit128) if r.get("window")]
    ratio = {
        k: sum(ours128[i][k] for i in attn) / sum(hit128[i][k] for i in attn) for k in ("params", "flops")
    }
    out += [
        "A MaxViT block has two attention and two FFN sublayers and an MBConv; HiT's Block has one "
        "attention (both axes in parallel) and one MLP. With HiT's depths, `hit_b`'s attention stages "
        f"(8..64 px) have {ratio['params']:.1f}x HiT-B's parameters and {ratio['flops']:.1f}x its FLOPs "
        "(128 px). With one MaxViT block per attention "
        "stage (as many attention and FFN sublayers as HiT's two Blocks) it would have "
        f"{_m(shallow[128])} at 128 px and {_m(shallow[256])} at 256 px "
        "(e.g. `model.generator.depths=[1,1,1,1,2]` at 128 px; not a preset).",
        "",
        "## Point by point",
        "",
        "| what | HiT-B (official code, ImageNet) | ours (`experiment=imagenet128/256`) | |",
        "|---|---|---|---|",
    ]
    facts = dict(
        block_ratio=_count(MaxViTBlock(512, 16, 4, 2)) / hit_block_params(512, 16),
        b_128=_m(_count(Generator(generator_preset("b", 128)))),
        **{f"hit_b_{r}": _m(_count(Generator(generator_preset("hit_b", r)))) for r in RESOLUTIONS},
    )
    out += [f"| {what} | {hit} | {ours.format(**facts)} | {verdict} |" for what, hit, ours, verdict in POINTS]
    out += [
        "",
        "Options that select HiT's choices (`model.generator.*`, `model.discriminator.*`; the defaults "
        "keep the original generator and StyleGAN2 discriminator): `num_heads`, `highres_block=mlp`, "
        "`cross_attn_mlp=true`, `rgb_skip=hit`; `channel_base=16384` (HiT's channel multiplier 1; "
        "32768 = 2), `mbstd_group=0`, `from_rgb_kernel=3`, `blur_position=between`.",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(DOC.parents[1])}")
    args = ap.parse_args()
    torch.manual_seed(0)
    text = document()
    print(text)
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
