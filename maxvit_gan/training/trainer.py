"""The training loop on Hugging Face Accelerate: setup, one step, the loop. Read top to bottom.

One step is a D phase then a G phase, each over ``train.grad_accum`` micro-batches, then the
EMA update. (StyleGAN2-ADA runs its G phase first; the order does not matter for what is
learned, and D first lets the G phase use the D of this step.)

* gradient accumulation is explicit: ``accelerator.no_sync`` on all micro-batches but the
  last of a phase, one optimizer step per phase. (Accelerate's ``accumulate`` counts calls,
  so two networks inside it step at the wrong times.) During the G phase, D runs under
  ``no_sync`` with ``requires_grad`` off: D's gradients are neither computed nor reduced.
* R1 uses ``torch.autograd.grad`` w.r.t. the input (see losses.r1_penalty).
* every random draw comes from the run's random streams (rng.py), so with the models,
  optimizers and EMA restored from a checkpoint, resume is bit-exact.
* the EMA generator lives outside ``prepare`` on every rank and follows the unwrapped G.

Elsewhere: the config checks (maxvit_gan/config.py), checkpoints (maxvit_gan/checkpoint.py),
logging and trackers (trackers.py), grids (grids.py), FID during training (scoring.py), the
NaN policy (health.py), schedules (schedules.py), signals and lost peers (stopping.py), CPU
threads (threads.py), the run directory's lock (lock.py).
"""

from __future__ import annotations

import math
import os
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

from maxvit_gan import checkpoint as ckpt
from maxvit_gan.config import RunConfig, validate_run_config
from maxvit_gan.data import build_dataset
from maxvit_gan.models import EMA, build_models, save_generator
from maxvit_gan.rundir import RunDir
from maxvit_gan.training.accelerator import build_accelerator
from maxvit_gan.training.ada import AdaptiveAugment
from maxvit_gan.training.augment import diff_augment, parse_policy
from maxvit_gan.training.grids import fakes_grid, reals_grid, save_png
from maxvit_gan.training.health import BlowUpGuard, DivergenceError, LossGuard, NonFiniteLossError
from maxvit_gan.training.lock import RunLock
from maxvit_gan.training.losses import consistency_loss, d_loss, g_loss, r1_penalty
from maxvit_gan.training.recipe import DataFacts, apply_recipe
from maxvit_gan.training.rng import EpochSampler, step_rng
from maxvit_gan.training.schedules import ema_beta_at, lr_scale
from maxvit_gan.training.scoring import Scorer
from maxvit_gan.training.stopping import PeerLostError, StopNow, StopSignal, TrainingError, is_peer_failure
from maxvit_gan.training.threads import THREADS_ENV, auto_num_workers, setup_cpu_threads
from maxvit_gan.training.trackers import RunLogger, format_duration

STAT_NAMES = ("loss_D", "loss_G", "r1", "bcr", "cls_D", "cls_G")  # per-step statistics, in this order


