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
      checkpoints/step-<step>/      accelerator.save_state + ema.safetensors + train_state.json
      checkpoints/.tmp-step-<step>/ a checkpoint being written (removed at the next start)
      checkpoints/.damaged-step-<step>/  a checkpoint that failed verification, set aside on resume
      eval/<metric>-...json         results of `maxvit-gan evaluate`
      export/                       `maxvit-gan export`'s default folder (model card, weights, config)

The trainer writes through :class:`RunDir`; sampling, evaluation and the benchmarks read
through it; no other module spells these names. :func:`load_generator` turns anything a
user may point at (a run, a checkpoint, a file, an exported folder, a Hub id) into a
generator.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from maxvit_gan.models import Generator
from maxvit_gan.models.pretrained import read_generator_metadata

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
# inside a checkpoint directory
CHECKPOINT_EMA_FILE = "ema.safetensors"  # the EMA state dict (weights only: the architecture is the run's)
TRAIN_STATE_FILE = "train_state.json"  # step, kimg, epoch, position, best FID

_CHECKPOINT_RE = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}"


PARTIAL_KINDS = ("tmp", "old")  # leftovers of an interrupted save
DAMAGED_KIND = "damaged"  # a checkpoint that failed verification, set aside (kept for inspection)
_PARTIAL_RE = re.compile(r"^\.(tmp|old|damaged)-step-(\d+)$")


def partial_checkpoint_name(step: int, kind: str) -> str:
    """A checkpoint being written (``tmp``), replaced (``old``) or set aside as ``damaged``:
    hidden, never listed."""
    return f".{kind}-{checkpoint_name(step)}"


def list_partial_checkpoints(root: str | os.PathLike, kinds: tuple[str, ...] = PARTIAL_KINDS) -> list[tuple[str, int, Path]]:
    """``(kind, step, path)`` of the hidden checkpoint directories under ``root`` of the given kinds."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        m = _PARTIAL_RE.match(p.name)
        if m and m.group(1) in kinds:
            out.append((m.group(1), int(m.group(2)), p))
    return out


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a ``step-<N>`` directory name, or None for any other name."""
    m = _CHECKPOINT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (``step-*`` directories) under ``root``, oldest first.
    Partial saves live under other names (``.tmp-step-*``) and are never listed."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(s, p) for p in root.iterdir() if (s := checkpoint_step(p)) is not None and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(root)
    return ckpts[-1] if ckpts else None


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

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints_dir / checkpoint_name(step)

    def checkpoints(self) -> list[Path]:
        return list_checkpoints(self.checkpoints_dir)

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.checkpoints_dir)

    @staticmethod
    def checkpoint_state(checkpoint: str | os.PathLike) -> dict:
        """The train state (step, nimg, kimg, ...) saved with a checkpoint directory."""
        import json

        return json.loads((Path(checkpoint) / TRAIN_STATE_FILE).read_text())

    def read_metrics(self) -> list[dict]:
        """The lines of ``metrics.jsonl`` (ticks and FID evaluations), in order."""
        import json

        if not self.metrics_file.is_file():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    def drop_metrics_after(self, step: int) -> int:
        """Remove the lines of ``metrics.jsonl`` logged after ``step`` (and a torn last line): a
        run resumed from the checkpoint of ``step`` logs them again. Atomic; returns the count."""
        import json

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
            tmp = self.metrics_file.with_name(f".{METRICS_FILE}.tmp-{os.getpid()}")
            tmp.write_text("".join(keep))
            os.replace(tmp, self.metrics_file)
        return dropped

    def temporaries(self) -> list[Path]:
        """Files written under a temporary name and not renamed (``*.tmp-<pid>``: the generator
        file, sample grids, metrics.jsonl rewrites) that a killed trainer left behind."""
        out = []
        for folder in (self.path, self.samples_dir):
            if folder.is_dir():
                out += [p for p in folder.iterdir() if p.is_file() and re.search(r"\.tmp-\d+$", p.name)]
        return sorted(out)

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
        """``config_resolved.yaml`` as plain Python containers (interpolations resolved)."""
        from omegaconf import OmegaConf

        if not self.config_file.is_file():
            raise FileNotFoundError(f"run={self.path}: no {CONFIG_FILE} (is this a training run directory?)")
        return OmegaConf.to_container(OmegaConf.load(self.config_file), resolve=True)

    def data_config(self):
        """The run's ``data`` section as a :class:`maxvit_gan.config.DataConfig`."""
        from maxvit_gan.config import DataConfig

        return DataConfig(**(self.read_config().get("data") or {}))

    def class_names(self) -> list[str] | None:
        """Class names of the run's training data when they can be known cheaply (shapes: the
        shape names; zip: its dataset.json); None when unknown or unconditional."""
        if not self.has_config():
            return None
        data = self.read_config().get("data") or {}
        if not data.get("conditional", True):
            return None
        if data.get("name") == "shapes":
            from maxvit_gan.data.synthetic import SHAPE_NAMES

            return list(SHAPE_NAMES[: int(data.get("shapes_num_classes", 4))])
        if data.get("name") == "zip" and data.get("path") and os.path.isfile(data["path"]):
            import json
            import zipfile

            try:
                with zipfile.ZipFile(data["path"]) as zf:
                    meta = json.loads(zf.read("dataset.json"))
                return list(meta.get("class_names") or []) or None
            except (KeyError, ValueError, OSError, zipfile.BadZipFile):
                return None
        return None

    def latest_metrics(self) -> dict:
        """What the run measured: ``training``, the newest FID-tracking row of metrics.jsonl
        (kimg, step, fid*/kid*/is*), and ``evaluations``, one summary per ``eval/*.json``
        (newest first). Empty dict when there is neither."""
        import json

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


