"""Typed configuration schemas (dataclasses).

Every node of the Hydra configs (``maxvit_gan/conf/``, shipped in the package) is validated
against these: a key that is not a field here is an error naming the key. This module imports
nothing from Hydra at import time; call `register_configs()` (the commands do) to put the
schemas into Hydra's ConfigStore, or `compose()` for a typed config in Python.
`training`, `metrics`, `data` take these dataclasses, never a Hydra `DictConfig`.
`validate_run_config` checks the values of a training config (ranges, choices) before any work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maxvit_gan.models.config import ModelConfig  # noqa: F401  (re-exported: part of the schema)

CONFIG_MODULE = "maxvit_gan.conf"  # the Hydra configs: pkg://maxvit_gan.conf
CONFIG_DIR = Path(__file__).resolve().parent / "conf"


@dataclass
class DataConfig:
    name: str = "shapes"  # shapes | folder | zip
    path: str | None = None  # folder or zip path (unused for shapes)
    resolution: int | None = 32  # output side in pixels; null (zip): the zip's own (dataset.json / its images)
    conditional: bool = True  # use class labels when the dataset has them
    xflip: bool = True  # random horizontal flips (applied in the training step, seeded)
    max_images: int | None = None  # use only N images: a fixed random subset (seed 0), kept in order
    in_memory: bool = False  # zip only: decode everything into one uint8 array up front
    num_workers: int | None = None  # DataLoader workers per process; null: the cores per process minus one, at most 4
    # shapes only
    shapes_num_images: int = 50000  # length of the procedural dataset (one epoch)
    shapes_num_classes: int = 4  # shape classes, in order: circle, square, triangle, cross, ring, star
    shapes_seed: int = 0  # seed of the procedural images


@dataclass
class PrepareConfig:
    """``maxvit-gan prepare``: image folder -> StyleGAN2-ADA-format zip."""

    source: str = "???"  # image folder (class subfolders = labels; flat = unconditional)
    dest: str = "???"  # output .zip
    resolution: int = "???"  # type: ignore[assignment]  # output side R (ADM center crop)
    max_images: int | None = None  # keep N images: a fixed random subset (seed 0), kept in order
    workers: int | None = None  # decoding processes; None = all CPUs available, 0/1 = in-process
    use_labels: bool = True  # class subfolders -> labels (false: labels null)
    compress_level: int = 0  # PNG zlib level 0-9: 0 = raw (fastest to read), 6 = 25-40% smaller, ~2.5x slower
    overwrite: bool = False  # replace an existing dest
    progress: bool = True  # tqdm progress bar


@dataclass
class FIDConfig:
    every_kimg: float = 0.0  # 0 = no FID during training
    num_samples: int = 10000  # generated samples per evaluation (FID10k: tracking only)
    batch_size: int = 64  # per process
    ref: str | None = None  # None: statistics of the training data; or a .npz / stats file


@dataclass
class SWDConfig:
    every_kimg: float = 0.0  # 0 = no SWD during training; needs no download (maxvit_gan/metrics/swd.py)
    num_samples: int = 1000  # generated images per evaluation (the reference and its floor: as many reals, at most half the data)
    batch_size: int = 64  # per process


@dataclass
class MetricsConfig:
    mode: str = "tf"  # tf (torch-fidelity TF-Inception, paper protocol) | clean (clean-fid)
    inception_weights: str | None = None  # local weights file; None = download + cache on first use
    cache_dir: str | None = None  # reference statistics cache; None = ~/.cache/maxvit_gan
    kid: bool = True  # with FID: also KID from the same features
    inception_score: bool = True  # with FID: also the Inception Score
    fid: FIDConfig = field(default_factory=FIDConfig)  # FID of the EMA generator during training
    swd: SWDConfig = field(default_factory=SWDConfig)  # sliced Wasserstein distance with its real-vs-real floor


@dataclass
class OptimConfig:
    g_lr: float = 1e-4  # Adam learning rate of G
    d_lr: float = 1e-4  # Adam learning rate of D
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])  # Adam betas (StyleGAN2's)
    eps: float = 1e-8  # Adam epsilon
    lr_rampdown_kimg: float = 0.0  # both learning rates fall linearly to 0 over the last N kimg of train.kimg (0 = constant)


@dataclass
class LossConfig:
    kind: str = "nonsaturating"  # nonsaturating | hinge
    r1_gamma: float = 20.0  # R1 weight, StyleGAN convention: penalty = gamma/2 * |grad D(x)|^2 (HiT "cost 10")
    r1_interval: int = 1  # >1: lazy R1 every N D steps, weight x N (StyleGAN2)
    diffaug: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" (applied to reals and fakes)
    bcr_weight: float = 0.0  # balanced consistency regularization weight (0 = off); needs diffaug
    class_weight: float = 0.0  # auxiliary classifier loss (AC-GAN style: D classifies reals, G makes fakes classifiable); 0 = off
    ada_target: float = 0.0  # ADA: adaptive augmentation towards E[sign(D(real))] = target (StyleGAN2-ADA: 0.6); 0 = off
    ada_kimg: float = 100.0  # ADA: thousands of images for p to go from 0 to 1 (StyleGAN2-ADA: 500, for runs of 25,000 kimg)
    ada_interval: int = 4  # ADA: steps between adjustments of p
    ada_ops: str = "xflip,rot90,translation,scale,rotate,color"  # ADA: the augmentations, each applied with probability p (training/ada.py)


@dataclass
class TrainConfig:
    kimg: float = 100.0  # total length in thousands of real images shown to D
    batch_size: int = 32  # global batch (all processes x accumulation)
    grad_accum: int = 1  # micro-batches per step and process
    mixed_precision: str = "no"  # no | bf16 | fp16 (fp16 uses a grad scaler); overrides the launcher
    ema_half_life_kimg: float = 10.0  # EMA half-life in kimg (StyleGAN); see ema_decay
    ema_rampup: float | None = 0.05  # half-life <= rampup * images seen (None = off)
    ema_decay: float | None = None  # fixed decay per step instead (HiT: 0.999)
    ema_start_kimg: float = 0.0  # copy G into the EMA until then
    tick_kimg: float = 1.0  # progress line every N kimg
    grid_kimg: float = 10.0  # EMA sample grid every N kimg (and at 0 and the end)
    checkpoint_kimg: float = 50.0  # checkpoint every N kimg (and at the end)
    keep_checkpoints: int = 2  # keep the newest K (the best-FID one is kept besides)
    grid_rows: int = 8  # training grid (samples/fakes<kimg>.png): rows x cols (one class per row when conditional)
    grid_cols: int = 8  # (see grid_rows)
    compile: bool = False  # torch.compile G (not D: R1 needs a double backward, which compiled graphs lack)
    channels_last: bool = False  # channels_last memory format for G and D
    nan_policy: str = "stop"  # stop | skip: what a non-finite loss does
    max_skipped_steps: int = 10  # with nan_policy=skip: stop after this many skipped steps
    divergence_bound: float = 1000.0  # |loss_D|, |loss_G| or R1 above this for 3 ticks in a row stops the run, no checkpoint meanwhile (0 = off)
    log_with: str | None = "tensorboard"  # trackers (Accelerate): tensorboard, wandb, mlflow, aim, comet_ml, ... comma-separated, all, none
    tracker_project: str = "maxvit-gan"  # project name for W&B, MLflow, Comet, ... (TensorBoard writes to <run>/tensorboard)
    tracker_kwargs: dict[str, Any] = field(default_factory=dict)  # per tracker init arguments: +train.tracker_kwargs.wandb.entity=me
    cpu_threads: int | None = None  # CPU runs: torch threads per process; None = $MAXVIT_GAN_CPU_THREADS or cores / local processes


@dataclass
class RunConfig:
    """The whole training job (maxvit_gan/conf/train.yaml)."""

    model: ModelConfig = field(default_factory=ModelConfig)  # model=PRESET: the generator and discriminator
    data: DataConfig = field(default_factory=DataConfig)  # data=shapes|folder|zip: the training images
    train: TrainConfig = field(default_factory=TrainConfig)  # the loop: length, batch, EMA, grids, checkpoints, trackers
    optim: OptimConfig = field(default_factory=OptimConfig)  # Adam for G and D
    loss: LossConfig = field(default_factory=LossConfig)  # GAN loss, R1, augmentation (DiffAugment, ADA), class loss
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # FID and SWD during training
    seed: int = 0  # every random draw: (seed, rank, step) in a step, (seed, epoch) for the data order
    resume: str | None = None  # None | auto (newest checkpoint of the run directory) | PATH
    run_dir: str | None = None  # run_dir=DIR: the run directory (short for hydra.run.dir=DIR; set from it)
    experiment: str | None = None  # name of the experiment preset, for the record
    recipe: str = "none"  # auto: settings not given on the command line are picked from the data (training/recipe.py) | none
    overrides: list[str] = field(default_factory=list)  # the command line's overrides (set by the command / compose): what recipe=auto keeps


@dataclass
class SampleConfig:
    """``maxvit-gan sample``: seeds -> image grid, per-seed PNGs or interpolation strips."""

    run: str | None = None  # run dir (generator_ema.safetensors), save_pretrained dir or .safetensors
    checkpoint: str | None = None  # checkpoints/step-N dir (its ema.safetensors), .safetensors, latest or best
    seeds: Any = "0-63"  # 0-63 | 0,5,7 | [0,5,7] | 0-3,10 : seed i's latent depends on i only
    truncation: float | None = None  # psi; None = no truncation; 0 = the average image (per class)
    truncation_mode: str = "mean"  # mean: shrink z towards its mean (works here) | truncnorm: redraw |z_i| > psi (HiT)
    classes: Any = None  # conditional models: class per grid row, cycled (0-3, [2,7], names); None = all
    rows: int | None = None  # grid rows; None = a square-ish grid
    out: str = "grid.png"  # grid PNG (ignored with outdir)
    outdir: str | None = None  # write one PNG per seed (or per interpolation strip) here instead
    interpolate: bool = False  # slerp strips between consecutive seeds, one per row
    steps: int = 8  # frames per interpolation strip (both ends included)
    pad: int = 0  # white pixels between grid cells
    batch_size: int = 32  # images per generator call (does not change the images)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (scripts call this before @hydra.main)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    cs.store(name="sample_schema", node=SampleConfig)
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="export_schema", node=ExportConfig)


@dataclass
class EvalMetricsConfig:
    """``evaluate``'s ``metrics.*`` (the feature mode is the top-level ``mode``)."""

    fid: bool = True  # the Inception scores: FID, and KID / IS / precision-recall as below; false = no Inception at all (no weights needed)
    swd: bool = False  # sliced Wasserstein distance of Laplacian-pyramid patches (ProGAN, x1e3, per level) and its real-vs-real floor; no network
    inception_weights: str | None = None  # local weights file; None = download + cache on first use
    cache_dir: str | None = None  # reference statistics cache; None = ~/.cache/maxvit_gan
    kid: bool = True  # KID from the same features
    inception_score: bool = True  # generators only
    precision_recall: bool = True  # k=3 (StyleGAN2-ADA's definition) on the features kept for KID


