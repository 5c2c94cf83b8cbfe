"""The generator kinds of the quality benchmark (model.generator.arch) and the ICNR upsampler:
each trains, checkpoints, resumes bit-exactly and samples through the product's own paths."""

import shutil
from dataclasses import replace

import pytest
import torch
from train_utils import fresh_trainer, model_state, run_config

from maxvit_gan import load_generator
from maxvit_gan.models import Generator, generator_preset
from maxvit_gan.models.generator import Upsample
from maxvit_gan.nn import MaxViTBlock, MBConv, ModulatedResBlock
from maxvit_gan.sampling import sample_grid

FAST = ["train.kimg=0.064", "train.checkpoint_kimg=0.032", "train.grid_kimg=1", "train.tick_kimg=0.032"]
DEMO_G = ["model.generator.channels=[64,64,32]", "model.generator.window_sizes=[4,4,0]",
          "model.generator.grid_sizes=[2,4,0]"]  # fmt: skip


def _blocks(G, kind):
    return [m for m in G.modules() if isinstance(m, kind)]


def test_arch_selects_the_stage_blocks():
    cfg = replace(generator_preset("tiny", 32, 4), channels=[64, 64, 32], window_sizes=[4, 4, 0], grid_sizes=[2, 4, 0])
    maxvit, mbconv, conv = (Generator(replace(cfg, arch=a)) for a in ("maxvit", "mbconv", "conv"))
    assert len(_blocks(maxvit, MaxViTBlock)) == 2 and not _blocks(maxvit, ModulatedResBlock)
    assert not _blocks(mbconv, MaxViTBlock) and len([s for s in mbconv.stages if s.cross_attn is not None]) == 3
    assert len(_blocks(conv, ModulatedResBlock)) == 3 and not _blocks(conv, MBConv)
    assert all(s.cross_attn is None for s in conv.stages)
    # the conv baseline is parameter-matched to the MaxViT generator at the same widths (within 10%)
    n = [sum(p.numel() for p in g.parameters()) for g in (maxvit, conv)]
    assert abs(n[1] / n[0] - 1) < 0.10, n
    z, y = torch.randn(2, cfg.z_dim), torch.tensor([0, 3])
    for g in (maxvit, mbconv, conv):  # same output contract
        assert g(z, y).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="^model.generator.arch: unknown 'vit'"):
        Generator(replace(cfg, arch="vit"))
    with pytest.raises(ValueError, match="^model.generator.upsample: unknown 'bicubic'"):
        Generator(replace(cfg, upsample="bicubic"))


def test_icnr_upsampler_starts_without_checkerboard():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 4, 4)
    icnr = Upsample(16, 8, "icnr")
    y = icnr(x)
    assert y.shape == (2, 8, 8, 8)
    cells = y.unfold(2, 2, 2).unfold(3, 2, 2)  # (B, C, 4, 4, 2, 2): the 2x2 cell of each input pixel
    assert torch.allclose(cells, cells[..., :1, :1].expand_as(cells))  # the four sub-pixels are equal
    shuffle = Upsample(16, 8, "pixel_shuffle")(x).unfold(2, 2, 2).unfold(3, 2, 2)
    assert not torch.allclose(shuffle, shuffle[..., :1, :1].expand_as(shuffle))  # HiT's starts with one


def test_bilinear_upsampler_has_no_sub_pixel_parameters():
    """Whatever its weights, the bilinear upsampler maps a constant map to a constant map and
    commutes with shifts by 2 pixels: no output position is special, so no fixed 2x2 pattern."""
    up = Upsample(16, 8, "bilinear")
    with torch.no_grad():
        for p in up.parameters():
            p.copy_(torch.randn_like(p))
        const = up(torch.ones(1, 16, 6, 6) * torch.randn(1, 16, 1, 1))
        assert torch.allclose(const, const[..., :1, :1].expand_as(const), atol=1e-5)
        x = torch.randn(1, 16, 8, 8)
        shifted = up(torch.roll(x, 1, dims=3))[..., 4:-4]  # away from the wrapped border
        assert torch.allclose(shifted, torch.roll(up(x), 2, dims=3)[..., 4:-4], atol=1e-5)
    assert sum(p.numel() for p in up.parameters()) == 16 * 8 + 8


def test_output_function_clamps_or_squashes_the_same_rgb():
    """output=clamp returns the linear output clamped to [-1, 1], with no gradient where it was
    beyond; tanh squashes it; an unknown name is refused by name."""
    torch.manual_seed(0)
    base = Generator(generator_preset("tiny", 32, arch="conv"))
    with torch.no_grad():  # a last to-RGB large enough that part of the image is beyond [-1, 1]
        for p in base.stages[-1].to_rgb.parameters():
            p.mul_(8.0)
    z = torch.randn(4, base.z_dim)
    linear = base(z)
    assert (linear.abs() > 1).float().mean() > 0.05
    for output, expect in (("clamp", linear.clamp(-1, 1)), ("tanh", torch.tanh(linear))):
        g = Generator(replace(base.config, output=output))
        g.load_state_dict(base.state_dict())
        zz = z.clone().requires_grad_(True)
        out = g(zz)
        assert torch.allclose(out, expect, atol=1e-6)
        if output == "clamp":
            grad = torch.autograd.grad(out.sum(), g.stages[-1].to_rgb.parameters(), retain_graph=True)
            sel = (linear.abs() > 1).float()  # only the pixels inside [-1, 1] pull the weights
            pixel = torch.autograd.grad((out * sel).sum(), g.stages[-1].to_rgb.parameters())
            assert all(p.abs().max() == 0 for p in pixel) and any(p.abs().max() > 0 for p in grad)
    with pytest.raises(ValueError, match="model.generator.output"):
        Generator(replace(base.config, output="sigmoid"))


_state = model_state


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mbconv", "conv"])
def test_generator_kind_trains_resumes_bit_exact_and_samples(tmp_path, arch):
    keys = [*FAST, *DEMO_G, f"model.generator.arch={arch}", "model.generator.upsample=icnr", "loss.class_weight=0.3"]
    straight = fresh_trainer(run_config(tmp_path / "straight", *keys))
    straight.train()
    # the first half: the straight run's own step-4 checkpoint (nothing before step 4 depends on
    # train.kimg); resuming a checkpoint that ended a run: tests/test_train.py, one process
    shutil.copytree(tmp_path / "straight", tmp_path / "halves", ignore=shutil.ignore_patterns("step-000000008"))
    resumed = fresh_trainer(run_config(tmp_path / "halves", *keys, "resume=auto"))
    resumed.train()
    assert resumed.resume_choice.path.name == "step-000000004"
    assert resumed.state["step"] == straight.state["step"] == 8
    a, b = _state(straight), _state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    G = load_generator(tmp_path / "halves")
    assert G.config.arch == arch and G.config.upsample == "icnr"
    grid = sample_grid(G, list(range(8)), rows=4)
    assert grid.images.shape == (8, 3, 32, 32) and grid.labels == [0, 0, 1, 1, 2, 2, 3, 3]
    assert grid.images.float().std() > 0