# ---------------------------------------------------------------------- loading a generator


def _is_pretrained_dir(path: Path) -> bool:
    from maxvit_gan.models.pretrained import PRETRAINED_CONFIG, PRETRAINED_WEIGHTS

    return path.is_dir() and (path / PRETRAINED_WEIGHTS).is_file() and (path / PRETRAINED_CONFIG).is_file()


def class_names(source: str | os.PathLike | None) -> list[str] | None:
    """Class names of a run or an exported model: the metadata of a ``save_pretrained`` folder
    or generator file, else the run's ``config_resolved.yaml``. None when unknown (or a Hub id:
    load it, then read ``G.metadata``)."""
    if source is None or is_hub_id(str(source)):
        return None
    from maxvit_gan.models.pretrained import read_metadata

    path = Path(source).expanduser()
    meta_source = RunDir(path).generator_file if path.is_dir() and not _is_pretrained_dir(path) else path
    names = read_metadata(meta_source).get("class_names") if meta_source.exists() else None
    if names:
        return [str(n) for n in names]
    return RunDir(path).class_names() if path.is_dir() else None


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def is_hub_id(source: str | os.PathLike | None) -> bool:
    """``user/name`` that is not a local path: a Hugging Face Hub model repo id."""
    return isinstance(source, str) and bool(_HUB_ID.match(source)) and not Path(source).expanduser().exists()


def _with_run_metadata(G: Generator, run: RunDir, weights: Path | None = None) -> Generator:
    """Add what the run knows to ``G.metadata``: class names and, for a checkpoint's weights,
    that checkpoint's step and kimg (so an export or an evaluation names the right step)."""
    meta = dict(getattr(G, "metadata", None) or {})
    if not meta.get("class_names") and G.num_classes:
        names = run.class_names()
        if names and len(names) == G.num_classes:
            meta["class_names"] = names
    state_file = weights.parent / TRAIN_STATE_FILE if weights is not None else None
    if state_file is not None and state_file.is_file():
        import json

        state = json.loads(state_file.read_text())
        meta.update({k: state[k] for k in ("step", "kimg") if k in state})
        meta["checkpoint"] = weights.parent.name
    G.metadata = meta
    return G