@dataclass
class EvaluateConfig:
    """``maxvit-gan evaluate``: FID (+ KID, IS, precision/recall) and/or SWD of a generator or of a folder of images."""

    run: str | None = None  # the generator: run dir, save_pretrained/export folder, .safetensors file or Hub id user/name
    checkpoint: str | None = None  # with run=: latest | best | checkpoints/step-N | a .safetensors file (that checkpoint's EMA)
    fake: str | None = None  # instead of a generator: a folder or .zip of images to score against ref
    ref: str = "dataset"  # dataset (the run's training data) | a folder or .zip | PATH.npz (ADM / clean-fid / write_ref) | imagenet64|128|256
    num_samples: int | None = None  # generated images, None = 50000 (FID50k, the paper protocol); fake=: a fixed random subset, None = all
    resolution: int | None = None  # side folders and zips are center-cropped to; None = the generator's, or the first fake image's
    mode: str = "tf"  # tf (TF-Inception, paper protocol) | clean (clean-fid)
    batch_size: int = 64  # per process
    seed: int = 0  # noise seed of the generated samples
    out: str | None = None  # result JSON; default <run>/eval/<metric>-<ref>-<mode>-step<step>.json (./eval/ without a run dir)
    write_ref: str | None = None  # also save the reference statistics to this .npz
    metrics: EvalMetricsConfig = field(default_factory=EvalMetricsConfig)


