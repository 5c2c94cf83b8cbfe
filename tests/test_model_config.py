"""`model.*` from YAML down to the module constructors: one name per setting, presets, experiments."""

from dataclasses import asdict, fields

import pytest
import torch

from maxvit_gan.config import compose
from maxvit_gan.models import (
    PRESETS,
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    ModelConfig,
    build_models,
    resolve_model_configs,
)
from maxvit_gan.models.config import DATA_FIELDS

# Exact parameter counts (G, D) of each preset and resolution, unconditional, as the code built
# them before the model settings were renamed (the README table, scripts/param_table.py, rounds them).
PARAMS = {
    ("tiny", 32): (1948953, 871585),
    ("tiny", 128): (2383578, 880841),
    ("tiny", 256): (3438993, 881301),
    ("s", 32): (16264595, 21507073),
    ("s", 128): (19167286, 23882369),
    ("s", 256): (23449097, 24001089),
    ("b", 32): (29497803, 21507073),
    ("b", 128): (33875294, 28389121),
    ("b", 256): (47083329, 28864129),
    ("hit_b", 128): (63231299, 23880833),  # D: HiT's ImageNet D, 23.88M as in HiT's code
    ("hit_b", 256): (66097606, 23998017),  # D: 24.00M as in HiT's code
    ("l", 32): (87914915, 21507073),
    ("l", 128): (96499206, 28389121),
    ("l", 256): (100815321, 28864129),
}
# The default run (experiment=shapes_cpu: 4 classes, class head), likewise.
SHAPES_CPU_PARAMS = (963014, 142861)  # G: +4,608 since the bilinear upsampler (1x1 conv at the low resolution)

# A value for every settable field, each different from the tiny preset's at 32 px (3 stages).
GENERATOR_VALUES = dict(
    z_dim=64,
    channels=[96, 48, 32],
    depths=[1, 2, 1],
    window_sizes=[2, 4, 0],
    grid_sizes=[4, 2, 0],
    head_dim=16,
    num_latent_tokens=8,
    mlp_ratio=3.0,
    mbconv_expand=3,
    class_embed_tokens=2,
    num_heads=[4, 2, 2],
    highres_block="mlp",
    cross_attn_mlp=True,
    rgb_skip="hit",
    arch="mbconv",
    upsample="icnr",
    output="clamp",
)
DISCRIMINATOR_VALUES = dict(
    channel_base=512, channel_max=64, mbstd_group=2, from_rgb_kernel=3, blur_position="between"
)


def _compose(*overrides):
    return compose("train", overrides)


def _override(key, value):
    return f"{key}=[{','.join(map(str, value))}]" if isinstance(value, list) else f"{key}={value}"


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _meta_counts(g: GeneratorConfig, d: DiscriminatorConfig):
    with torch.device("meta"):  # the architecture without allocating or initialising weights
        return _count(Generator(g)), _count(Discriminator(d))


def test_every_model_field_is_settable_from_the_command_line():
    settable = {p: {f.name for f in fields(c)} - set(DATA_FIELDS[p])
                for p, c in (("generator", GeneratorConfig), ("discriminator", DiscriminatorConfig))}  # fmt: skip
    assert set(GENERATOR_VALUES) == settable["generator"]
    assert set(DISCRIMINATOR_VALUES) == settable["discriminator"]
    overrides = [_override(f"model.generator.{k}", v) for k, v in GENERATOR_VALUES.items()]
    overrides += [_override(f"model.discriminator.{k}", v) for k, v in DISCRIMINATOR_VALUES.items()]
    cfg = _compose("experiment=smoke", *overrides)
    g, d = build_models(cfg.model, cfg.data.resolution, num_classes=4, d_class_head=True)
    for key, value in GENERATOR_VALUES.items():
        assert getattr(g.config, key) == value, key
    for key, value in DISCRIMINATOR_VALUES.items():
        assert getattr(d.config, key) == value, key
    assert (g.config.resolution, g.config.num_classes, d.config.class_head) == (32, 4, True)
    with torch.no_grad():
        x = g(torch.randn(2, 64), torch.tensor([0, 3]))
        assert d(x, torch.tensor([0, 3])).shape == (2,)


