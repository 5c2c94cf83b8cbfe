"""The training loop on Hugging Face Accelerate.

One step = a D phase then a G phase (StyleGAN2-ADA's order), each over ``grad_accum``
micro-batches, then the EMA update:

* gradient accumulation is explicit: ``accelerator.no_sync`` on all micro-batches but the
  last of a phase, one optimizer step per phase. (Accelerate's ``accumulate`` counts calls,
  so two networks inside it step at the wrong times.) During the G phase, D runs under
  ``no_sync`` with ``requires_grad`` off: D's gradients are neither computed nor reduced.
* R1 uses ``torch.autograd.grad`` w.r.t. the input (see losses.r1_penalty).
* every random draw of a step (latents, fake labels, flips, augmentation) comes from a
  ``torch.Generator`` seeded by (seed, rank, step); the data order from (seed, epoch).
  With the models, optimizers and EMA restored from a checkpoint, resume is bit-exact.
* the EMA generator lives outside ``prepare`` on every rank and follows the unwrapped G.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm  # the bar shows on terminals only (RunLogger), so no notebook widget

from maxvit_gan.config import RunConfig
from maxvit_gan.data import build_dataset
from maxvit_gan.images import image_grid
from maxvit_gan.launch import exit_with_launcher
from maxvit_gan.models import EMA, build_models, ema_beta, save_generator
from maxvit_gan.rundir import RunDir
from maxvit_gan.training import checkpoint as ckpt
from maxvit_gan.training.accelerator import build_accelerator
from maxvit_gan.training.augment import diff_augment, parse_policy
from maxvit_gan.training.cpu import CpuThreadGovernor
from maxvit_gan.training.fid_tracker import FIDTracker
from maxvit_gan.training.lock import RunLock
from maxvit_gan.training.losses import LOSSES, consistency_loss, d_loss, g_loss, r1_penalty
from maxvit_gan.training.trackers import flat_config, log_image


class NonFiniteLossError(RuntimeError):
    pass


class PeerLostError(RuntimeError):
    """Another process of a multi-process run died (or its connection did): this one stops too."""


_PEER_FAILURE_MARKS = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out",
                       "socket closed", "remote worker", "nccl error", "distbackenderror")  # fmt: skip


def _is_peer_failure(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}".lower()
    return any(mark in text for mark in _PEER_FAILURE_MARKS)


STAT_NAMES = ("loss_D", "loss_G", "r1", "bcr", "cls_D", "cls_G")  # per-step statistics, in this order


def step_generator(seed: int, rank: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator that depends only on (seed, rank, step, stream)."""
    state = np.random.SeedSequence([seed, rank, step, stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


class EpochSampler(torch.utils.data.Sampler):
    """This rank's share of epoch ``epoch``'s permutation, from sample ``start`` on.

    The permutation depends on (seed, epoch) only; rank r takes positions r, r+W, ...
    (every rank gets the same count, the remainder is dropped).
    """

    def __init__(self, n: int, rank: int, world: int, seed: int, epoch: int, start: int = 0):
        self.per_rank = n // world
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))
        self.indices = perm[rank : self.per_rank * world : world][start:].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self):
        return iter(self.indices)


def _config_problems(cfg: RunConfig) -> list[str]:
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
        ("data.resolution", d.resolution), ("data.shapes_num_images", d.shapes_num_images),
        ("data.shapes_num_classes", d.shapes_num_classes), ("metrics.fid.num_samples", fid.num_samples),
        ("metrics.fid.batch_size", fid.batch_size),
    ):  # fmt: skip
        check(key, value, pos, ">= 1", integer=True)
    check("data.max_images", d.max_images, pos, ">= 1 or null", integer=True, optional=True)
    check("train.cpu_threads", t.cpu_threads, pos, ">= 1 or null", integer=True, optional=True)
    for key, value in (("data.num_workers", d.num_workers), ("train.max_skipped_steps", t.max_skipped_steps), ("seed", cfg.seed)):
        check(key, value, nonneg, ">= 0", integer=True)
    for key, value in (("train.kimg", t.kimg), ("optim.g_lr", o.g_lr), ("optim.d_lr", o.d_lr), ("optim.eps", o.eps)):
        check(key, value, pos, "> 0")
    for key, value in (
        ("train.tick_kimg", t.tick_kimg), ("train.snapshot_kimg", t.snapshot_kimg),
        ("train.checkpoint_kimg", t.checkpoint_kimg), ("train.ema_start_kimg", t.ema_start_kimg),
        ("optim.lr_rampdown_kimg", o.lr_rampdown_kimg), ("loss.r1_gamma", loss.r1_gamma), ("loss.bcr_weight", loss.bcr_weight), ("loss.class_weight", loss.class_weight),
        ("metrics.fid.every_kimg", fid.every_kimg),
    ):  # fmt: skip
        check(key, value, nonneg, ">= 0 (0 = off / only at the end)" if key.endswith("kimg") else ">= 0")
    if t.ema_decay is None:
        check("train.ema_half_life_kimg", t.ema_half_life_kimg, pos, "> 0 (or set train.ema_decay)")
    check("train.ema_decay", t.ema_decay, lambda v: 0 <= v <= 1, "in [0, 1] or null", optional=True)
    check("train.ema_rampup", t.ema_rampup, nonneg, ">= 0 or null", optional=True)
    betas = list(o.betas) if isinstance(o.betas, (list, tuple)) else o.betas
    if not (isinstance(betas, list) and len(betas) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
    )):  # fmt: skip
        problems.append(f"optim.betas: must be two numbers in [0, 1), got {o.betas!r}")
    return problems