@dataclass
class ExportConfig:
    """``maxvit-gan export``: a generator -> a shareable folder (weights, config, model card); optionally pushed to the Hub."""

    run: str | None = None  # a training run directory (or an export folder, .safetensors file, Hub id)
    checkpoint: str | None = None  # latest | best | checkpoints/step-N | a .safetensors file (that checkpoint's EMA)
    out: str | None = None  # the folder to write; None = <run>/export (a temporary folder for a push of a non-run)
    push_to_hub: str | None = None  # USER/NAME: upload the folder as a Hugging Face Hub model repo (needs huggingface_hub)
    private: bool = False  # a new Hub repo is private
    commit_message: str | None = None  # Hub commit message
    license: str = "apache-2.0"  # the weights' license, in the model card (a Hub license id; mind your data's terms)
    seeds: Any = "0-31"  # the model card's sample grid
    rows: int | None = None  # grid rows; None = one per class (conditional) or square-ish
    truncation: float | None = None  # psi of the sample grid; None = no truncation


def compose(config_name: str = "train", overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The typed config of a command (``train`` -> RunConfig, ``sample`` -> SampleConfig, ...)
    with command-line style overrides, composed from the packaged configs as the command does::

        cfg = compose("train", ["experiment=smoke", "train.kimg=0.1"])
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = OmegaConf.to_object(hydra_compose(config_name=config_name, overrides=list(overrides)))
    finally:
        GlobalHydra.instance().clear()
    if isinstance(cfg, RunConfig):
        cfg.overrides = list(overrides)  # what recipe=auto keeps as given
    return cfg


# ---------------------------------------------------------------------- checks of a training config


def config_problems(cfg: RunConfig) -> list[str]:
    """Numeric settings out of range, one line each (checked before any work: a zero batch size
    or accumulation count would otherwise fail deep inside torch, or train nothing and exit 0)."""
    t, loss, o, d, fid = cfg.train, cfg.loss, cfg.optim, cfg.data, cfg.metrics.fid
    problems = []

    def check(key, value, ok, what, integer=False, optional=False):
        if value is None and optional:
            return
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            problems.append(f"{key}: must be {'an integer' if integer else 'a finite number'} {what}, got {value!r}")
        elif not ok(value):
            problems.append(f"{key}: must be {what}, got {value!r}")

    pos, nonneg = (lambda v: v > 0), (lambda v: v >= 0)
    for key, value in (
        ("train.batch_size", t.batch_size), ("train.grad_accum", t.grad_accum), ("loss.r1_interval", loss.r1_interval),
        ("train.keep_checkpoints", t.keep_checkpoints), ("train.grid_rows", t.grid_rows), ("train.grid_cols", t.grid_cols),
        ("data.shapes_num_images", d.shapes_num_images),
        ("data.shapes_num_classes", d.shapes_num_classes), ("metrics.fid.num_samples", fid.num_samples),
        ("metrics.fid.batch_size", fid.batch_size), ("metrics.swd.num_samples", cfg.metrics.swd.num_samples),
        ("metrics.swd.batch_size", cfg.metrics.swd.batch_size),
    ):  # fmt: skip
        check(key, value, pos, ">= 1", integer=True)
    check("data.max_images", d.max_images, pos, ">= 1 or null", integer=True, optional=True)
    check("data.resolution", d.resolution, pos, ">= 1 (or null for a zip: its own)", integer=True, optional=True)
    check("data.num_workers", d.num_workers, nonneg, ">= 0", integer=True, optional=True)
    check("train.cpu_threads", t.cpu_threads, pos, ">= 1 or null", integer=True, optional=True)
    for key, value in (("train.max_skipped_steps", t.max_skipped_steps), ("seed", cfg.seed)):
        check(key, value, nonneg, ">= 0", integer=True)
    for key, value in (("train.kimg", t.kimg), ("optim.g_lr", o.g_lr), ("optim.d_lr", o.d_lr), ("optim.eps", o.eps)):
        check(key, value, pos, "> 0")
    for key, value in (
        ("train.tick_kimg", t.tick_kimg), ("train.grid_kimg", t.grid_kimg),
        ("train.checkpoint_kimg", t.checkpoint_kimg), ("train.ema_start_kimg", t.ema_start_kimg),
        ("optim.lr_rampdown_kimg", o.lr_rampdown_kimg), ("loss.r1_gamma", loss.r1_gamma), ("loss.bcr_weight", loss.bcr_weight), ("loss.class_weight", loss.class_weight),
        ("loss.ada_target", loss.ada_target),
        ("metrics.fid.every_kimg", fid.every_kimg), ("metrics.swd.every_kimg", cfg.metrics.swd.every_kimg),
        ("train.divergence_bound", t.divergence_bound),
    ):  # fmt: skip
        check(key, value, nonneg, ">= 0 (0 = off / only at the end)" if key.endswith("kimg") else ">= 0")
    if t.ema_decay is None:
        check("train.ema_half_life_kimg", t.ema_half_life_kimg, pos, "> 0 (or set train.ema_decay)")
    check("train.ema_decay", t.ema_decay, lambda v: 0 <= v <= 1, "in [0, 1] or null", optional=True)
    check("train.ema_rampup", t.ema_rampup, nonneg, ">= 0 or null", optional=True)
    check("loss.ada_target", loss.ada_target, lambda v: v < 1, "in [0, 1) (0 = no ADA)")
    check("loss.ada_kimg", loss.ada_kimg, pos, "> 0")
    check("loss.ada_interval", loss.ada_interval, pos, ">= 1", integer=True)
    betas = list(o.betas) if isinstance(o.betas, (list, tuple)) else o.betas
    if not (isinstance(betas, list) and len(betas) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
    )):  # fmt: skip
        problems.append(f"optim.betas: must be two numbers in [0, 1), got {o.betas!r}")
    return problems


