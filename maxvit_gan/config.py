"""Typed configuration schemas (dataclasses).

Every node of the Hydra configs (``maxvit_gan/conf/``, shipped in the package) is validated
against these: a key that is not a field here is an error naming the key. This module imports
nothing from Hydra at import time; call `register_configs()` (the commands do) to put the
schemas into Hydra's ConfigStore, or `compose()` for a typed config in Python.
`training`, `metrics`, `data` take these dataclasses, never a Hydra `DictConfig`.
"""

from __future__ import annotations

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
    resolution: int = 32  # output side in pixels
    conditional: bool = True  # use class labels when the dataset has them
    xflip: bool = True  # random horizontal flips (applied in the training step, seeded)
    max_images: int | None = None  # use only N images: a fixed random subset (seed 0), kept in order
    in_memory: bool = False  # zip only: decode everything into one uint8 array up front
    num_workers: int = 2  # DataLoader workers per process
    # shapes only
    shapes_num_images: int = 50000  # length of the procedural dataset (one epoch)
    shapes_num_classes: int = 4
    shapes_seed: int = 0


@dataclass
class PrepareConfig:
    """`scripts/prepare_dataset.py`: image folder -> StyleGAN2-ADA-format zip."""

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
class MetricsConfig:
    mode: str = "tf"  # tf (torch-fidelity TF-Inception, paper protocol) | clean (clean-fid)
    inception_weights: str | None = None  # local weights file; None = download + cache on first use
    cache_dir: str | None = None  # reference statistics cache; None = ~/.cache/maxvit_gan
    kid: bool = True
    inception_score: bool = True
    fid: FIDConfig = field(default_factory=FIDConfig)


@dataclass
class OptimConfig:
    g_lr: float = 1e-4  # Adam learning rate of G
    d_lr: float = 1e-4  # Adam learning rate of D
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    eps: float = 1e-8
    lr_rampdown_kimg: float = 0.0  # both learning rates fall linearly to 0 over the last N kimg of train.kimg (0 = constant)


@dataclass
class LossConfig:
    kind: str = "nonsaturating"  # nonsaturating | hinge
    r1_gamma: float = 20.0  # R1 weight, StyleGAN convention: penalty = gamma/2 * |grad D(x)|^2 (HiT "cost 10")
    r1_interval: int = 1  # >1: lazy R1 every N D steps, weight x N (StyleGAN2)
    diffaug: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" (applied to reals and fakes)
    bcr_weight: float = 0.0  # balanced consistency regularization weight (0 = off); needs diffaug
    class_weight: float = 0.0  # auxiliary classifier loss (AC-GAN style: D classifies reals, G makes fakes classifiable); 0 = off


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
    snapshot_kimg: float = 10.0  # EMA sample grid every N kimg (and at 0 and the end)
    checkpoint_kimg: float = 50.0  # checkpoint every N kimg (and at the end)
    keep_checkpoints: int = 2  # keep the newest K (the best-FID one is kept besides)
    grid_rows: int = 8  # snapshot grid: rows x cols (one class per row when conditional)
    grid_cols: int = 8
    compile: bool = False  # torch.compile G (not D: R1 needs a double backward, which compiled graphs lack)
    channels_last: bool = False  # channels_last memory format for G and D
    nan_policy: str = "stop"  # stop | skip: what a non-finite loss does
    max_skipped_steps: int = 10  # with nan_policy=skip: stop after this many skipped steps
    log_with: str | None = "tensorboard"  # trackers (Accelerate): tensorboard, wandb, mlflow, aim, comet_ml, ... comma-separated, all, none
    tracker_project: str = "maxvit-gan"  # project name for W&B, MLflow, Comet, ... (TensorBoard writes to <run>/tensorboard)
    tracker_kwargs: dict[str, Any] = field(default_factory=dict)  # per tracker init arguments: +train.tracker_kwargs.wandb.entity=me
    cpu_threads: int | None = None  # CPU runs: torch threads per process; None = $MAXVIT_GAN_CPU_THREADS or cores / local processes


@dataclass
class RunConfig:
    """The whole training job (maxvit_gan/conf/train.yaml)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    seed: int = 0
    resume: str | None = None  # None | auto (newest checkpoint of the run directory) | PATH
    run_dir: str | None = None  # set by the script from Hydra's run directory
    experiment: str | None = None  # name of the experiment preset, for the record


@dataclass
class SampleConfig:
    """`scripts/sample.py`: seeds -> image grid, per-seed PNGs or interpolation strips."""

    run: str | None = None  # run dir (generator_ema.safetensors), save_pretrained dir or .safetensors
    checkpoint: str | None = None  # checkpoints/step-N dir (its ema.safetensors), .safetensors, or latest
    seeds: Any = "0-63"  # 0-63 | [0,5,7] | '0,5,7' | 0-3,10 : seed i's latent depends on i only
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
    kid: bool = True
    inception_score: bool = True  # generators only
    precision_recall: bool = True  # k=3 (StyleGAN2-ADA's definition) on the features kept for KID


@dataclass
class EvaluateConfig:
    """``maxvit-gan evaluate``: FID (+ KID, IS, precision/recall) and/or SWD of a generator or of a folder of images."""

    run: str | None = None  # the generator: run dir, save_pretrained/export folder, .safetensors file or Hub id user/name
    checkpoint: str | None = None  # with run=: latest | checkpoints/step-N | a .safetensors file (that checkpoint's EMA)
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
    checkpoint: str | None = None  # latest | checkpoints/step-N | a .safetensors file (that checkpoint's EMA)
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
            return OmegaConf.to_object(hydra_compose(config_name=config_name, overrides=list(overrides)))
    finally:
        GlobalHydra.instance().clear()
