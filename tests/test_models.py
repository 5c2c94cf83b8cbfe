"""Generator, discriminator, EMA, presets and the safetensors export."""

import pytest
import torch

from maxvit_gan.loading import load_generator
from maxvit_gan.models import (
    EMA,
    Discriminator,
    Generator,
    ModelConfig,
    build_models,
    discriminator_preset,
    generator_preset,
    save_generator,
)


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("res", [32, 64, 128, 256])
@pytest.mark.parametrize("num_classes", [0, 5])
def test_shapes_all_resolutions(res, num_classes):
    g, d = build_models(ModelConfig(preset="tiny"), res, num_classes)
    z = torch.randn(2, g.z_dim)
    y = torch.randint(0, max(num_classes, 1), (2,)) if num_classes else None
    with torch.no_grad():
        x = g(z, y)
        logits = d(x, y)
    assert x.shape == (2, 3, res, res)
    assert logits.shape == (2,)
    assert torch.isfinite(x).all() and torch.isfinite(logits).all()


@pytest.mark.parametrize("num_classes", [0, 4])
def test_every_parameter_gets_a_gradient(num_classes):
    g, d = build_models(ModelConfig(preset="tiny"), 32, num_classes)
    # zero-initialised output projections block gradients to the layers before them at
    # step 0; perturb them as one optimizer step would
    for m in g.modules():
        if hasattr(m, "project"):
            torch.nn.init.normal_(m.project.weight, std=0.02)
    z = torch.randn(4, g.z_dim)
    y = torch.arange(4) % max(num_classes, 1) if num_classes else None
    d(g(z, y), y).square().sum().backward()
    for name, net in (("G", g), ("D", d)):
        missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not missing, f"{name} parameters without gradient: {missing}"


def test_discriminator_class_head():
    _, d = build_models(ModelConfig(preset="tiny"), 32, 4, d_class_head=True)
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 3])
    logits, cls = d(x, y, class_logits=True)
    assert logits.shape == (3,) and cls.shape == (3, 4)
    assert torch.equal(logits, d(x, y))  # the head does not change the adversarial logit
    torch.nn.functional.cross_entropy(cls, y).backward()
    assert d.class_head.weight.grad.abs().sum() > 0 and d.from_rgb.weight.grad.abs().sum() > 0
    _, plain = build_models(ModelConfig(preset="tiny"), 32, 4)
    with pytest.raises(ValueError, match="class head"):
        plain(x, y, class_logits=True)
    with pytest.raises(ValueError, match="num_classes=0"):
        build_models(ModelConfig(preset="tiny"), 32, 0, d_class_head=True)


def test_conditional_generator_uses_labels():
    g = Generator(generator_preset("tiny", 32, num_classes=3))
    z = torch.randn(2, g.z_dim)
    with torch.no_grad():
        a = g(z, torch.tensor([0, 0]))
        b = g(z, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="labels"):
        g(z)


def test_bad_inputs_name_the_shape():
    g, d = build_models(ModelConfig(preset="tiny"), 32)
    with pytest.raises(ValueError, match=r"\(B, 128\)"):
        g(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        d(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="model.preset"):
        build_models(ModelConfig(preset="xl"), 32)
    with pytest.raises(ValueError, match="power of two"):
        build_models(ModelConfig(preset="tiny"), 48)


def test_preset_sizes():
    assert _params(Generator(generator_preset("tiny", 32))) < 3e6
    # b is parameter-matched to HiT-B (official code): 32.87M at 128 px; at 256 px to the 46.22M of
    # HiT-B with a 512-d latent (FFHQ setting; 35.73M with ImageNet's 256-d latent), docs/hit.md
    assert _params(Generator(generator_preset("b", 128))) == pytest.approx(32.87e6, rel=0.10)
    assert _params(Generator(generator_preset("b", 256))) == pytest.approx(46.22e6, rel=0.10)
    assert _params(Generator(generator_preset("s", 128))) < _params(Generator(generator_preset("b", 128)))
    assert _params(Generator(generator_preset("l", 128))) > _params(Generator(generator_preset("b", 128)))


def test_high_resolution_stages_have_no_self_attention_and_skip_to_rgb():
    g = Generator(generator_preset("tiny", 256))
    sides = [s.side for s in g.stages]
    assert sides == [8, 16, 32, 64, 128, 256]
    for stage in g.stages:
        has_attn = any(hasattr(b, "block_attn") for b in stage.blocks)
        assert has_attn == (stage.side < 128)
    assert [s.to_rgb is not None for s in g.stages] == [False, False, False, True, True, True]


def test_ema_lerps_params_and_copies_buffers():
    net = torch.nn.BatchNorm1d(3)
    ema = EMA(net)
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.running_mean.fill_(5.0)
    ema.update(net, beta=0.75)
    assert torch.allclose(ema.module.weight, torch.full((3,), 0.75 * 1.0 + 0.25 * 2.0))
    assert torch.equal(ema.module.running_mean, net.running_mean)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_save_load_generator_round_trip(tmp_path):
    g = Generator(generator_preset("tiny", 32, num_classes=2)).eval()
    save_generator(g, tmp_path / "g.safetensors", {"step": 7})
    g2 = load_generator(tmp_path / "g.safetensors")
    z, y = torch.randn(3, g.z_dim), torch.tensor([0, 1, 1])
    with torch.no_grad():
        assert torch.equal(g(z, y), g2(z, y))
    with pytest.raises(FileNotFoundError, match="generator_ema.safetensors"):
        load_generator(tmp_path / "nothing_here")


def test_discriminator_minibatch_stddev_odd_batch():
    d = Discriminator(discriminator_preset("tiny", 32))
    assert d(torch.randn(3, 3, 32, 32)).shape == (3,)
