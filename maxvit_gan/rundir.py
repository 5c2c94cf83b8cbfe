"""The run directory: every file and folder name a training run writes, in one place.

::

    <run>/
      config_resolved.yaml          the full configuration of the run
      metrics.jsonl                 one JSON line per tick (and per FID evaluation)
      train.log                     the lines training prints (start, ticks, FID, stop), appended on resume
      samples/reals.png             a grid of reals
      samples/fakes<kimg>.png       fixed-seed grids of the EMA generator
      tensorboard/                  TensorBoard event files
      generator_ema.safetensors     the newest EMA generator, self-describing (what sampling reads)
      train.lock                    held by the running trainer (rank 0): one trainer per directory
      checkpoints/                  the checkpoints (what is inside: maxvit_gan.checkpoint)
      eval/<metric>-...json         results of `maxvit-gan evaluate`
      export/                       `maxvit-gan export`'s default folder (model card, weights, config)

The trainer writes through :class:`RunDir`; sampling, evaluation and the benchmarks read
through it; no other module spells these names. Checkpoints: :mod:`maxvit_gan.checkpoint`;
loading a generator from a run (or anything else): :mod:`maxvit_gan.loading`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from maxvit_gan.files import stale_temporaries, write_text

CONFIG_FILE = "config_resolved.yaml"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
SAMPLES_DIR = "samples"
REALS_GRID = "reals.png"
TENSORBOARD_DIR = "tensorboard"
GENERATOR_FILE = "generator_ema.safetensors"
CHECKPOINTS_DIR = "checkpoints"
EVAL_DIR = "eval"
EXPORT_DIR = "export"
LOCK_FILE = "train.lock"  # held (flock) by the trainer's rank 0 for the whole run; JSON: who holds it


class RunDir:
    """Paths of one run directory. Creating the object touches nothing on disk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES_DIR

    @property
    def reals_grid(self) -> Path:
        return self.samples_dir / REALS_GRID

    def fakes_grid(self, kimg: float) -> Path:
        return self.samples_dir / f"fakes{kimg:09.3f}.png"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def generator_file(self) -> Path:
        return self.path / GENERATOR_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def read_metrics(self) -> list[dict]:
        """The lines of ``metrics.jsonl`` (ticks and FID evaluations), in order."""
        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def drop_metrics_after(self, step: int) -> int:
        """Remove the lines of ``metrics.jsonl`` logged after ``step`` (and a torn last line): a
        run resumed from the checkpoint of ``step`` logs them again. Atomic; returns the count."""
        if not self.metrics_file.is_file():
            return 0
        lines = self.metrics_file.read_text().splitlines(keepends=True)
        keep = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by a kill: drop it
                continue
            if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] > step:
                continue
            keep.append(line if line.endswith("\n") else line + "\n")
        dropped = len(lines) - len(keep)
        if dropped:
            write_text(self.metrics_file, "".join(keep))
        return dropped

    def temporaries(self) -> list[Path]:
        """Files written under a temporary name and not renamed (the generator file, sample grids,
        metrics.jsonl rewrites: :mod:`maxvit_gan.files`) that a killed trainer left behind. Only
        the trainer writes here, and it holds the run's lock: every one found is stale."""
        return stale_temporaries(self.path, all_pids=True) + stale_temporaries(self.samples_dir, all_pids=True)

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL_DIR

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT_DIR

    # ------------------------------------------------------------------ the resolved config

    def write_config(self, cfg) -> Path:
        """Save a config (a dataclass or DictConfig) as ``config_resolved.yaml``."""
        from omegaconf import OmegaConf

        self.path.mkdir(parents=True, exist_ok=True)
        node = cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg)
        OmegaConf.save(node, self.config_file)
        return self.config_file

    def has_config(self) -> bool:
        return self.config_file.is_file()

    def read_config(self) -> dict:
        """``config_resolved.yaml`` as plain Python containers (interpolations resolved). A file
        that is not YAML, not a mapping or does not resolve: one-line ``ValueError`` naming it."""
        from omegaconf import OmegaConf

        if not self.config_file.is_file():
            raise FileNotFoundError(f"run={self.path}: no {CONFIG_FILE} (is this a training run directory?)")
        try:
            cfg = OmegaConf.to_container(OmegaConf.load(self.config_file), resolve=True)
        except Exception as err:  # yaml's, OmegaConf's and decoding errors have no common base
            lines = [ln.strip() for ln in str(err).splitlines()]
            lines = [ln for ln in lines if ln and not ln.startswith(("full_key:", "object_type=", "reference_type="))]
            why = " ".join(lines).replace(f'in "{self.config_file}", ', "")[:200]
            raise ValueError(f"{self.config_file} is damaged ({type(err).__name__}: {why})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{self.config_file} is damaged (a {type(cfg).__name__}, not a mapping of settings)")
        return cfg

    def data_config(self):
        """The run's ``data`` section as a :class:`maxvit_gan.config.DataConfig`."""
        from maxvit_gan.config import DataConfig

        data = self.read_config().get("data") or {}
        try:
            return DataConfig(**data)
        except TypeError as err:  # not a mapping, or a key DataConfig does not have
            raise ValueError(f"{self.config_file} is damaged: its data section does not fit ({err})") from None

    def latest_metrics(self) -> dict:
        """What the run measured: ``training``, the newest FID-tracking row of metrics.jsonl
        (kimg, step, fid*/kid*/is*), and ``evaluations``, one summary per ``eval/*.json``
        (newest first). Empty dict when there is neither."""
        out: dict = {}
        if self.metrics_file.is_file():
            for line in reversed(self.metrics_file.read_text().splitlines()):
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                scores = {k: v for k, v in row.items() if k.startswith(("fid", "kid", "is"))}
                if scores:
                    out["training"] = {"kimg": row.get("kimg"), "step": row.get("step"), **scores}
                    break
        evaluations = []
        files = sorted(self.eval_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if self.eval_dir.is_dir() else []
        for path in files:
            try:
                result = json.loads(path.read_text())
            except ValueError:
                continue
            keep = ("fid", "kid", "is", "precision", "recall", "swd", "num_samples", "mode", "reference", "generator", "date")
            evaluations.append({k: v for k, v in result.items() if k.startswith(keep) and k != "is_std" and k != "kid_std"})
        if evaluations:
            out["evaluations"] = evaluations
        return out

    def is_run(self) -> bool:
        return self.path.is_dir() and (self.generator_file.is_file() or self.has_config())