class Trainer:
    # ------------------------------------------------------------------ setup

    def __init__(self, cfg: RunConfig, accelerator: Accelerator | None = None):
        self.cfg = cfg
        self.accelerator = acc = accelerator or build_accelerator(cfg)  # mixed precision from the config alone
        self.rank, self.world = acc.process_index, acc.num_processes
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))  # processes on this machine
        validate_run_config(cfg, self.world)  # what was given, before any work
        # the data first: its resolution, size and classes decide what recipe=auto picks
        self.dataset = build_dataset(cfg.data)
        cfg.data.resolution = self.dataset.resolution  # null (a zip): the zip's own
        if cfg.data.num_workers is None:
            cfg.data.num_workers = auto_num_workers(local)
        self.num_classes = self.dataset.num_classes if cfg.data.conditional else 0
        self.recipe_notes = []
        if cfg.recipe == "auto":
            facts = DataFacts(self.dataset.resolution, len(self.dataset), self.num_classes)
            self.recipe_notes = apply_recipe(cfg, facts, self.world, acc.device.type)
            validate_run_config(cfg, self.world)  # and what the recipe chose
        self.threads = None
        if acc.device.type == "cpu":  # automatic count: fewer threads while other processes use the cores
            self.threads = setup_cpu_threads(cfg.train.cpu_threads, local)
        self.run = RunDir(cfg.run_dir or "outputs/run")
        self.lock = RunLock(self.run.lock_file)  # one trainer per run directory, to the end of train()
        self._on_rank0(self.lock.acquire)
        try:
            self._setup()
        except BaseException:
            self.lock.release()
            raise

    def _on_rank0(self, fn):
        """Run ``fn`` on rank 0 and return its result on every rank; an exception it raises is
        raised on every rank (other ranks would otherwise wait in the next collective)."""
        out = [None, None]
        if self.accelerator.is_main_process:
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
        # the auxiliary class loss needs classes; the default demo sets it, so an unconditional
        # dataset turns it off with a warning rather than failing
        self.class_weight = cfg.loss.class_weight if self.num_classes >= 2 else 0.0
        if cfg.loss.class_weight > 0 and not self.class_weight and acc.is_main_process:
            warnings.warn(
                f"loss.class_weight={cfg.loss.class_weight} ignored: the data has no classes "
                f"(data.conditional={cfg.data.conditional}, classes={self.num_classes})",
                stacklevel=2,
            )
        if self.num_classes:  # fake labels follow the data's class frequencies
            counts = np.bincount(np.asarray(self.dataset.labels), minlength=self.num_classes)
            self.label_probs = torch.from_numpy(counts / counts.sum()).float()

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
        self.ada = (
            AdaptiveAugment(cfg.loss.ada_target, cfg.loss.ada_kimg, cfg.loss.ada_interval, t.batch_size, cfg.loss.ada_ops, acc.device)
            if cfg.loss.ada_target > 0 else None
        )  # fmt: skip

        self.batch_per_rank = t.batch_size // self.world
        self.micro = self.batch_per_rank // t.grad_accum
        # best_fid holds the best score of best_key (the FID key, or "swd" when FID is not tracked);
        # a checkpoint without best_key (older runs) tracked FID only
        self.state = dict(step=0, nimg=0, epoch=0, epoch_pos=0, best_fid=None, best_step=None, best_key=None,
                          skipped_steps=0)  # fmt: skip
        self.guard = LossGuard(t.nan_policy, t.max_skipped_steps, acc, self.run.checkpoints_dir)
        self.blowup = BlowUpGuard(t.divergence_bound)
        self.stop = StopSignal()
        self.scorer = Scorer(cfg.metrics, acc, self.dataset, cfg.seed)
        # the checkpoint to resume from, verified and checked against this configuration, before
        # anything is written to the run directory
        self.resume_choice = self._on_rank0(
            lambda: ckpt.choose_checkpoint(cfg.resume, self.run.checkpoints_dir, self.model_settings(), self.class_weight)
        )
        # then what the first FID needs (it can take minutes: the reference statistics): a bad
        # reference file or cache folder is an error now, not at the first evaluation hours in
        self.scorer.prepare()

    def model_settings(self) -> dict:
        """The resolved architectures, as stored: what a checkpoint must match to be resumed."""
        import json

        settings = {
            "generator": self.ema.module.config.to_dict(),
            "discriminator": self.accelerator.unwrap_model(self.D).config.to_dict(),
        }
        return json.loads(json.dumps(settings))  # tuples become lists, as in the train state

    # ------------------------------------------------------------------ data

    def _batches(self):
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
            if hasattr(self.dataset, "check_unchanged"):  # every epoch, before new workers open the file
                self.dataset.check_unchanged()
            for images, labels in loader:
                self.state["epoch_pos"] += self.batch_per_rank
                yield images, labels
            self.state["epoch"] += 1
            self.state["epoch_pos"] = 0

    def _reals(self, images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        x = images.to(self.accelerator.device, non_blocking=True).float() / 127.5 - 1.0
        if self.cfg.data.xflip:
            flip = (torch.rand(x.shape[0], generator=rng) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _latents(self, n: int, rng: torch.Generator):
        dev = self.accelerator.device
        z = torch.randn(n, self.ema.module.z_dim, generator=rng).to(dev)
        c = torch.multinomial(self.label_probs, n, replacement=True, generator=rng).to(dev) if self.num_classes else None
        return z, c

    def _aug(self, x, rng):
        """What D sees: DiffAugment (loss.diffaug), then ADA (loss.ada_target)."""
        x = diff_augment(x, self.augment, rng) if self.augment else x
        return self.ada.augment(x, rng) if self.ada is not None else x

    # ------------------------------------------------------------------ one step

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict | None:
        """One D phase, one G phase, the EMA update. Returns the step's statistics (None: skipped)."""
        cfg, acc = self.cfg, self.accelerator
        step = self.state["step"]
        rng = step_rng(cfg.seed, self.rank, step)
        reals = self._reals(images, rng)
        real_c = labels.to(acc.device) if self.num_classes else None
        n_micro = cfg.train.grad_accum
        do_r1 = cfg.loss.r1_gamma > 0 and step % cfg.loss.r1_interval == 0
        cw = self.class_weight
        stats = {k: torch.zeros((), device=acc.device) for k in STAT_NAMES}
        scale = lr_scale(cfg.optim, cfg.train.kimg, self.state["nimg"])
        for opt, base in ((self.opt_d, cfg.optim.d_lr), (self.opt_g, cfg.optim.g_lr)):
            for group in opt.param_groups:
                group["lr"] = base * scale

        # ---- D phase: reals up, fakes down, R1 on reals, optional bCR and class loss
        self.D.requires_grad_(True)
        for i in range(n_micro):
            sl = slice(i * self.micro, (i + 1) * self.micro)
            z, c = self._latents(self.micro, rng)
            with torch.no_grad():
                fakes = self.G(z, c)
            with acc.no_sync(self.D) if i < n_micro - 1 else nullcontext():
                x_real = reals[sl].detach().requires_grad_(do_r1)
                rc = real_c[sl] if real_c is not None else None
                if cw > 0:  # auxiliary classifier learns the classes of reals only
                    real_logits, real_cls = self.D(self._aug(x_real, rng), rc, class_logits=True)
                else:
                    real_logits = self.D(self._aug(x_real, rng), rc)
                fake_logits = self.D(self._aug(fakes, rng), c)
                if self.ada is not None:
                    self.ada.observe(real_logits)
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
                    bcr = consistency_loss(torch.cat([real_logits, fake_logits]).float(), plain)
                    loss = loss + cfg.loss.bcr_weight * bcr
                    stats["bcr"] += bcr.detach() / n_micro
                acc.backward(loss / n_micro)
        if not self.guard.finite(stats["loss_D"] + stats["r1"] + stats["bcr"] + stats["cls_D"], "loss_D", self.state):
            self.opt_d.zero_grad(set_to_none=True)
            return self.guard.skip(self.state)
        self.opt_d.step()
        self.opt_d.zero_grad(set_to_none=True)

        # ---- G phase: fakes up (D frozen, not synchronised), optional class loss
        self.D.requires_grad_(False)
        for i in range(n_micro):
            z, c = self._latents(self.micro, rng)
            with acc.no_sync(self.D), (acc.no_sync(self.G) if i < n_micro - 1 else nullcontext()):
                if cw > 0:  # fakes should be classified as the class they were made for
                    logits, fake_cls = self.D(self._aug(self.G(z, c), rng), c, class_logits=True)
                else:
                    logits = self.D(self._aug(self.G(z, c), rng), c)
                loss = g_loss(cfg.loss.kind, logits.float())
                stats["loss_G"] += loss.detach() / n_micro
                if cw > 0:
                    cls = F.cross_entropy(fake_cls.float(), c)
                    loss = loss + cw * cls
                    stats["cls_G"] += cls.detach() / n_micro
                acc.backward(loss / n_micro)
        self.D.requires_grad_(True)
        if not self.guard.finite(stats["loss_G"] + stats["cls_G"], "loss_G", self.state):
            self.opt_g.zero_grad(set_to_none=True)
            return self.guard.skip(self.state)
        self.opt_g.step()
        self.opt_g.zero_grad(set_to_none=True)

        # ---- EMA
        self.state["step"] += 1
        self.state["nimg"] += cfg.train.batch_size
        self.ema.update(acc.unwrap_model(self.G), ema_beta_at(cfg.train, self.state["nimg"]))
        if self.ada is not None:
            self.ada.step_done(self.state["step"], acc)
        return stats

    # ------------------------------------------------------------------ the loop

    def train(self) -> dict:
        try:
            return self._train()
        finally:
            self.lock.release()

    def _train(self) -> dict:
        acc, t = self.accelerator, self.cfg.train
        resumed = self.resume()
        notes = self._on_rank0(self._tidy_run_dir) or []
        acc.wait_for_everyone()
        total_nimg = int(t.kimg * 1000)
        logger = RunLogger(
            self.run, acc.is_main_process, t.kimg, self.state["nimg"] / 1000, acc, self.cfg,
            purge_step=self.state["step"] + 1 if resumed else 0,  # events of an earlier, killed attempt go
        )  # fmt: skip
        self._log_start(logger, resumed, notes, total_nimg)
        self.write_reals_grid()
        if not resumed:
            self.write_fakes_grid(logger)
        self.stop.install()
        if acc.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

        batches = self._batches()
        tick = _Tick(self.state["nimg"])
        every = {
            "tick": t.tick_kimg, "grid": t.grid_kimg, "ckpt": t.checkpoint_kimg, "fid": self.cfg.metrics.fid.every_kimg,
            "swd": self.cfg.metrics.swd.every_kimg,
        }  # fmt: skip
        due = {k: _next_multiple(self.state["nimg"], v) for k, v in every.items()}
        stopped, start_step = False, self.state["step"]
        try:
            while self.state["nimg"] < total_nimg:
                images, labels = next(batches)
                self.stop.hold_child_errors()
                self.stop.in_step = True  # a second signal or a worker's death waits for the end of the step
                try:
                    stats = self.train_step(images, labels)
                finally:
                    self.stop.in_step = False
                tick.add(stats)
                self.stop.raise_held()
                if self.threads is not None and (note := self.threads.update()):
                    logger.line(note)
                nimg = self.state["nimg"]
                logger.advance(nimg / 1000)
                done = nimg >= total_nimg
                stop = self.stop.requested(acc)
                if nimg >= due["tick"] or done or stop:
                    means = self._log_tick(logger, tick, total_nimg)
                    tick = _Tick(nimg, tick.run_start)
                    self.blowup.tick(means, self.state, ckpt.latest_checkpoint(self.run.checkpoints_dir))
                t_aside = time.time()  # scores, checkpoints and grids: not counted in the tick's speed
                # no score on a stop: an FID takes minutes, the stop was asked for now
                new_best = not stop and self._score(logger, fid=nimg >= due["fid"] or done, swd=nimg >= due["swd"] or done)
                if nimg >= due["ckpt"] or done or stop or new_best:  # before the grid: a grid never costs a checkpoint
                    saved = self._checkpoint(logger, final=done or stop)
                if nimg >= due["grid"] or done:
                    self.write_fakes_grid(logger)
                tick.start_time += time.time() - t_aside
                due = {k: (_next_multiple(nimg, every[k]) if nimg >= due[k] else due[k]) for k in due}
                if stop:
                    stopped = True
                    logger.line(f"Stop requested: checkpoint saved at step {self.state['step']}; exiting." if saved else
                                f"Stop requested at step {self.state['step']}: no checkpoint written, the newest is "
                                f"{ckpt.latest_checkpoint(self.run.checkpoints_dir)}; exiting.")  # fmt: skip
                    break
        except BaseException as err:
            if isinstance(err, RuntimeError) and self.world > 1 and is_peer_failure(err):  # no collective can succeed: exit
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise PeerLostError(
                    f"rank {self.rank}: lost contact with another process at step {self.state['step']} ({first}); "
                    f"the newest checkpoint, {ckpt.latest_checkpoint(self.run.checkpoints_dir)}, is intact: "
                    "restart with resume=auto"
                ) from err
            nothing_trained = self.state["step"] == start_step
            worker_ended = self.stop.received and "DataLoader worker" in str(err)  # the launcher ends the tree
            if isinstance(err, StopNow) or worker_ended:  # outside a step (an FID, a save): the state is whole
                stopped = True
                where = "nothing was trained since the start" if nothing_trained else self._save_now()
                how = f"again ({err}): stopped at once" if isinstance(err, StopNow) else "(the data workers ended too)"
                logger.line(f"Stop requested {how}; {where}; exiting.")
            else:
                known = (NonFiniteLossError, DivergenceError, ckpt.CheckpointWriteError)  # they say what happened
                if isinstance(err, known) or not isinstance(err, (Exception, KeyboardInterrupt)) or (
                    nothing_trained and not isinstance(err, KeyboardInterrupt)
                ):
                    raise
                # a worker killed, the data damaged or replaced: save what can be saved, one line
                raise self._saved_after(err, logger) from err
        finally:
            logger.close()
        return {"step": self.state["step"], "kimg": self.state["nimg"] / 1000, "stopped": stopped}

    def _tidy_run_dir(self) -> list[str]:
        """Rank 0, at the start of train(): remove what an interrupted save or a killed trainer
        left, set damaged checkpoints aside, forget the log lines a resumed run logs again."""
        self.run.samples_dir.mkdir(parents=True, exist_ok=True)
        ckpt.clean_partial_checkpoints(self.run.checkpoints_dir)
        for tmp in self.run.temporaries():  # we hold the lock: nobody else is writing them
            tmp.unlink(missing_ok=True)
        for path, why in self.resume_choice.damaged:
            if path.is_dir():
                aside = ckpt.set_aside(path)
                warnings.warn(f"damaged checkpoint {path.name} moved to {aside} ({why})", stacklevel=2)
        notes = [self.resume_choice.note] if self.resume_choice.note else []
        dropped = self.run.drop_metrics_after(self.state["step"])
        if dropped:
            notes.append(
                f"{dropped} line(s) of {self.run.metrics_file.name} logged after step {self.state['step']} "
                "(after the checkpoint resumed from) were removed: they are logged again"
            )
        return notes

    def _log_start(self, logger: RunLogger, resumed: bool, notes: list[str], total_nimg: int) -> None:
        t, s = self.cfg.train, self.state
        where = f", from {self.resume_choice.path}" if resumed else ""
        g_params = sum(p.numel() for p in self.ema.module.parameters()) / 1e6
        d_params = sum(p.numel() for p in self.accelerator.unwrap_model(self.D).parameters()) / 1e6
        logger.line(
            f"{'Resuming' if resumed else 'Starting'} at kimg {s['nimg'] / 1000:.3f} (step {s['step']}{where}); "
            f"{self.world} process(es), batch {t.batch_size} = {self.world} x {t.grad_accum} x {self.micro}, "
            f"G {g_params:.2f}M params, D {d_params:.2f}M params, run dir {self.run.path}"
        )
        for note in self.recipe_notes + notes:
            logger.line(note)
        if self.threads is not None:  # a run's numbers depend on the count (float sums), so say it loudly
            logger.line(self._threads_line())
        if s["nimg"] >= total_nimg:
            logger.line(f"Nothing to train: the run is at kimg {s['nimg'] / 1000:.3f} >= train.kimg={t.kimg}")
        skipped = getattr(self.dataset, "num_skipped", 0)
        if skipped:
            logger.line(f"data: {skipped} unreadable image(s) skipped so far (each named in a warning)")

    def _threads_line(self) -> str:
        """The CPU thread count, whether it may change, and how to pin it: float sums differ in their
        last bits between counts and training amplifies that (the CPU demo: Shapes-FID 137 after the
        count dropped to 1 on a busy machine, 69.7 on a quiet one)."""
        n = torch.get_num_threads()
        if self.cfg.train.cpu_threads or os.environ.get(THREADS_ENV):
            return f"CPU: {n} torch thread(s) per process (fixed: train.cpu_threads or ${THREADS_ENV})"
        why = "fewer while other processes use the cores" if self.threads.enabled else "the cores of this process"
        return (f"CPU: {n} torch thread(s) per process (automatic: {why}; a run's numbers depend on the count: "
                f"train.cpu_threads={n} fixes it)")  # fmt: skip

    def _score(self, logger: RunLogger, fid: bool, swd: bool) -> bool:
        """The scores that are due, of the EMA generator (collective); logs them; True when the score
        that picks checkpoints (FID, else SWD: Scorer.best_key) is a new best (that checkpoint is kept)."""
        result = {}
        if fid and self.scorer.enabled:
            result.update(self.scorer(self.ema.module) or {})
        if swd:
            result.update(self.scorer.swd(self.ema.module) or {})
        if not result:
            return False
        key = self.scorer.best_key
        value = result.get(key) if key else None
        best = self.state["best_fid"]
        if best is not None and (self.state["best_key"] or self.scorer.key) != key:
            best = None  # the run picked by another score before (metrics changed on resume): start again
        new_best = value is not None and (best is None or value < best)
        if new_best:
            self.state.update(best_fid=value, best_step=self.state["step"], best_key=key)
        kimg = self.state["nimg"] / 1000
        logger.line(f"kimg {kimg:8.3f}  " + "  ".join(f"{k} {v:.4f}" for k, v in result.items())
                    + (f"  (best {key} so far: this checkpoint is kept)" if new_best else ""))  # fmt: skip
        logger.record({"kimg": kimg, "step": self.state["step"], **result}, self.state["step"])
        return new_best

    def _log_tick(self, logger: RunLogger, tick: _Tick, total_nimg: int) -> dict:
        """The tick's line and metrics.jsonl row: mean statistics over ranks, speed, memory, ETA."""
        acc = self.accelerator
        means = tick.means(len(STAT_NAMES), acc.device)
        skipped = torch.tensor([float(getattr(self.dataset, "num_skipped", 0))], device=means.device)
        means = torch.cat([means, skipped])
        if self.world > 1:
            means = acc.reduce(means, reduction="mean")
        *means, skipped = means.tolist()
        skipped = round(skipped * self.world)  # unreadable images found so far, all ranks
        means = dict(zip(STAT_NAMES, means))
        nimg = self.state["nimg"]
        img_s = (nimg - tick.start_nimg) / max(time.time() - tick.start_time, 1e-9)
        sec_per_kimg = 1000 / img_s if img_s > 0 else float("nan")
        eta = (total_nimg - nimg) / img_s if img_s > 0 else float("nan")
        mem = torch.cuda.max_memory_allocated() / 2**30 if acc.device.type == "cuda" else _rss_gib()
        stats = {
            "kimg": nimg / 1000, "step": self.state["step"], "time_s": round(time.time() - tick.run_start, 2),
            "sec_per_kimg": round(sec_per_kimg, 3), "img_per_s": round(img_s, 2), "peak_mem_gib": round(mem, 3),
            "loss_D": means["loss_D"], "loss_G": means["loss_G"], "r1": means["r1"],
        }  # fmt: skip
        if self.cfg.loss.bcr_weight > 0:
            stats["bcr"] = means["bcr"]
        if self.class_weight > 0:
            stats["cls_D"], stats["cls_G"] = means["cls_D"], means["cls_G"]
        if self.ada is not None:
            stats["aug_p"] = round(self.ada.p, 6)
            if self.ada.rt is not None:
                stats["ada_rt"] = round(self.ada.rt, 4)
        if self.state["skipped_steps"]:
            stats["skipped_steps"] = self.state["skipped_steps"]
        if skipped:
            stats["skipped_images"] = skipped
        extra = f"  cls_D {means['cls_D']:.3f}  cls_G {means['cls_G']:.3f}" if "cls_D" in stats else ""
        extra += f"  aug_p {stats['aug_p']:.3f}" if "aug_p" in stats else ""
        extra += f"  skipped_images {skipped}" if skipped else ""
        logger.line(
            f"kimg {stats['kimg']:8.3f}  step {stats['step']:7d}  sec/kimg {sec_per_kimg:7.2f}  img/s {img_s:7.1f}  "
            f"mem {mem:5.2f}G  loss_D {means['loss_D']:.3f}  loss_G {means['loss_G']:.3f}  r1 {means['r1']:.4f}{extra}  "
            f"eta {format_duration(eta)}"
        )
        logger.record(stats, self.state["step"])
        return means

    def _checkpoint(self, logger: RunLogger, final: bool) -> bool:
        """A checkpoint, unless the losses are blowing up (then the good checkpoints stay, unpruned).
        True when one was written."""
        if not self.blowup.sane:
            logger.line(f"no checkpoint at step {self.state['step']}: {', '.join(self.blowup.last_bad)} beyond "
                        f"train.divergence_bound={self.cfg.train.divergence_bound:g}")  # fmt: skip
            return False
        return self.save(final=final) is not None

    def _save_now(self) -> str:
        """Save the in-memory state when it can be trusted (one process: a save is collective, and
        the others may be elsewhere; finite weights; losses not blowing up). Says where it is."""
        where = f"the newest checkpoint, {ckpt.latest_checkpoint(self.run.checkpoints_dir)}, is intact"
        if self.world == 1 and self.blowup.sane and self._weights_finite():
            try:
                return f"the state at step {self.state['step']} was saved in {self.save(final=True)}"
            except Exception as save_err:  # noqa: BLE001  (the error that stopped the loop is the one to report)
                where += f" (saving the state at step {self.state['step']} failed too: {type(save_err).__name__})"
        return where

    def _saved_after(self, err: BaseException, logger: RunLogger) -> TrainingError:
        """An error stopped the loop: save the in-memory state when it can be trusted, log one line
        (train.log), and return the error to raise."""
        message = (f"training stopped at step {self.state['step']} by {_one_line(err)}; {self._save_now()}; "
                   "continue with resume=auto")  # fmt: skip
        logger.line(f"ERROR: {message}", console=False)  # the error itself reaches the console (the CLI: one line)
        return TrainingError(message)

    def _weights_finite(self) -> bool:
        modules = (self.accelerator.unwrap_model(self.G), self.accelerator.unwrap_model(self.D), self.ema.module)
        return all(torch.isfinite(p).all() for m in modules for p in m.parameters())

    # ------------------------------------------------------------------ grids, checkpoints, resume

    def write_fakes_grid(self, logger: RunLogger) -> None:
        """Rank 0: the fixed-seed grid of the EMA generator at this kimg (and to the trackers)."""
        if not self.accelerator.is_main_process:
            return
        grid = fakes_grid(self.ema.module, self.cfg.train.grid_rows, self.cfg.train.grid_cols)
        if save_png(grid, self.run.fakes_grid(self.state["nimg"] / 1000)):
            try:
                logger.image("samples/ema", grid, self.state["step"])
            except Exception as err:  # noqa: BLE001  (a log write never stops training)
                warnings.warn(f"could not log the sample grid to TensorBoard ({type(err).__name__}: {err})", stacklevel=2)

    def write_reals_grid(self) -> None:
        if self.accelerator.is_main_process and not self.run.reals_grid.exists():
            t = self.cfg.train
            save_png(reals_grid(self.dataset, t.grid_rows, t.grid_cols, self.num_classes), self.run.reals_grid)

    def save(self, final: bool = False) -> Path | None:
        """Checkpoint (collective) and, on rank 0, the generator file; prune old checkpoints. A
        failed write is a warning (the previous checkpoints are intact, the next save tries
        again) unless ``final``: then it is raised."""
        acc, root = self.accelerator, self.run.checkpoints_dir
        state = {**self.state, "kimg": self.state["nimg"] / 1000, ckpt.MODEL_KEY: self.model_settings()}
        if self.ada is not None:
            state.update(self.ada.state(acc))  # collective
        try:
            path = ckpt.save_checkpoint(acc, root, self.state["step"], self.ema.module, state)
        except ckpt.CheckpointWriteError as err:
            newest = ckpt.latest_checkpoint(root)
            if final:
                raise ckpt.CheckpointWriteError(f"{err}; the newest intact checkpoint is {newest}") from err
            if acc.is_main_process:
                warnings.warn(f"{err}; training continues (newest intact checkpoint: {newest})", stacklevel=2)
            return None
        if acc.is_main_process:
            meta = {"step": self.state["step"], "kimg": state["kimg"], "seed": self.cfg.seed}
            try:
                save_generator(self.ema.module, self.run.generator_file, meta)
            except Exception as err:  # the checkpoint holds the same weights: not worth a crash
                warnings.warn(f"could not write {self.run.generator_file} ({type(err).__name__}: {err})", stacklevel=2)
            best = self.state["best_step"]
            protect = (path.name,) + ((ckpt.checkpoint_name(best),) if best is not None else ())  # never the one just written
            ckpt.prune_checkpoints(root, self.cfg.train.keep_checkpoints, protect=protect)
        acc.wait_for_everyone()
        return path

    def resume(self) -> bool:
        """Load the checkpoint chosen at construction (verified and checked then)."""
        path = self.resume_choice.path
        if path is None:
            return False
        state = ckpt.load_checkpoint(self.accelerator, path, self.ema.module, verify=False)
        self.state.update({k: v for k, v in state.items() if k in self.state})
        if self.ada is not None:
            self.ada.load(state, self.accelerator.is_main_process)
        return True


class _Tick:
    """Sums of the per-step statistics since the tick started (and when it, and the run, started)."""

    def __init__(self, nimg: int, run_start: float | None = None):
        self.start_nimg, self.start_time = nimg, time.time()
        self.run_start = self.start_time if run_start is None else run_start
        self.sums, self.count = None, 0

    def add(self, stats: dict | None) -> None:
        if stats is not None:
            vec = torch.stack([stats[k] for k in STAT_NAMES]).float()
            self.sums = vec if self.sums is None else self.sums + vec
            self.count += 1

    def means(self, n: int, device) -> torch.Tensor:
        return self.sums / self.count if self.sums is not None else torch.zeros(n, device=device)


def _next_multiple(nimg: int, every_kimg: float) -> float:
    if every_kimg <= 0:
        return float("inf")
    every = every_kimg * 1000
    return (math.floor(nimg / every) + 1) * every


def _one_line(err: BaseException) -> str:
    """``Type: first line`` of an error (its last full stop dropped: a sentence follows it); for one
    re-raised from a DataLoader worker, the original's."""
    text = str(err).strip()
    lines = [ln.strip().rstrip(".") for ln in text.splitlines() if ln.strip()]
    if "Original Traceback" in text and lines:  # "Caught X in DataLoader worker process 0. Original Traceback ... X: msg"
        last = lines[-1]
        name, _, msg = last.partition(": ")
        return f"{name.rsplit('.', 1)[-1]}: {msg}" if msg else last
    return f"{type(err).__name__}{': ' + lines[0] if lines else ''}"


def _rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _cat(a, b):
    return None if a is None else torch.cat([a, b])