def validate_config(cfg: RunConfig, world: int) -> None:
    """Everything that can be checked before any work; a ValueError with one line per problem."""
    problems = _config_problems(cfg)
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
    if t.nan_policy not in ("stop", "skip"):
        raise ValueError(f"train.nan_policy: {t.nan_policy!r}; choose stop or skip")
    if cfg.loss.bcr_weight > 0 and not cfg.loss.diffaug:
        raise ValueError("loss.bcr_weight > 0 needs an augmentation: set loss.diffaug (e.g. color,translation,cutout)")
    parse_policy(cfg.loss.diffaug)
    if cfg.resume not in (None, "", "auto") and not Path(cfg.resume).is_dir():
        raise FileNotFoundError(f"resume: checkpoint directory {cfg.resume} does not exist")


class RunLogger:
    """Rank 0 only: the StyleGAN-style lines (console and ``train.log``), metrics.jsonl, the
    trackers of ``train.log_with`` (scalars, sample grids, the config), and a progress bar when
    the console is a terminal (never ``\\r`` fragments in a SLURM or nohup log)."""

    def __init__(
        self, run_dir: RunDir, enabled: bool, total_kimg: float, start_kimg: float, accelerator=None, cfg=None,
        purge_step: int | None = None,
    ):  # fmt: skip
        # purge_step: TensorBoard drops the events of steps >= it that an earlier, killed attempt
        # logged after its last checkpoint (metrics.jsonl: RunDir.drop_metrics_after)
        self.enabled = enabled
        self.bar = None
        self.accelerator = accelerator
        if not enabled:
            return
        run_dir.path.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(run_dir.metrics_file, "a")
        self.log = open(run_dir.log_file, "a")
        if accelerator is not None and accelerator.log_with and cfg is not None:
            accelerator.init_trackers(
                cfg.train.tracker_project, config=flat_config(cfg), init_kwargs=dict(cfg.train.tracker_kwargs)
            )
            if purge_step is not None:
                self._purge_tensorboard(purge_step)
        self.bar = tqdm(
            total=round(total_kimg, 3), initial=round(start_kimg, 3), unit="kimg", dynamic_ncols=True,
            disable=not sys.stderr.isatty(),
        )  # fmt: skip

    def _purge_tensorboard(self, purge_step: int) -> None:
        """Reopen TensorBoard's writer with ``purge_step``: events at steps >= it from an earlier
        attempt are dropped, so a resumed run shows each step once."""
        from accelerate.tracking import TensorBoardTracker

        for tracker in self.trackers:
            writer = getattr(tracker, "writer", None)
            if isinstance(tracker, TensorBoardTracker) and writer is not None:
                log_dir = writer.log_dir if hasattr(writer, "log_dir") else writer.logdir
                writer.close()
                tracker.writer = type(writer)(log_dir, purge_step=purge_step)

    @property
    def trackers(self) -> list:
        return list(self.accelerator.trackers) if self.enabled and self.accelerator is not None else []

    def line(self, text: str) -> None:
        if self.enabled:
            tqdm.write(text, file=sys.stdout)
            sys.stdout.flush()
            try:
                self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {text}\n")
                self.log.flush()
            except OSError as err:  # disk full: the checkpoints matter more than a log line
                warnings.warn(f"could not write a line to {self.log.name} ({err}); training continues", stacklevel=2)

    def record(self, stats: dict, step: int) -> None:
        if not self.enabled:
            return
        try:
            self.jsonl.write(json.dumps(stats) + "\n")
            self.jsonl.flush()
        except OSError as err:  # disk full: the checkpoints matter more than a log line
            warnings.warn(f"could not write a line to {self.jsonl.name} ({err}); training continues", stacklevel=2)
        scalars = {k: v for k, v in stats.items() if isinstance(v, (int, float)) and k != "step"}
        for tracker in self.trackers:
            tracker.log(scalars, step=step)

    def image(self, tag: str, pil_image, step: int) -> None:
        log_image(self.trackers, tag, pil_image, step)

    def advance(self, kimg: float) -> None:
        if self.bar is not None:
            self.bar.n = round(kimg, 3)
            self.bar.refresh()

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.jsonl.close()
            self.log.close()
            for tracker in self.trackers:
                tracker.finish()
            if self.accelerator is not None:
                self.accelerator.trackers = []  # finished: end_training() must not finish them again


