"""HiT's options (issue #13): per-pixel MLP stages, FFN after cross-attention, HiT's RGB skip path,
HiT's ImageNet discriminator; the hit_b preset and experiment=imagenet128 end to end; the HiT
numbers of scripts/hit_table.py (docs/hit.md)."""

import json
import runpy
import time

import numpy as np
import pytest
import torch
from PIL import Image
from train_utils import ROOT, fresh_trainer

from maxvit_gan.config import SampleConfig, compose
from maxvit_gan.data.prepare import prepare_dataset
from maxvit_gan.models import (
    Discriminator,
    Generator,
    discriminator_preset,
    generator_preset,
    resolve_model_configs,
)
from maxvit_gan.models.generator import PixelMLP
from maxvit_gan.sampling.command import run_sample

# HiT-B in HiT's official code (models/generators.py), by output size: widths, blocks, heads per
# stage (8 px up), block size (None = attention-free stage)
HIT_B = {
    128: ([512, 512, 256, 128, 128], [2, 2, 2, 2, 2], [16, 8, 4, 4, 4], [4, 4, 8, 8, None]),
    256: ([512, 512, 256, 128, 64, 64], [2, 2, 2, 2, 1, 1], [16, 8, 4, 4, 4, 4], [4, 4, 8, 8, None, None]),
}
HIT_D = {128: 23.88e6, 256: 24.00e6}  # HiT's StyleGANDiscriminator, channel multiplier 1


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("resolution", [128, 256])
def test_imagenet_experiment_has_hit_b_layout_and_hits_discriminator(resolution):
    cfg = compose("train", [f"experiment=imagenet{resolution}"])
    g, d = resolve_model_configs(cfg.model, cfg.data.resolution)
    widths, depths, heads, patch = HIT_B[resolution]
    assert (g.channels, g.depths, g.num_heads, g.z_dim) == (widths, depths, heads, 256)
    assert g.window_sizes == [p or 0 for p in patch]
    assert g.grid_sizes == [8 * 2**i // p if p else 0 for i, p in enumerate(patch)]
    assert (g.highres_block, g.cross_attn_mlp, g.rgb_skip) == ("mlp", True, "hit")
    assert (d.mbstd_group, d.from_rgb_kernel, d.blur_position) == (0, 3, "between")
    with torch.device("meta"):
        assert _count(Discriminator(d)) == pytest.approx(HIT_D[resolution], rel=0.01)
        G = Generator(g)
    assert [s.to_rgb is not None for s in G.stages] == [p is None for p in patch]
    for stage, p in zip(G.stages, patch):
        assert all(isinstance(b, PixelMLP) for b in stage.blocks) == (p is None)
        assert stage.cross_mlp is not None


def test_hit_numbers_of_the_doc_script_match_hits_published_totals():
    hit = runpy.run_path(str(ROOT / "scripts" / "hit_table.py"))
    for (res, z), total in {
        (128, 256): 32.87,
        (256, 256): 35.73,
        (128, 512): 43.35,
        (256, 512): 46.22,
    }.items():
        assert round(sum(s["params"] for s in hit["hit_generator"](res, z)) / 1e6, 2) == total
    for res, total in HIT_D.items():
        assert round(hit["hit_discriminator_params"](res) / 1e6, 2) == total / 1e6
        assert hit["hit_discriminator_params"](res) == _count(
            Discriminator(discriminator_preset("hit_b", res))
        )


def test_pixel_mlp_stage_mixes_no_pixels_and_hit_skip_is_nearest():
    g = Generator(
        generator_preset("tiny", 128, highres_block="mlp", cross_attn_mlp=True, rgb_skip="hit")
    ).eval()
    assert [s.to_rgb is not None for s in g.stages] == [False, False, False, False, True]
    stage = g.stages[-1]
    x = torch.randn(1, stage.pos_embed.shape[1], 128, 128)
    y = x.clone()
    y[..., 5, 7] += 1.0
    with torch.no_grad():
        changed = (stage.blocks[0](x) - stage.blocks[0](y)).abs().sum(1)[0] > 0
    assert changed.nonzero().tolist() == [[5, 7]]  # a per-pixel MLP: no spatial mixing
    # the default keeps the original generator: MBConv stages, to-RGB at 64 px too
    base = Generator(generator_preset("tiny", 128))
    assert [s.to_rgb is not None for s in base.stages] == [False, False, False, True, True]
    assert base.stages[0].cross_mlp is None


def test_hit_options_train_every_parameter():
    g = Generator(generator_preset("tiny", 32, highres_block="mlp", cross_attn_mlp=True, rgb_skip="hit"))
    d = Discriminator(
        discriminator_preset("tiny", 32, from_rgb_kernel=3, blur_position="between", mbstd_group=0)
    )
    for m in g.modules():
        if hasattr(m, "project"):  # zero-initialised MBConv projections: perturb as one step would
            torch.nn.init.normal_(m.project.weight, std=0.02)
    d(g(torch.randn(2, g.z_dim))).square().sum().backward()
    for name, net in (("G", g), ("D", d)):
        missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not missing, f"{name} parameters without gradient: {missing}"


def test_bad_hit_option_values_are_errors():
    with pytest.raises(ValueError, match="highres_block"):
        Generator(generator_preset("tiny", 32, highres_block="conv"))
    with pytest.raises(ValueError, match="rgb_skip"):
        Generator(generator_preset("tiny", 32, rgb_skip="ours"))
    with pytest.raises(ValueError, match="num_heads"):
        Generator(generator_preset("tiny", 32, num_heads=[3, 2, 1]))
    with pytest.raises(ValueError, match="blur_position"):
        Discriminator(discriminator_preset("tiny", 32, blur_position="before"))
    with pytest.raises(ValueError, match="from_rgb_kernel"):
        Discriminator(discriminator_preset("tiny", 32, from_rgb_kernel=5))


def _tiny_zip(tmp_path, n=4, side=160):
    src = tmp_path / "images"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side + 32, 3), dtype=np.uint8)).save(src / f"{i}.png")
    dest = tmp_path / "in128.zip"
    prepare_dataset(str(src), str(dest), resolution=128, workers=0, progress=False)
    return dest