def validate_run_config(cfg: RunConfig, world: int) -> None:
    """Everything about a training config that can be checked before any work (``world``: the
    number of processes); a ValueError with one line per problem."""
    from maxvit_gan.training.augment import parse_policy
    from maxvit_gan.training.losses import LOSSES

    problems = config_problems(cfg)
    if problems:
        raise ValueError("\n".join(problems))
    t = cfg.train
    if cfg.loss.kind not in LOSSES:
        raise ValueError(f"loss.kind: unknown loss {cfg.loss.kind!r}; choose one of {LOSSES}")
    if t.batch_size % (world * t.grad_accum):
        raise ValueError(
            f"train.batch_size={t.batch_size} must be divisible by processes x train.grad_accum = {world} x {t.grad_accum}"
        )
    if t.mixed_precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"train.mixed_precision: {t.mixed_precision!r}; choose no, bf16 or fp16")
    if cfg.recipe not in ("auto", "none"):
        raise ValueError(f"recipe: {cfg.recipe!r}; choose auto (settings picked from the data) or none")
    if t.nan_policy not in ("stop", "skip"):
        raise ValueError(f"train.nan_policy: {t.nan_policy!r}; choose stop or skip")
    if cfg.loss.bcr_weight > 0 and not cfg.loss.diffaug:
        raise ValueError("loss.bcr_weight > 0 needs an augmentation: set loss.diffaug (e.g. color,translation,cutout)")
    parse_policy(cfg.loss.diffaug)
    if cfg.loss.ada_target > 0:
        from maxvit_gan.training.ada import parse_ops

        parse_ops(cfg.loss.ada_ops)
    if cfg.resume not in (None, "", "auto") and not Path(cfg.resume).is_dir():
        raise FileNotFoundError(f"resume: checkpoint directory {cfg.resume} does not exist")
