"""The automatic recipe (``experiment=auto``, the default): training settings picked from the
dataset (resolution, number of images, classes), the device and the number of processes, as
StyleGAN2-ADA's ``--cfg=auto`` does. Every setting the command line (or ``compose``'s overrides)
gives stays as given; the rest is filled in here, printed at the start and stored in
``config_resolved.yaml``.

The rules, and where each comes from:

* CPU (the tier measured in this project: benchmarks/RESULTS.md): the demo's generator (``tiny``,
  widths 64, 64 then 32, Max-SA at 8 and 16 px, MBConv above, bilinear upsampling), a narrow D
  (8 channels at full resolution, doubling per halving, at most 64; 16 channels on a dataset of
  fewer than 50,000 images), batch 16 (at this scale progress is per step), Adam 5e-4.
* GPU (not measured here yet): preset ``s`` up to 64 px, ``b`` above; StyleGAN2-ADA's batch
  ``max(min(processes * min(4096 / res, 32), 64), processes)``; Adam 2e-4; bf16.
* R1 gamma = res^2 / (64 * batch) (StyleGAN2 scales it with res^2 / batch; the constant makes it
  1.0 at the demo's 32 px and batch 16, where it was tuned), lazy every 4 steps. On a CPU with
  fewer than 50,000 images, 4x that (res^2 / (16 * batch): 4.0 at 32 px), with the D twice as
  wide: on the real-image benchmark (900-1,300 images, 3 seeds, 64 kimg) the two together took the
  icons from 1.69x the SWD floor to 1.42x and the stamps from 1.84x to 1.66x, letters unharmed
  (benchmarks/RESULTS.md, "Generator quality on real images"). Not on the shapes demo (50,000
  images), where R1 4 did not help.
* EMA half-life: 2 kimg on CPU (runs of tens of kimg: the demo's), batch * 10/32 kimg on GPUs
  (StyleGAN2-ADA's); ramp-up 0.1.
* Classes: the auxiliary class loss 1.0 when the data has >= 2 classes (without it classes stay
  blobs in short runs: benchmarks/RESULTS.md "CPU demo recipe"), else off.
* ADA (target 0.6) when the dataset has fewer than 50,000 images; p can go from 0 to 1 in 20 kimg
  on CPU, 500 kimg on GPUs (StyleGAN2-ADA's, for its runs of thousands of kimg).

Nothing depends on ``train.kimg``: a longer run is the shorter one continued (``resume=auto
train.kimg=...`` extends a run on the same recipe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ADA_BELOW_IMAGES = 50_000  # datasets at least this large train without ADA (the shapes demo has 50,000)
RECIPES = ("auto", "none")


@dataclass
class DataFacts:
    resolution: int
    num_images: int
    num_classes: int  # 0: unconditional (or data.conditional=false)


def _given(key: str, given: set[str]) -> bool:
    """Whether ``key`` (or a group above it, e.g. ``model`` for ``model.preset``) was given."""
    parts = key.split(".")
    return any(".".join(parts[:i]) in given for i in range(1, len(parts) + 1))


def given_keys(overrides: list[str]) -> set[str]:
    """The dotted keys of command-line overrides (``+a.b=1`` -> ``a.b``, ``model=s`` -> ``model``)."""
    out = set()
    for item in overrides or []:
        key = item.split("=", 1)[0].lstrip("~+")
        if key and not key.startswith("hydra"):
            out.add(key)
    return out


def choose(facts: DataFacts, processes: int, device_type: str) -> dict[str, object]:
    """The recipe's values, by dotted config key."""
    res, n_stages = facts.resolution, int(math.log2(facts.resolution // 8)) + 1
    small = facts.num_images < ADA_BELOW_IMAGES
    v: dict[str, object] = {}
    if device_type == "cpu":
        v["model.preset"] = "tiny"
        v["model.generator.channels"] = [64, 64] + [32] * (n_stages - 2)
        v["model.generator.window_sizes"] = [4, 4] + [0] * (n_stages - 2)
        v["model.generator.grid_sizes"] = [2, 4] + [0] * (n_stages - 2)
        v["model.generator.upsample"] = "bilinear"
        # small data (measured on real datasets of 900-1,300 images): D twice as wide, R1 4x
        v["model.discriminator.channel_base"] = (16 if small else 8) * res
        v["model.discriminator.channel_max"] = 64
        batch = -(-16 // processes) * processes
        lr, ema_kimg, ada_kimg, r1_per = 5e-4, 2.0, 20.0, (16 if small else 64)
    else:
        v["model.preset"] = "s" if res <= 64 else "b"
        batch = max(min(processes * min(4096 // res, 32), 64), processes)
        batch = -(-batch // processes) * processes
        lr, ema_kimg, ada_kimg, r1_per = 2e-4, batch * 10 / 32, 500.0, 64
        v["train.mixed_precision"] = "bf16"
    v["train.batch_size"] = batch
    v["optim.g_lr"] = v["optim.d_lr"] = lr
    v["loss.r1_gamma"] = round(res * res / (r1_per * batch), 6)
    v["loss.r1_interval"] = 4
    v["train.ema_half_life_kimg"] = ema_kimg
    v["train.ema_rampup"] = 0.1
    v["loss.class_weight"] = 1.0 if facts.num_classes >= 2 else 0.0
    v["loss.ada_target"] = 0.6 if small else 0.0
    if small:
        v["loss.ada_kimg"] = ada_kimg
    return v


def _set(cfg, key: str, value) -> None:
    *path, last = key.split(".")
    node = cfg
    for p in path:
        node = getattr(node, p)
    setattr(node, last, value)


def apply_recipe(cfg, facts: DataFacts, processes: int, device_type: str) -> list[str]:
    """Fill in the recipe's values that ``cfg.overrides`` does not give; returns the lines that
    say what was chosen and why (printed at the start, kept in train.log)."""
    given = given_keys(cfg.overrides)
    values = choose(facts, processes, device_type)
    structure = ("model.generator.channels", "model.generator.window_sizes", "model.generator.grid_sizes")
    if any(_given(k, given) for k in structure):  # the stage lists are one unit: all or none
        given |= set(structure)
    if _given("model.preset", given):  # another preset: its own architecture
        given |= {k for k in values if k.startswith("model.")}
    chosen = {k: v for k, v in values.items() if not _given(k, given)}
    for key, value in chosen.items():
        _set(cfg, key, value)
    kind = f"{facts.num_classes} classes" if facts.num_classes else "unconditional"
    lines = [
        f"recipe=auto for {facts.resolution} px, {facts.num_images:,} images, {kind}, {processes} process(es) on "
        f"{device_type}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in chosen.items()),
    ]
    kept = sorted(k for k in values if k not in chosen)
    if kept:
        lines.append("recipe=auto kept as given: " + ", ".join(kept))
    return lines


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    return str(v)