@pytest.mark.slow
def test_imagenet128_experiment_runs_end_to_end(tmp_path):
    """The flagship config, as is, for 2 steps of batch 2 on a prepared zip: train, checkpoint, sample."""
    t0 = time.perf_counter()
    run = tmp_path / "run"
    cfg = compose("train", [
        "experiment=imagenet128",
        f"data.path={_tiny_zip(tmp_path)}",
        "data.num_workers=0",
        "train.batch_size=2",
        "train.kimg=0.004",  # 2 steps
        "train.tick_kimg=0.004",
        "train.grid_kimg=1",  # snapshots only at the start and the end
        "train.checkpoint_kimg=1",  # one checkpoint, at the end
        "train.ema_start_kimg=0.002",
        "train.mixed_precision=no",
        "train.grid_rows=1",
        "train.grid_cols=2",
        "train.log_with=none",
        "metrics.fid.every_kimg=0",
    ])  # fmt: skip
    cfg.run_dir = str(run)
    trainer = fresh_trainer(cfg)
    trainer.train()
    assert trainer.state["step"] == 2
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000000002"]
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["loss_D"] == rec["loss_D"] and rec["loss_G"] == rec["loss_G"]  # not NaN
    out = run_sample(SampleConfig(run=str(run), seeds="0-1", out=str(tmp_path / "grid.png"), device="cpu"))
    assert Image.open(out[0]).size == (2 * 128, 128)
    print(f"imagenet128 end to end: {time.perf_counter() - t0:.1f} s")


def test_hit_doc_is_generated_and_carries_hits_totals():
    doc = (ROOT / "docs" / "hit.md").read_text()
    assert "scripts/hit_table.py --write" in doc
    for number in ("32.87M", "35.73M", "23.88M", "24.00M"):
        assert f"**{number}**" in doc  # HiT-B's G and D totals in the per-stage tables


def test_generator_difference_decomposes_and_block_ratios_are_the_docs():
    """hit_b minus HiT-B = blocks + cross-attention + rest; the per-block ratios docs/hit.md prints."""
    hit = runpy.run_path(str(ROOT / "scripts" / "hit_table.py"))
    for res in (128, 256):
        diff = hit["generator_difference"](res)
        assert diff["blocks"] + diff["cross"] + diff["rest"] == diff["total"]
        ours = _count(Generator(generator_preset("hit_b", res)))
        theirs = sum(s["params"] for s in hit["hit_generator"](res))
        assert diff["total"] == ours - theirs
        assert diff["rest"] == -2 * 512  # only HiT's BatchNorm of the latent tokens is outside both
        assert diff["blocks"] > 20 * diff["cross"] > 0  # the MaxViT blocks make the difference
    ratios = {(b["width"], b["heads"]): b for b in hit["block_ratios"](128)}
    assert sorted(ratios) == [(128, 4), (256, 4), (512, 8), (512, 16)]
    for b in ratios.values():  # a multi-head HiT Block is larger, so the ratio against it is smaller
        assert b["hit_mh"] > b["hit"] and b["ratio_mh"] < b["ratio"]
        assert b["ratio"] == b["ours"] / b["hit"]
    top = ratios[(512, 16)]
    assert max(b["ratio"] for b in ratios.values()) == top["ratio"]  # the largest ratio is at 512 / 16 only
    doc = (ROOT / "docs" / "hit.md").read_text()
    assert f"{top['ratio']:.2f}x the parameters of HiT's Block at width 512 with 16 heads" in doc
    for b in ratios.values():
        assert f"| {b['width']} | {b['heads']} | {b['window']} / {b['grid']} | " in doc
        assert f"| {b['ratio']:.2f}x |" in doc and f"| {b['ratio_mh']:.2f}x |" in doc
    d128 = hit["generator_difference"](128)
    assert f"+{d128['total'] / 1e6:.2f}M at 128 px = {d128['blocks'] / 1e6:.2f}M blocks" in doc
