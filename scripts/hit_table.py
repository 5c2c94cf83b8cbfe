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
resampling and additions are not counted. The document also splits `hit_b`'s extra
parameters into blocks, cross-attention and the rest, and sets one MaxViT block next to one of
HiT's Blocks (multi-query as in HiT-B, and multi-head) at every attention stage.
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
    heads, window, grid, params, flops per image, and of params: ``blocks``, the stage's
    Blocks or MLPs, and ``cross``, its cross-attention Block). The pixel-shuffle dense into a
    stage is counted in that stage (as ours: HiT applies it at the end of the previous one)."""
    spec = HIT_B[resolution]
    c0 = spec["channels"][0]  # latent-token width (HiT: embedding_dim = the first stage's width)
    bn = lambda c: 2 * c  # noqa: E731  BatchNorm: scale and offset
    dense = lambda i, o: i * o + o  # noqa: E731
    mlp_params = lambda c: bn(c) + dense(c, 4 * c) + dense(4 * c, c)  # noqa: E731  layers.MLP
    mlp_flops = lambda n, c: 2 * n * c * 4 * c * 2  # noqa: E731

    attention_params = _hit_attention_params

    rows = [dict(name="input: z -> 8x8 map, latent tokens", params=dense(z_dim, 64 * c0) + dense(z_dim, 16 * c0)
                 + LATENT_TOKENS * c0 + bn(c0), flops=2 * z_dim * 64 * c0 + 2 * z_dim * 16 * c0,
                 blocks=0, cross=0)]  # fmt: skip
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
        cross = bn(c) + attention_params(c, heads, c0) + mlp_params(c)
        params += cross
        flops += (
            2 * n * c * c * 2
            + 2 * 2 * LATENT_TOKENS * c0 * kd
            + 2 * 2 * n * LATENT_TOKENS * c
            + mlp_flops(n, c)
        )
        blocks = depth * (mlp_params(c) if p is None else hit_block_params(c, heads))
        params += blocks
        for _ in range(depth):
            if p is None:  # attention-free stage: layers.MLP only
                flops += mlp_flops(n, c)
            else:  # multi-axis Block: half the heads within p x p blocks, half across them (stride p)
                local, dilated = p * p, (side // p) ** 2
                flops += (
                    2 * n * c * c * 2 + 2 * 2 * n * c * kd + 2 * n * c * (local + dilated) + mlp_flops(n, c)
                )
        if p is None:  # SkipToRGB: norm + dense to RGB
            params += bn(c) + dense(c, 3)
            flops += 2 * n * c * 3
        rows.append(dict(name=f"{side} px", side=side, width=c, depth=depth, heads=heads,
                         window=p or 0, grid=side // p if p else 0, params=params, flops=flops,
                         blocks=blocks, cross=cross))  # fmt: skip
        prev = c
    return rows


def _hit_attention_params(c: int, heads: int, kv_dim: int, multi_query: bool = True) -> int:
    """layers.MultiAxisAttention: query and output c -> c; key and value kv_dim -> one head of c / heads
    (HiTGenerator's attn_type="multi_query") or all heads (its "multi_head" option)."""
    kd = c // heads
    kv_heads = 1 if multi_query else heads
    return 2 * (c * c + c) + 2 * kv_heads * (kv_dim * kd + kd)


def hit_block_params(c: int, heads: int, multi_query: bool = True) -> int:
    """One self-attention Block of HiT: BatchNorm, multi-axis attention, MLP (BatchNorm, 4x, back).
    ``multi_query=False``: the same Block with multi-head attention (HiT's attn_type="multi_head")."""
    attention = _hit_attention_params(c, heads, c, multi_query)
    return 2 * c + attention + 2 * c + (c * 4 * c + 4 * c) + (4 * c * c + c)


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
    """Rows as :func:`hit_generator`, measured on our Generator (batch 1): ``blocks`` are the
    stage's MaxViT blocks (or per-pixel MLPs), ``cross`` its cross-attention and the MLP after it."""
    cfg = generator_preset(preset, resolution, **overrides)
    g = Generator(cfg).eval()
    flops = _flop_counts(g, torch.randn(1, cfg.z_dim))
    rows, stage_params, stage_flops = [], 0, 0
    for i, stage in enumerate(g.stages):
        # to-RGB runs from Generator.forward, outside the stage's own forward: add it by name
        f = flops.get(f"Generator.stages.{i}", 0) + flops.get(f"Generator.stages.{i}.to_rgb", 0)
        p = _count(stage)
        heads = cfg.num_heads[i] if cfg.num_heads else max(1, cfg.channels[i] // cfg.head_dim)
        cross = sum(_count(m) for m in (stage.cross_attn, stage.cross_mlp) if m is not None)
        rows.append(dict(name=f"{stage.side} px", side=stage.side, width=cfg.channels[i], depth=cfg.depths[i],
                         heads=heads, window=cfg.window_sizes[i], grid=cfg.grid_sizes[i], params=p, flops=f,
                         blocks=_count(stage.blocks), cross=cross))  # fmt: skip
        stage_params, stage_flops = stage_params + p, stage_flops + f
    stem = dict(name="input: z -> 8x8 map, latent tokens", params=_count(g) - stage_params,
                flops=flops["Generator"] - stage_flops, blocks=0, cross=0)  # fmt: skip
    return [stem, *rows]


def generator_parts(rows: list[dict]) -> dict[str, int]:
    """A generator's parameters split into its blocks, its cross-attention (with the MLP after it)
    and the rest (input layers, latent tokens, position embeddings, upsampling, to-RGB)."""
    total = sum(r["params"] for r in rows)
    blocks, cross = sum(r["blocks"] for r in rows), sum(r["cross"] for r in rows)
    return dict(blocks=blocks, cross=cross, rest=total - blocks - cross, total=total)


def generator_difference(resolution: int) -> dict[str, int]:
    """`hit_b` minus HiT-B (ImageNet's 256-d latent), part by part (:func:`generator_parts`)."""
    ours = generator_parts(our_generator("hit_b", resolution))
    hit = generator_parts(hit_generator(resolution))
    return {k: ours[k] - hit[k] for k in ours}


def block_ratios(resolution: int = 128) -> list[dict]:
    """Per attention stage of `hit_b`: one MaxViT block's parameters next to one of HiT's Blocks
    (multi-query, as HiT-B) and the same Block with multi-head attention, and the two ratios."""
    cfg = generator_preset("hit_b", resolution)
    out = []
    for i, (c, heads, w, g) in enumerate(zip(cfg.channels, cfg.num_heads, cfg.window_sizes, cfg.grid_sizes)):
        if not w:
            continue
        ours = _count(MaxViTBlock(c, heads, w, g, cfg.mlp_ratio, cfg.mbconv_expand))
        mq, mh = hit_block_params(c, heads), hit_block_params(c, heads, multi_query=False)
        out.append(dict(side=8 * 2**i, width=c, heads=heads, window=w, grid=g, ours=ours, hit=mq, hit_mh=mh,
                        ratio=ours / mq, ratio_mh=ours / mh))  # fmt: skip
    return out


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
        "position bias, full multi-head): {ratio_512_16:.2f}x the parameters of HiT's Block at width 512 with "
        "16 heads, {ratio_lo:.2f}-{ratio_hi:.2f}x at the other attention stages, {mh_lo:.2f}-{mh_hi:.2f}x a "
        "multi-head HiT Block (tables above); hence the larger generator",
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
        "the same tokens; MLP after the cross-attention (`cross_attn_mlp=true`); multi-head keys and values "
        "(HiT: multi-query, one key and one value head) and a LayerNorm of the tokens in every stage: "
        "+{cross_128} parameters at 128 px",
        "deliberate (multi-head, as in Max-SA)",
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
        "{hit_b_128} / {hit_b_256} (`hit_b`): +{diff_128} at 128 px = {blocks_128} blocks + {cross_128} "
        "cross-attention ({rest_128} parameters elsewhere); `b` matches HiT-B's count at 128 px ({b_128}), "
        "not its layout",
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
        "Conditioning",
        "unconditional: the input pipeline keeps the image only (`utils/datasets.py`), G takes z only",
        "unconditional (`data.conditional=false` in `conf/experiment/imagenet.yaml`)",
        "same",
    ),
    (
        "Precision",
        "float32: the code sets no dtype policy (`run.py`, `trainers/`, `models/`); its README trains on "
        "TPUv2, whose matmuls round float32 inputs to bfloat16 by default (float32 accumulation; Cloud TPU "
        "documentation)",
        "bf16 autocast (`train.mixed_precision=bf16`); weights, gradients and Adam state float32",
        "deliberate (speed; `train.mixed_precision=no` trains in float32)",
    ),
    (
        "Optimiser, batch, length",
        "Adam 1e-4 (G and D), betas (0, 0.99), batch 256, 1M steps",
        "the same (256,000 kimg)",
        "same",
    ),
    (
        "Adam epsilon",
        "1e-7 (`tf.keras.optimizers.Adam`'s default: `trainers/gan_trainer.py` sets only lr and betas), "
        "Keras's \"epsilon hat\" (added to the uncorrected sqrt(v): the same as PyTorch's eps once "
        "0.99^t is small, after a few hundred steps)",
        "1e-8 (`optim.eps`, PyTorch's default; the experiment does not set it)",
        "deviation (`optim.eps=1e-7` matches)",
    ),
    (
        "Loss, R1, EMA",
        "non-saturating; R1 cost 10 every step; EMA 0.999 from step 10",
        "non-saturating; R1 gamma 20 every step (the same penalty); EMA 0.999 from 2.56 kimg",
        "same",
    ),
    ("Augmentation", "random flips; no DiffAugment or bCR on ImageNet (faces only)", "the same", "same"),
    (
        "Crop (framing)",
        "a square of 0.875 of the shorter side at a random place, bicubic (antialiased) resize, every step; "
        "FID reference: the centre 0.875 square of 50,000 validation images",
        "ADM centre crop at prepare time (`data/transforms.py` `center_crop_arr`): the whole shorter "
        "side, so objects are 0.875x the size they have in HiT's images; a centre crop of 0.875 at prepare "
        "time would match HiT's framing (not offered), HiT's random placement needs the full-size images "
        "decoded every step",
        "deviation (framing); deliberate (prepare time)",
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
        "Checkpoint selection",
        "`run.py --mode=eval` follows training's checkpoints (every 2,000 steps in the ImageNet command), "
        "scores each with FID of the EMA G against the validation split and keeps the lowest in "
        "`best_checkpoint/` (`trainers/base_trainer.py`: `evaluate`, `save_best_checkpoint`); the code "
        "does not say which checkpoint the paper's number is from",
        "FID10k against the training data every 5,000 kimg; the best-FID checkpoint is kept besides the "
        "newest 2; `maxvit-gan evaluate` scores the run's latest EMA weights unless `checkpoint=` names one",
        "deviation (evaluation: a best-of-N FID on the reference set is optimistic)",
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


def _signed(x: int) -> str:
    return f"{x / 1e6:+.2f}M ({x:+,})" if abs(x) >= 5000 else f"{x:+,}"


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


def _difference_section() -> list[str]:
    """Where `hit_b`'s extra parameters are, and one block next to one of HiT's, stage by stage."""
    ours = {r: generator_parts(our_generator("hit_b", r)) for r in RESOLUTIONS}
    hit = {r: generator_parts(hit_generator(r)) for r in RESOLUTIONS}
    diff = {r: generator_difference(r) for r in RESOLUTIONS}
    g = Generator(generator_preset("hit_b", 128))
    token_norms = sum(_count(s.cross_attn.norm_context) for s in g.stages)
    # blocks of the attention-free stages (per-pixel MLPs), ours minus HiT's
    mlp_diff = sum(o["blocks"] - h["blocks"] for o, h in zip(our_generator("hit_b", 128), hit_generator(128))
                   if "side" in o and not o["window"])  # fmt: skip
    lines = [
        "## Where the generator difference is",
        "",
        "| part | `hit_b` @ 128 | HiT-B @ 128 | difference @ 128 | `hit_b` @ 256 | HiT-B @ 256 | difference @ 256 |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = dict(blocks="blocks (MaxViT / HiT's Block; per-pixel MLPs)", cross="cross-attention + its MLP",
                  rest="the rest (input, tokens, positions, upsampling, to-RGB)", total="**G total**")  # fmt: skip
    for k, label in labels.items():
        cells = " | ".join(f"{_m(ours[r][k])} | {_m(hit[r][k])} | {_signed(diff[r][k])}" for r in RESOLUTIONS)
        lines.append(f"| {label} | {cells} |")
    d = diff[128]
    lines += [
        "",
        f"At 128 px `hit_b` has {_m(d['total'])} more parameters than HiT-B: {_m(d['blocks'])} in the blocks "
        f"(the per-pixel MLPs of the attention-free stages: {mlp_diff:+,}), "
        f"{_m(d['cross'])} in the cross-attention (multi-head keys and values from the 512-d tokens where "
        f"HiT has one head, and a LayerNorm of the tokens in every stage: {token_norms:,} of it) and "
        f"{d['rest']:+,} elsewhere (HiT's one BatchNorm of the tokens, which ours replaces by those "
        "LayerNorms).",
        "",
        "One block, per attention stage (HiT's Block: norm, multi-axis attention, MLP; HiT-B uses it "
        "multi-query, HiT's code also has a multi-head option):",
        "",
        "| stage | width | heads | window / grid | MaxViT block | HiT Block (multi-query) | ratio | "
        "HiT Block (multi-head) | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for b in block_ratios(128):
        lines.append(f"| {b['side']} px | {b['width']} | {b['heads']} | {b['window']} / {b['grid']} | "
                     f"{_m(b['ours'])} | {_m(b['hit'])} | {b['ratio']:.2f}x | {_m(b['hit_mh'])} | "
                     f"{b['ratio_mh']:.2f}x |")  # fmt: skip
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
        *_difference_section(),
        "",
        "## Point by point",
        "",
        "| what | HiT-B (official code, ImageNet) | ours (`experiment=imagenet128/256`) | |",
        "|---|---|---|---|",
    ]
    ratios, diff = block_ratios(128), generator_difference(128)
    others = [b for b in ratios if (b["width"], b["heads"]) != (512, 16)]
    facts = dict(
        ratio_512_16=next(b["ratio"] for b in ratios if (b["width"], b["heads"]) == (512, 16)),
        ratio_lo=min(b["ratio"] for b in others),
        ratio_hi=max(b["ratio"] for b in others),
        mh_lo=min(b["ratio_mh"] for b in ratios),
        mh_hi=max(b["ratio_mh"] for b in ratios),
        diff_128=_m(diff["total"]),
        blocks_128=_m(diff["blocks"]),
        cross_128=_m(diff["cross"]),
        rest_128=f"{diff['rest']:+,}",
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