@pytest.mark.parametrize(
    "override",
    [
        "model.generator.chanels=[1]",
        "model.discriminator.d_base=256",  # the old names are gone
        "model.d_channel_base=256",
        "model.generator.resolution=64",  # comes from data.resolution
        "model.discriminator.class_head=true",  # comes from loss.class_weight
    ],
)
def test_unknown_model_key_is_an_error_naming_it(override):
    with pytest.raises(Exception) as info:
        _compose(override)
    text, cause = str(info.value), info.value.__cause__
    while cause is not None:
        text, cause = text + str(cause), cause.__cause__
    assert f"full_key: {override.split('=')[0]}" in text


def test_build_names_a_bad_key_outside_hydra():
    with pytest.raises(ValueError, match=r"model\.generator\.chanels"):
        build_models(ModelConfig(generator={"chanels": [8]}), 32)
    with pytest.raises(ValueError, match=r"model\.discriminator\.resolution"):
        build_models(ModelConfig(discriminator={"resolution": 64}), 32)
    g, d = resolve_model_configs(ModelConfig(generator={"mlp_ratio": 3.0}, discriminator={"channel_max": 32}), 32)
    assert g.mlp_ratio == 3.0 and d.channel_max == 32


def test_presets_use_the_config_field_names():
    for name, preset in PRESETS.items():
        assert set(preset) <= {"generator", "discriminator", "at"}, name
        assert set(preset["generator"]) <= {f.name for f in fields(GeneratorConfig)} - set(DATA_FIELDS["generator"])
        assert set(preset["discriminator"]) <= {f.name for f in fields(DiscriminatorConfig)} - set(
            DATA_FIELDS["discriminator"]
        )


@pytest.mark.parametrize("preset, resolution", sorted(PARAMS))
def test_presets_resolve_to_the_same_architectures(preset, resolution):
    cfg = _compose(f"model={preset}", "experiment=smoke", f"data.resolution={resolution}")
    g, d = resolve_model_configs(cfg.model, cfg.data.resolution)
    assert (g.resolution, d.resolution) == (resolution, resolution)
    assert _meta_counts(g, d) == PARAMS[preset, resolution]


def test_default_experiment_resolves_to_the_same_architecture():
    cfg = _compose("experiment=shapes_cpu")  # = the default, recipe=auto, on the shapes: test_recipe.py
    assert cfg.experiment == "shapes_cpu"
    g, d = resolve_model_configs(cfg.model, cfg.data.resolution, cfg.data.shapes_num_classes, d_class_head=True)
    assert (g.channels, g.window_sizes, g.grid_sizes, g.upsample) == ([64, 64, 32], [4, 4, 0], [2, 4, 0], "bilinear")
    assert (d.channel_base, d.channel_max) == (256, 64)
    assert _meta_counts(g, d) == SHAPES_CPU_PARAMS


def test_imagenet_experiments_share_one_recipe():
    resolved = {}
    for name, overrides in {
        "imagenet128": ["experiment=imagenet128"],
        "imagenet256": ["experiment=imagenet256"],
        "imagenet@256": ["experiment=imagenet", "data.resolution=256"],
        "imagenet": ["experiment=imagenet"],
    }.items():
        resolved[name] = {k: v for k, v in asdict(_compose(*overrides)).items() if k != "overrides"}  # the record of the command line
    a, b = resolved["imagenet128"], resolved["imagenet256"]
    assert (a["experiment"], a["data"]["resolution"]) == ("imagenet128", 128)
    assert (b["experiment"], b["data"]["resolution"]) == ("imagenet256", 256)
    assert resolved["imagenet@256"] == b and resolved["imagenet"] == a
    b = {**b, "experiment": a["experiment"], "data": {**b["data"], "resolution": 128}}
    assert a == b  # nothing else differs
    assert a["model"]["preset"] == "hit_b" and a["data"]["name"] == "zip" and a["train"]["batch_size"] == 256
    # the recipe reaches the models: HiT-B's layout and HiT's discriminator (tests/test_hit.py)
    for name, res in (("imagenet128", 128), ("imagenet256", 256)):
        cfg = _compose(f"experiment={name}")
        assert _meta_counts(*resolve_model_configs(cfg.model, cfg.data.resolution)) == PARAMS["hit_b", res]
