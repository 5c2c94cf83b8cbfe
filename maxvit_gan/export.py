"""Sharing a trained generator: a self-contained folder with a model card, optionally on the Hub.

``export_generator`` (``maxvit-gan export``) writes::

    <out>/
      model.safetensors      the EMA weights (+ the architecture in the metadata)
      config.json            architecture + metadata: class names, step, kimg, metrics, training data
      README.md              the model card: sample grid, metrics, dataset, config, license, how to use
      samples.png            a fixed-seed grid (one class per row)
      training_config.yaml   the run's full configuration

``Generator.from_pretrained(<out> or USER/NAME)`` loads it, and ``maxvit-gan sample`` /
``evaluate`` take the folder or the Hub id as ``run=``. ``push_to_hub=USER/NAME`` uploads the
folder (``huggingface_hub``; tests replace the upload).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

from maxvit_gan.loading import is_hub_id, load_generator
from maxvit_gan.models.card import model_card
from maxvit_gan.models.pretrained import upload_folder
from maxvit_gan.rundir import RunDir
from maxvit_gan.sampling import parse_seeds, sample_grid

SAMPLES_FILE = "samples.png"
TRAINING_CONFIG_FILE = "training_config.yaml"


def _run_of(source: str | None) -> RunDir | None:
    if source is None or is_hub_id(source):
        return None
    run = RunDir(source)
    return run if run.path.is_dir() and run.has_config() else None


def _without_local_paths(value):
    """The run's config as shared: every absolute or home path (run_dir, data.path, a FID
    reference, the cache folder) reduced to its last part: a local path means nothing elsewhere
    and tells others how this machine is laid out."""
    if isinstance(value, dict):
        return {k: _without_local_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_local_paths(v) for v in value]
    if isinstance(value, str):
        key, eq, rest = value.rpartition("=")  # a recorded override: data.path=/home/me/x.zip
        if rest.startswith(("/", "~")) or (len(rest) > 2 and rest[1:3] in (":\\", ":/")):
            return key + eq + (Path(rest.replace("\\", "/")).name or rest)
    return value


def _yaml(config: dict) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))


def export_generator(cfg) -> dict:
    """Everything ``maxvit-gan export`` does, from a :class:`maxvit_gan.config.ExportConfig`.
    Returns ``{"folder": Path | None, "url": str | None}`` (the folder is None when only pushed)."""
    if cfg.run is None:
        raise ValueError("run: required (a training run directory, an export folder, a .safetensors file or a Hub id)")
    if cfg.push_to_hub is not None and "/" not in cfg.push_to_hub:
        raise ValueError(f"push_to_hub: expected USER/NAME (a Hugging Face model repo id), got {cfg.push_to_hub!r}")
    seeds = parse_seeds(cfg.seeds)
    G = load_generator(cfg.run, cfg.checkpoint)
    run = _run_of(cfg.run)
    metadata = dict(G.metadata)
    training_config = None
    if run is not None:
        metadata["source_run"] = run.path.name  # the folder's name only: a local path means nothing elsewhere
        try:
            config = _without_local_paths(run.read_config())
            metadata["data"] = config.get("data")
            training_config = _yaml(config)
        except ValueError as err:  # damaged: the generator file carries the architecture, the rest is lost
            warnings.warn(f"{err}; the export has no training_config.yaml and its card no training data", stacklevel=2)
        metadata["metrics"] = run.latest_metrics()
    metadata["license"] = cfg.license

    names = metadata.get("class_names") if G.num_classes else None
    rows = cfg.rows or (min(G.num_classes, len(seeds)) if G.num_classes else None)
    grid = sample_grid(G, seeds, rows=rows, truncation=cfg.truncation)
    caption = f"Seeds {cfg.seeds}, " + (f"truncation psi {cfg.truncation} (mean mode)" if cfg.truncation is not None else "no truncation")
    if grid.labels is not None:
        row_classes = [grid.labels[r * grid.cols] for r in range(grid.rows)]
        caption += "; one class per row: " + ", ".join(names[c] if names else str(c) for c in row_classes)
    caption += "."

    if cfg.out is not None:
        folder, temporary = Path(cfg.out).expanduser(), None
    elif run is not None:
        folder, temporary = run.export_dir, None
    elif cfg.push_to_hub is not None:
        temporary = tempfile.TemporaryDirectory(prefix="maxvit_gan_export_")
        folder = Path(temporary.name)
    else:
        raise ValueError(f"out: required when run={cfg.run} is not a training run directory (where to write the folder)")
    try:
        if folder.exists() and any(folder.iterdir()) and not (folder / "config.json").is_file():
            raise ValueError(f"out: {folder} exists and is not an export folder; choose an empty or new folder")
        folder.mkdir(parents=True, exist_ok=True)
        grid.image.save(folder / SAMPLES_FILE)
        if training_config is not None:
            (folder / TRAINING_CONFIG_FILE).write_text(training_config)
        card = model_card(G, metadata, cfg.license, SAMPLES_FILE, caption, training_config)
        G.save_pretrained(folder, json.loads(json.dumps(metadata, default=str)), model_card=card)
        url = None
        if cfg.push_to_hub is not None:
            kwargs = {"private": cfg.private}
            if cfg.commit_message:
                kwargs["commit_message"] = cfg.commit_message
            url = _push(folder, cfg.push_to_hub, kwargs, kept=temporary is None)
        return {"folder": None if temporary else folder, "url": url}
    finally:
        if temporary is not None:
            temporary.cleanup()


def _push(folder: Path, repo_id: str, kwargs: dict, kept: bool) -> str:
    """``upload_folder``, its failures (offline, no token, no rights: huggingface_hub's and its HTTP
    client's errors, which are not OSErrors) as one line that says where the export is."""
    try:
        return upload_folder(folder, repo_id, **kwargs)
    except ModuleNotFoundError:  # huggingface_hub is not installed: the message says how to get it
        raise
    except Exception as err:
        first = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), "")
        where = f"the export is in {folder}" if kept else "give out=DIR to keep the export folder"
        raise OSError(f"push_to_hub: could not upload to {repo_id} ({type(err).__name__}: {first}); {where}") from None


__all__ = ["SAMPLES_FILE", "TRAINING_CONFIG_FILE", "export_generator"]