def load_generator(
    source: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    **hub_kwargs,
) -> Generator:
    """An eval-mode generator from any source; errors name the key (``run:`` / ``checkpoint:``).

    ``source``: a training run directory (its ``generator_ema.safetensors``), a
    ``save_pretrained`` folder, a self-describing ``.safetensors`` file, or a Hugging Face Hub
    repo id ``user/name`` (``Generator.from_pretrained``; ``hub_kwargs`` such as ``revision``
    go to the download). ``checkpoint``: the EMA weights of a checkpoint instead: ``latest``, a
    ``checkpoints/step-N`` directory (absolute, or relative to the run), or a ``.safetensors``
    file; a weights-only file takes its architecture from the run's generator.
    ``G.metadata`` holds the step, kimg and class names when they are known.
    """
    run_path = Path(source).expanduser() if source is not None else None
    if run_path is not None:
        if not run_path.exists():
            if is_hub_id(str(source)):
                if checkpoint is not None:
                    raise ValueError(f"checkpoint: a Hub model ({source}) has no checkpoints; drop checkpoint=")
                return _from_hub(str(source), device, hub_kwargs)
            raise FileNotFoundError(
                f"run: no such directory or file: {source} (expected a training run directory with "
                f"{GENERATOR_FILE}, a save_pretrained folder, a .safetensors file or a Hub repo id user/name)"
            )
        if run_path.is_dir() and not (RunDir(run_path).generator_file.is_file() or _is_pretrained_dir(run_path)):
            raise FileNotFoundError(
                f"run: {source} holds no generator weights (expected {GENERATOR_FILE}, written at a "
                "training run's first checkpoint, or model.safetensors + config.json from save_pretrained)"
            )
    if checkpoint is None:
        if run_path is None:
            raise ValueError(
                "run: required (a training run directory, a save_pretrained directory, a .safetensors file "
                "or a Hub repo id)"
            )
        if run_path.is_file() or _is_pretrained_dir(run_path):
            return Generator.from_pretrained(run_path, device=device)
        return _with_run_metadata(Generator.from_pretrained(RunDir(run_path).generator_file, device=device), RunDir(run_path))

    ckpt = _resolve_checkpoint(str(checkpoint), run_path)
    weights = ckpt / CHECKPOINT_EMA_FILE if ckpt.is_dir() else ckpt
    if not weights.is_file():
        raise FileNotFoundError(
            f"checkpoint: {ckpt} has no {CHECKPOINT_EMA_FILE} (expected a checkpoint directory "
            f"{CHECKPOINTS_DIR}/step-N or a .safetensors file)"
        )
    if "generator_config" in read_generator_metadata(weights):  # self-describing file
        return Generator.from_pretrained(weights, device=device)
    if run_path is None:
        raise ValueError(
            f"run: required with checkpoint={checkpoint} ({weights.name} holds weights only; the "
            f"architecture comes from the run's {GENERATOR_FILE})"
        )
    from maxvit_gan.models.pretrained import load_weights

    G = load_generator(run_path, device="cpu")
    try:
        G.load_state_dict(load_weights(weights))
    except RuntimeError as err:
        raise ValueError(f"checkpoint: the weights in {weights} do not fit the generator of run {source}: {err}") from None
    if run_path.is_dir():
        G = _with_run_metadata(G, RunDir(run_path), weights)
    return G.to(device)


def _from_hub(repo_id: str, device, hub_kwargs: dict) -> Generator:
    try:
        return Generator.from_pretrained(repo_id, device=device, **hub_kwargs)
    except FileNotFoundError:  # huggingface_hub is not installed: the message says how to get it
        raise
    except Exception as err:  # offline, no such repo, not a maxvit-gan model: one message
        raise FileNotFoundError(
            f"run: {repo_id} is not a local path, and reading it from the Hugging Face Hub failed "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err


def _resolve_checkpoint(checkpoint: str, run_path: Path | None) -> Path:
    if checkpoint == "latest":
        if run_path is None or run_path.is_file():
            raise ValueError("checkpoint: 'latest' needs run=<run directory>")
        ckpt = RunDir(run_path).latest_checkpoint()
        if ckpt is None:
            raise FileNotFoundError(f"checkpoint: no {CHECKPOINTS_DIR}/step-* in {run_path}")
        return ckpt
    ckpt = Path(checkpoint).expanduser()
    if not ckpt.exists() and run_path is not None and run_path.is_dir() and (run_path / checkpoint).exists():
        ckpt = run_path / checkpoint
    if not ckpt.exists():
        where = f" (nor under run {run_path})" if run_path is not None else ""
        raise FileNotFoundError(f"checkpoint: no such directory or file: {checkpoint}{where}")
    return ckpt