class Trainer:
    def __init__(self, cfg: RunConfig, accelerator: Accelerator | None = None):
        self.cfg = cfg
        t = cfg.train
        self.accelerator = accelerator or build_accelerator(cfg)  # mixed precision from the config alone
        acc = self.accelerator
        self.rank, self.world = acc.process_index, acc.num_processes
        validate_config(cfg, self.world)
        self._cpu = None
        if acc.device.type == "cpu":  # `accelerate launch` exports OMP_NUM_THREADS=1 unless told otherwise
            local = int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes))
            fixed = t.cpu_threads or int(os.environ.get("MAXVIT_GAN_CPU_THREADS", 0))
            torch.set_num_threads(fixed or max(1, (os.cpu_count() or 1) // local))
            # automatic count: fewer threads while other processes use the cores (training/cpu.py)
            self._cpu = CpuThreadGovernor(torch.get_num_threads(), enabled=not fixed)
        self.run = RunDir(cfg.run_dir or "outputs/run")
        self.run_dir, self.ckpt_dir = self.run.path, self.run.checkpoints_dir
        # one trainer per run directory, from here to the end of train(); every rank learns the verdict
        self._lock = RunLock(self.run.lock_file)
        self._broadcast_outcome(self._lock.acquire)
        try:
            self._setup()
        except BaseException:
            self._lock.release()
            raise

    def _broadcast_outcome(self, fn):
        """Run ``fn`` on rank 0 and return its result on every rank; an exception it raises is
        raised on every rank (other ranks would otherwise wait in the next collective)."""
        acc = self.accelerator
        out = [None, None]
        if acc.is_main_process:
            try:
                out[0] = fn()
            except Exception as err:  # noqa: BLE001  (re-raised below, on every rank)
                out[1] = err
        if self.world > 1:
            broadcast_object_list(out)
        if out[1] is not None:
            raise out[1]
        return out[0]

    def _setup(self) -> None:
        cfg, t, acc = self.cfg, self.cfg.train, self.accelerator
        self.dataset = build_dataset(cfg.data)
        self.num_classes = self.dataset.num_classes if cfg.data.conditional else 0
        # the auxiliary class loss needs classes; the default demo sets it, so an unconditional
        # dataset turns it off with a warning rather than failing
        self.class_weight = cfg.loss.class_weight if self.num_classes >= 2 else 0.0
        if cfg.loss.class_weight > 0 and not self.class_weight and acc.is_main_process:
            warnings.warn(
                f"loss.class_weight={cfg.loss.class_weight} ignored: the data has no classes "
                f"(data.conditional={cfg.data.conditional}, classes={self.num_classes})",
                stacklevel=2,
            )
        labels = np.asarray(self.dataset.labels) if self.num_classes else None
        self.label_probs = (
            torch.from_numpy(np.bincount(labels, minlength=self.num_classes) / len(labels)).float()
            if self.num_classes
            else None
        )
        set_seed(cfg.seed)  # identical initial weights on every rank (and the EMA copy made before prepare)
        G, D = build_models(cfg.model, cfg.data.resolution, self.num_classes, d_class_head=self.class_weight > 0)
        if t.channels_last:
            G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        self.ema = EMA(G).to(acc.device)
        betas = tuple(cfg.optim.betas)
        opt_g = torch.optim.Adam(G.parameters(), lr=cfg.optim.g_lr, betas=betas, eps=cfg.optim.eps)
        opt_d = torch.optim.Adam(D.parameters(), lr=cfg.optim.d_lr, betas=betas, eps=cfg.optim.eps)
        if t.compile:  # G only: R1 differentiates D twice, which compiled graphs cannot (double backward)
            G = torch.compile(G)
        self.G, self.D, self.opt_g, self.opt_d = acc.prepare(G, D, opt_g, opt_d)
        self.augment = parse_policy(cfg.loss.diffaug)

        self.batch_per_rank = t.batch_size // self.world
        self.micro = self.batch_per_rank // t.grad_accum
        self.state = dict(step=0, nimg=0, epoch=0, epoch_pos=0, best_fid=None, best_step=None, skipped_steps=0)
        self._stop_signal = False
        self.resume_note = None
        self.fid = FIDTracker(cfg.metrics, acc, self.dataset, cfg.seed)
        # the checkpoint to resume from, verified and checked against this configuration, before
        # anything is written to the run directory
        self._resume_from, self._damaged = self._broadcast_outcome(self._choose_checkpoint) or (None, [])

    # ------------------------------------------------------------------ data

    def _epoch_iter(self):
        """Yield (uint8 images, labels) per step forever, tracking (epoch, position)."""
        cfg = self.cfg
        while True:
            sampler = EpochSampler(
                len(self.dataset), self.rank, self.world, cfg.seed, self.state["epoch"], self.state["epoch_pos"]
            )
            if len(sampler) < self.batch_per_rank and self.state["epoch_pos"] == 0:
                raise ValueError(
                    f"data: the dataset has {len(self.dataset)} images, fewer than one batch per process "
                    f"({self.batch_per_rank}); lower train.batch_size"
                )
            loader = DataLoader(
                self.dataset,
                batch_size=self.batch_per_rank,
                sampler=sampler,
                num_workers=cfg.data.num_workers,
                drop_last=True,
                pin_memory=self.accelerator.device.type == "cuda",
                persistent_workers=False,
            )
            for images, labels in loader:
                self.state["epoch_pos"] += self.batch_per_rank
                yield images, labels
            self.state["epoch"] += 1
            self.state["epoch_pos"] = 0

    def _prepare_reals(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        x = images.to(self.accelerator.device, non_blocking=True).float() / 127.5 - 1.0
        if self.cfg.data.xflip:
            flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _latents(self, n: int, gen: torch.Generator):
        dev = self.accelerator.device
        z = torch.randn(n, self.ema.module.z_dim, generator=gen).to(dev)
        c = torch.multinomial(self.label_probs, n, replacement=True, generator=gen).to(dev) if self.num_classes else None
        return z, c

    # ------------------------------------------------------------------ one step

    def _aug(self, x, gen):
        return diff_augment(x, self.augment, gen) if self.augment else x

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        cfg, acc = self.cfg, self.accelerator
        step = self.state["step"]
        gen = step_generator(cfg.seed, self.rank, step)
        reals = self._prepare_reals(images, gen)
        real_c = labels.to(acc.device) if self.num_classes else None
        n_micro = cfg.train.grad_accum
        do_r1 = cfg.loss.r1_gamma > 0 and step % cfg.loss.r1_interval == 0
        cw = self.class_weight
        stats = {k: torch.zeros((), device=acc.device) for k in STAT_NAMES}

        lr_scale = self._lr_scale()
        for opt, base in ((self.opt_d, cfg.optim.d_lr), (self.opt_g, cfg.optim.g_lr)):
            for group in opt.param_groups:
                group["lr"] = base * lr_scale

        # ---- D phase
        self.D.requires_grad_(True)
        for i in range(n_micro):
            sl = slice(i * self.micro, (i + 1) * self.micro)
            z, c = self._latents(self.micro, gen)
            with torch.no_grad():
                fakes = self.G(z, c)
            with acc.no_sync(self.D) if i < n_micro - 1 else nullcontext():
                x_real = reals[sl].detach().requires_grad_(do_r1)
                rc = real_c[sl] if real_c is not None else None
                if cw > 0:  # auxiliary classifier learns the classes of reals only
                    real_logits, real_cls = self.D(self._aug(x_real, gen), rc, class_logits=True)
                else:
                    real_logits = self.D(self._aug(x_real, gen), rc)
                fake_logits = self.D(self._aug(fakes, gen), c)
                loss = d_loss(cfg.loss.kind, real_logits.float(), fake_logits.float())
                stats["loss_D"] += loss.detach() / n_micro
                if cw > 0:
                    cls = F.cross_entropy(real_cls.float(), rc)
                    loss = loss + cw * cls
                    stats["cls_D"] += cls.detach() / n_micro
                if do_r1:
                    r1 = r1_penalty(real_logits, x_real, acc.scaler).mean()
                    loss = loss + 0.5 * cfg.loss.r1_gamma * cfg.loss.r1_interval * r1
                    stats["r1"] += r1.detach() / n_micro
                if cfg.loss.bcr_weight > 0:  # logits of un-augmented vs augmented (bCR)
                    plain = self.D(torch.cat([x_real.detach(), fakes]), _cat(rc, c)).float()
                    both = torch.cat([real_logits, fake_logits]).float()
                    bcr = consistency_loss(both, plain)
                    loss = loss + cfg.loss.bcr_weight * bcr
                    stats["bcr"] += bcr.detach() / n_micro
                acc.backward(loss / n_micro)
        if not self._finite_everywhere(stats["loss_D"] + stats["r1"] + stats["bcr"] + stats["cls_D"], "loss_D"):
            self.opt_d.zero_grad(set_to_none=True)
            return self._skip()
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)

        # ---- G phase
        self.D.requires_grad_(False)
        for i in range(n_micro):
            z, c = self._latents(self.micro, gen)
            with acc.no_sync(self.D), (acc.no_sync(self.G) if i < n_micro - 1 else nullcontext()):
                if cw > 0:  # fakes should be classified as the class they were made for
                    logits, fake_cls = self.D(self._aug(self.G(z, c), gen), c, class_logits=True)
                else:
                    logits = self.D(self._aug(self.G(z, c), gen), c)
                loss = g_loss(cfg.loss.kind, logits.float())
                stats["loss_G"] += loss.detach() / n_micro
                if cw > 0:
                    cls = F.cross_entropy(fake_cls.float(), c)
                    loss = loss + cw * cls
                    stats["cls_G"] += cls.detach() / n_micro
                acc.backward(loss / n_micro)
        self.D.requires_grad_(True)
        if not self._finite_everywhere(stats["loss_G"] + stats["cls_G"], "loss_G"):
            self.opt_g.zero_grad(set_to_none=True)
            return self._skip()
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)

        # ---- EMA
        self.state["step"] += 1
        self.state["nimg"] += cfg.train.batch_size
        self.ema.update(acc.unwrap_model(self.G), self._ema_beta())
        return stats

    def _lr_scale(self) -> float:
        """1 until the last ``optim.lr_rampdown_kimg`` of the run, then linearly down towards 0
        (a function of the images seen, so a resumed run follows the same schedule)."""
        ramp = self.cfg.optim.lr_rampdown_kimg * 1000
        if ramp <= 0:
            return 1.0
        left = self.cfg.train.kimg * 1000 - self.state["nimg"]
        return min(1.0, max(left, 0.0) / ramp)

    def _ema_beta(self) -> float:
        t, nimg = self.cfg.train, self.state["nimg"]
        if nimg < t.ema_start_kimg * 1000:
            return 0.0
        if t.ema_decay is not None:
            return t.ema_decay
        return ema_beta(t.batch_size, t.ema_half_life_kimg, t.ema_rampup, nimg)

    def _finite_everywhere(self, value: torch.Tensor, name: str) -> bool:
        """Same verdict on every rank (one tiny all-reduce). Raises under nan_policy=stop."""
        bad = (~torch.isfinite(value)).float().reshape(1)
        if self.world > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        if bad.item() == 0:
            return True
        if self.cfg.train.nan_policy == "stop":
            raise NonFiniteLossError(
                f"non-finite {name} ({value.item()}) at step {self.state['step']} "
                f"(kimg {self.state['nimg'] / 1000:.3f}); the last checkpoint in {self.ckpt_dir} is intact. "
                "Set train.nan_policy=skip to skip such steps instead."
            )
        return False

    def _skip(self):
        self.state["skipped_steps"] += 1
        self.state["step"] += 1  # fresh random draws next time; no images counted
        if self.state["skipped_steps"] > self.cfg.train.max_skipped_steps:
            raise NonFiniteLossError(
                f"{self.state['skipped_steps']} steps skipped for non-finite losses (train.max_skipped_steps="
                f"{self.cfg.train.max_skipped_steps}); stopping at step {self.state['step']}"
            )
        return None

    # ------------------------------------------------------------------ snapshots, checkpoints

    def _grid_inputs(self):
        t = self.cfg.train
        n = t.grid_rows * t.grid_cols
        gen = torch.Generator().manual_seed(12345)
        z = torch.randn(n, self.ema.module.z_dim, generator=gen)
        c = (torch.arange(n) // t.grid_cols) % self.num_classes if self.num_classes else None
        return z, c

    @torch.no_grad()
    def snapshot(self, logger: RunLogger) -> None:
        if not self.accelerator.is_main_process:
            return
        t = self.cfg.train
        z, c = self._grid_inputs()
        dev = self.accelerator.device
        images = torch.cat(
            [
                self.ema.module(zb.to(dev), cb.to(dev) if cb is not None else None).float()
                for zb, cb in zip(z.split(64), c.split(64) if c is not None else [None] * math.ceil(len(z) / 64))
            ]
        )
        grid = image_grid(images, t.grid_rows, t.grid_cols)
        kimg = self.state["nimg"] / 1000
        if _save_image(grid, self.run.fakes_grid(kimg)):
            try:
                logger.image("samples/ema", grid, self.state["step"])
            except Exception as err:  # noqa: BLE001  (a log write never stops training)
                warnings.warn(f"could not log the sample grid to TensorBoard ({type(err).__name__}: {err})", stacklevel=2)

    def save_reals_grid(self) -> None:
        if not self.accelerator.is_main_process or self.run.reals_grid.exists():
            return
        t = self.cfg.train
        n = t.grid_rows * t.grid_cols
        if self.num_classes:  # one class per row, as in the fakes grid
            labels = np.asarray(self.dataset.labels)
            idx = []
            for r in range(t.grid_rows):
                skip = (r // self.num_classes) * t.grid_cols  # repeated classes show other images
                cls_idx = np.flatnonzero(labels == r % self.num_classes)[skip : skip + t.grid_cols]
                idx += list(cls_idx) + [0] * (t.grid_cols - len(cls_idx))
        else:
            idx = list(range(min(n, len(self.dataset))))
            idx += [0] * (n - len(idx))
        images = torch.stack([self.dataset[int(i)][0] for i in idx])
        _save_image(image_grid(images, t.grid_rows, t.grid_cols), self.run.reals_grid)

    def model_settings(self) -> dict:
        """The resolved architectures: what a checkpoint must match to be resumed."""
        return {
            "generator": self.ema.module.config.to_dict(),
            "discriminator": self.accelerator.unwrap_model(self.D).config.to_dict(),
        }

    def save(self, final: bool = False) -> Path | None:
        """Checkpoint (collective). A failed write is a warning (the previous checkpoints are
        intact, the next save tries again) unless ``final``: then it is raised."""
        state = dict(self.state)
        state["kimg"] = self.state["nimg"] / 1000
        state["model"] = self.model_settings()
        try:
            path = ckpt.save_checkpoint(self.accelerator, self.ckpt_dir, self.state["step"], self.ema.module, state)
        except ckpt.CheckpointWriteError as err:
            newest = ckpt.latest_checkpoint(self.ckpt_dir)
            if final:
                raise ckpt.CheckpointWriteError(f"{err}; the newest intact checkpoint is {newest}") from err
            if self.accelerator.is_main_process:
                warnings.warn(f"{err}; training continues (newest intact checkpoint: {newest})", stacklevel=2)
            return None
        if self.accelerator.is_main_process:
            meta = {"step": self.state["step"], "kimg": state["kimg"], "seed": self.cfg.seed}
            try:
                save_generator(self.ema.module, self.run.generator_file, meta)
            except Exception as err:  # the checkpoint holds the same weights: not worth a crash
                warnings.warn(f"could not write {self.run.generator_file} ({type(err).__name__}: {err})", stacklevel=2)
            best = ckpt.checkpoint_name(self.state["best_step"]) if self.state["best_step"] is not None else None
            protect = (path.name, best) if best else (path.name,)  # never the checkpoint just written
            ckpt.prune_checkpoints(self.ckpt_dir, self.cfg.train.keep_checkpoints, protect=protect)
        self.accelerator.wait_for_everyone()
        return path

    def _choose_checkpoint(self) -> tuple[Path | None, list[tuple[Path, str]]]:
        """Rank 0: the checkpoint to resume from and the damaged ones skipped on the way.

        ``resume=auto``: the newest checkpoint that verifies (sizes and checksums); damaged
        newer ones are reported and set aside when training starts. ``resume=PATH``: that one,
        or a one-line error naming the damaged file. Either way the checkpoint must fit the
        configured model. No resume: the run directory must not hold checkpoints already."""
        r = self.cfg.resume
        if not r:
            newest = ckpt.latest_checkpoint(self.ckpt_dir)
            if newest is not None:
                raise ckpt.CheckpointError(
                    f"resume: {self.run_dir} already holds checkpoints (newest {newest.name}); pass resume=auto to "
                    "continue that run, or train in a new hydra.run.dir"
                )
            return None, []
        if r != "auto":
            path = Path(r)
            try:
                state = ckpt.verify_checkpoint(path)
            except ckpt.CheckpointError as err:
                raise ckpt.CheckpointError(f"resume: {err}") from None
            self._check_fits(path, state)
            return path, []
        damaged = []
        for path in reversed(ckpt.list_checkpoints(self.ckpt_dir)):
            try:
                state = ckpt.verify_checkpoint(path)
            except ckpt.CheckpointError as err:
                damaged.append((path, str(err)))
                continue
            self._check_fits(path, state)
            for bad, why in damaged:
                warnings.warn(f"resume=auto: skipping damaged checkpoint {bad.name}: {why}; resuming from {path.name}", stacklevel=2)
            return path, damaged
        if damaged:
            raise ckpt.CheckpointError(
                f"resume=auto: no intact checkpoint in {self.ckpt_dir}: "
                + "; ".join(f"{p.name}: {why}" for p, why in damaged)
            )
        self.resume_note = f"resume=auto: no checkpoint in {self.ckpt_dir} yet; starting from scratch"
        return None, []  # resume=auto on a fresh run directory: start from scratch, and say so

    def _check_fits(self, path: Path, state: dict) -> None:
        """A one-line CheckpointError naming every setting in which the checkpoint's models differ
        from the configured ones."""
        saved = state.get("model")
        if not isinstance(saved, dict):
            self._check_fits_by_shapes(path)
            return
        now = json.loads(json.dumps(self.model_settings()))  # as stored: tuples become lists
        diffs = []
        for part in ("generator", "discriminator"):
            old, new = saved.get(part) or {}, now[part]
            for key in sorted(set(old) | set(new)):
                a, b = old.get(key), new.get(key)
                if a == b or (part == "discriminator" and key in ("resolution", "num_classes")):
                    continue
                if key == "resolution":
                    name = "data.resolution"
                elif key == "num_classes":
                    name = "classes (from the data and data.conditional)"
                elif key == "class_head":
                    diffs.append(
                        f"loss.class_weight={self.cfg.loss.class_weight}: the checkpoint's D "
                        f"{'has' if a else 'has no'} class head, this run's {'has' if b else 'has none'}"
                    )
                    continue
                else:
                    name = f"model.{part}.{key}"
                diffs.append(f"{name} is {a!r} in the checkpoint, {b!r} now")
        if diffs:
            raise ckpt.CheckpointError(
                f"resume: {path} does not fit this configuration: {'; '.join(diffs)} (resume with the "
                f"checkpoint's settings, see {self.run.config_file.name}, or train in a new hydra.run.dir)"
            )

    def _check_fits_by_shapes(self, path: Path) -> None:
        """Checkpoints that predate the stored model settings: compare tensor names and shapes."""
        from safetensors import safe_open

        modules = {ckpt.CHECKPOINT_EMA_FILE: self.ema.module}
        diffs = []
        for name, module in modules.items():
            want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
            try:
                with safe_open(str(path / name), framework="pt") as f:
                    have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            except Exception as err:
                raise ckpt.CheckpointError(f"resume: {path / name} is unreadable ({type(err).__name__}: {err})") from None
            for k in sorted(set(want) | set(have)):
                if want.get(k) != have.get(k):
                    diffs.append(f"{k}: {have.get(k)} in the checkpoint, {want.get(k)} now")
        if diffs:
            raise ckpt.CheckpointError(
                f"resume: {path} does not fit this configuration's generator ({len(diffs)} tensors differ, e.g. "
                f"{'; '.join(diffs[:3])}); resume with the checkpoint's model settings or train in a new hydra.run.dir"
            )

    def resume(self) -> bool:
        """Load the checkpoint chosen at construction (verified and checked then)."""
        path = self._resume_from
        if path is None:
            return False
        state = ckpt.load_checkpoint(self.accelerator, path, self.ema.module, verify=False)
        self.state.update({k: v for k, v in state.items() if k in self.state})
        return True

    # ------------------------------------------------------------------ the loop

    def _install_signal_handlers(self):
        def handler(signum, frame):
            self._stop_signal = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. notebooks)
                return
        exit_with_launcher()  # a SIGTERM that kills `accelerate launch` reaches this process too

    def _stop_requested(self) -> bool:
        flag = torch.tensor([float(self._stop_signal)], device=self.accelerator.device)
        if self.world > 1:
            flag = self.accelerator.reduce(flag, reduction="sum")
        return flag.item() > 0

    def _prepare_run_dir(self) -> None:
        """Rank 0, at the start of train(): tidy the checkpoints folder (leftovers of an interrupted
        save; damaged checkpoints set aside) and forget the log lines a resumed run logs again."""
        if not self.accelerator.is_main_process:
            return
        self.run.samples_dir.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial_checkpoints(self.ckpt_dir)
        for tmp in self.run.temporaries():  # we hold the lock: nobody else is writing them
            tmp.unlink(missing_ok=True)
        for path, why in self._damaged:
            if path.is_dir():
                aside = ckpt.set_aside(path)
                warnings.warn(f"damaged checkpoint {path.name} moved to {aside} ({why})", stacklevel=2)
        self._damaged = []
        dropped = self.run.drop_metrics_after(self.state["step"])
        if dropped:
            self._notes.append(
                f"{dropped} line(s) of {self.run.metrics_file.name} logged after step {self.state['step']} "
                "(after the checkpoint resumed from) were removed: they are logged again"
            )

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            self._lock.release()

    def _train(self) -> dict:
        acc, t = self.accelerator, self.cfg.train
        self._notes: list[str] = []
        resumed = self.resume()
        self._prepare_run_dir()
        acc.wait_for_everyone()
        total_nimg = int(t.kimg * 1000)
        logger = RunLogger(
            self.run, acc.is_main_process, t.kimg, self.state["nimg"] / 1000, acc, self.cfg,
            purge_step=self.state["step"] + 1 if resumed else 0,  # events of an earlier, killed attempt go
        )  # fmt: skip
        if self.resume_note:
            logger.line(self.resume_note)
        logger.line(
            f"{'Resuming' if resumed else 'Starting'} at kimg {self.state['nimg'] / 1000:.3f} (step {self.state['step']}"
            f"{', from ' + str(self._resume_from) if resumed else ''}); "
            f"{self.world} process(es), batch {t.batch_size} = {self.world} x {t.grad_accum} x {self.micro}, "
            f"G {sum(p.numel() for p in self.ema.module.parameters()) / 1e6:.2f}M params, "
            f"D {sum(p.numel() for p in acc.unwrap_model(self.D).parameters()) / 1e6:.2f}M params, "
            f"run dir {self.run_dir}"
        )
        for note in self._notes:
            logger.line(note)
        if self.state["nimg"] >= total_nimg:
            logger.line(f"Nothing to train: the run is at kimg {self.state['nimg'] / 1000:.3f} >= train.kimg={t.kimg}")
        skipped = getattr(self.dataset, "num_skipped", 0)
        if skipped:
            logger.line(f"data: {skipped} unreadable image(s) skipped so far (each named in a warning)")
        self.save_reals_grid()
        if not resumed:
            self.snapshot(logger)
        self._install_signal_handlers()
        if acc.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

        batches = self._epoch_iter()
        tick_start_nimg, tick_start_time, start_time = self.state["nimg"], time.time(), time.time()
        sums, n_sums = None, 0
        next_tick = _next_multiple(self.state["nimg"], t.tick_kimg)
        next_snap = _next_multiple(self.state["nimg"], t.snapshot_kimg)
        next_ckpt = _next_multiple(self.state["nimg"], t.checkpoint_kimg)
        next_fid = _next_multiple(self.state["nimg"], self.cfg.metrics.fid.every_kimg)
        stopped_by_signal = False
        try:
            while self.state["nimg"] < total_nimg:
                images, labels = next(batches)
                out = self.train_step(images, labels)
                if self._cpu is not None and (note := self._cpu.update()):
                    logger.line(note)
                if out is not None:
                    vec = torch.stack([out[k] for k in STAT_NAMES]).float()
                    sums = vec if sums is None else sums + vec
                    n_sums += 1
                nimg = self.state["nimg"]
                done = nimg >= total_nimg
                stop = self._stop_requested()
                if nimg >= next_tick or done or stop:
                    self._tick(logger, sums, n_sums, tick_start_nimg, tick_start_time, start_time, total_nimg)
                    sums, n_sums = None, 0
                    tick_start_nimg, tick_start_time = nimg, time.time()
                    next_tick = _next_multiple(nimg, t.tick_kimg)
                new_best = False
                if self.fid.enabled and (nimg >= next_fid or done):
                    new_best = self._evaluate_fid(logger)
                    next_fid = _next_multiple(nimg, self.cfg.metrics.fid.every_kimg)
                if nimg >= next_ckpt or done or stop or new_best:  # before the grid: a grid never costs a checkpoint
                    self.save(final=done or stop)
                    next_ckpt = _next_multiple(nimg, t.checkpoint_kimg)
                if nimg >= next_snap or done:
                    self.snapshot(logger)
                    next_snap = _next_multiple(nimg, t.snapshot_kimg)
                if stop:
                    stopped_by_signal = True
                    logger.line(f"Stop requested: checkpoint saved at step {self.state['step']}; exiting.")
                    break
        except RuntimeError as err:
            if self.world > 1 and _is_peer_failure(err):  # no collective can succeed now: no save, exit
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise PeerLostError(
                    f"rank {self.rank}: lost contact with another process at step {self.state['step']} ({first}); "
                    f"the newest checkpoint, {ckpt.latest_checkpoint(self.ckpt_dir)}, is intact: restart with resume=auto"
                ) from err
            raise
        finally:
            logger.close()
        return {"step": self.state["step"], "kimg": self.state["nimg"] / 1000, "stopped": stopped_by_signal}

    def _evaluate_fid(self, logger: RunLogger) -> bool:
        """FID of the EMA generator (collective); logs it; True when it is a new best."""
        result = self.fid(self.ema.module)
        if result is None:
            return False
        value = result[self.fid.key]
        logger.line(
            f"kimg {self.state['nimg'] / 1000:8.3f}  " + "  ".join(f"{k} {v:.4f}" for k, v in result.items())
        )
        logger.record({"kimg": self.state["nimg"] / 1000, "step": self.state["step"], **result}, self.state["step"])
        best = self.state["best_fid"]
        if best is None or value < best:
            self.state["best_fid"], self.state["best_step"] = value, self.state["step"]
            return True
        return False

    def _tick(self, logger, sums, n_sums, tick_nimg0, tick_t0, t0, total_nimg):
        acc = self.accelerator
        means = (sums / max(n_sums, 1)) if sums is not None else torch.zeros(len(STAT_NAMES), device=acc.device)
        skipped = torch.tensor([float(getattr(self.dataset, "num_skipped", 0))], device=means.device)
        means = torch.cat([means, skipped])
        if self.world > 1:
            means = acc.reduce(means, reduction="mean")
        *means, skipped = means.tolist()
        skipped = round(skipped * self.world)  # unreadable images found so far, all ranks
        means = dict(zip(STAT_NAMES, means))
        nimg = self.state["nimg"]
        dt = max(time.time() - tick_t0, 1e-9)
        img_s = (nimg - tick_nimg0) / dt
        sec_per_kimg = 1000 / img_s if img_s > 0 else float("nan")
        eta = (total_nimg - nimg) / img_s if img_s > 0 else float("nan")
        mem = torch.cuda.max_memory_allocated() / 2**30 if acc.device.type == "cuda" else _rss_gib()
        stats = {
            "kimg": nimg / 1000,
            "step": self.state["step"],
            "time_s": round(time.time() - t0, 2),
            "sec_per_kimg": round(sec_per_kimg, 3),
            "img_per_s": round(img_s, 2),
            "peak_mem_gib": round(mem, 3),
            "loss_D": means["loss_D"],
            "loss_G": means["loss_G"],
            "r1": means["r1"],
        }
        if self.cfg.loss.bcr_weight > 0:
            stats["bcr"] = means["bcr"]
        if self.class_weight > 0:
            stats["cls_D"], stats["cls_G"] = means["cls_D"], means["cls_G"]
        if self.state["skipped_steps"]:
            stats["skipped_steps"] = self.state["skipped_steps"]
        if skipped:
            stats["skipped_images"] = skipped
        extra = f"  cls_D {means['cls_D']:.3f}  cls_G {means['cls_G']:.3f}" if "cls_D" in stats else ""
        extra += f"  skipped_images {skipped}" if skipped else ""
        logger.line(
            f"kimg {stats['kimg']:8.3f}  step {stats['step']:7d}  sec/kimg {sec_per_kimg:7.2f}  img/s {img_s:7.1f}  "
            f"mem {mem:5.2f}G  loss_D {means['loss_D']:.3f}  loss_G {means['loss_G']:.3f}  r1 {means['r1']:.4f}{extra}  eta {_fmt_time(eta)}"
        )
        logger.record(stats, self.state["step"])
        logger.advance(nimg / 1000)


def _save_image(image, path: Path) -> bool:
    """Write a PNG atomically (temporary name, then rename); a failure (disk full, ...) is a
    warning, never the end of a run. True when written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
        return True
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        warnings.warn(f"could not write {path} ({err}); training continues", stacklevel=3)
        return False


def _next_multiple(nimg: int, every_kimg: float) -> float:
    if every_kimg <= 0:
        return float("inf")
    every = every_kimg * 1000
    return (math.floor(nimg / every) + 1) * every


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _cat(a, b):
    return None if a is None else torch.cat([a, b])



