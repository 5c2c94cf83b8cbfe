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
from pathlib import Path

from maxvit_gan._version import __version__
from maxvit_gan.models.pretrained import upload_folder
from maxvit_gan.rundir import RunDir, is_hub_id, load_generator
from maxvit_gan.sampling import parse_seeds, sample_grid

SAMPLES_FILE = "samples.png"
TRAINING_CONFIG_FILE = "training_config.yaml"


def _run_of(source: str | None) -> RunDir | None:
    if source is None or is_hub_id(source):
        return None
    run = RunDir(source)
    return run if run.path.is_dir() and run.has_config() else None


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _metrics_table(metrics: dict) -> str:
    rows = []
    for ev in metrics.get("evaluations", []):
        ref = ev.get("reference") or {}
        ref_name = ref.get("name") or ref.get("kind", "?")
        if ref.get("kind") in ("folder", "zip", "file"):
            ref_name = f"{ref['kind']} {Path(str(ref.get('path', ''))).name}"
        protocol = f"`{ev.get('mode')}` features, {ev.get('num_samples')} samples vs {ref_name}"
        if ref.get("n"):
            protocol += f" ({ref['n']} images)"
        step = (ev.get("generator") or {}).get("step")
        at_step = f", step {step}" if step is not None else ""
        for key, value in ev.items():
            if key.startswith(("fid", "kid", "is", "precision", "recall")) and isinstance(value, (int, float)):
                rows.append(f"| {key} | {_fmt(value)} | {protocol}{at_step} |")
        if isinstance(ev.get("swd"), (int, float)):  # SWD (x1e3) with its real-vs-real floor
            sref = ev.get("swd_reference") or {}
            where = f"{sref.get('kind', '?')} {Path(str(sref['path'])).name}" if sref.get("path") else sref.get("kind", "?")
            rows.append(f"| swd | {_fmt(ev['swd'])} | x1e3, {ev.get('num_samples')} samples vs {sref.get('n')} images of "
                        f"{where}; real-vs-real floor {_fmt(ev.get('swd_floor'))}{at_step} |")  # fmt: skip
    training = metrics.get("training")
    if training:
        for key, value in training.items():
            if key.startswith(("fid", "kid", "is")):
                rows.append(f"| {key} (tracked in training) | {_fmt(value)} | at kimg {_fmt(training.get('kimg'))}: a curve, not a paper number |")
    if not rows:
        return "No metrics were recorded for this model. Measure them with `maxvit-gan evaluate run=<this folder or repo id> ref=...`.\n"
    return "| metric | value | protocol |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def _dataset_text(data: dict | None, class_names: list[str] | None) -> str:
    if not data:
        return "Not recorded (the generator was not exported from a training run directory).\n"
    name = data.get("name")
    if name == "shapes":
        text = (
            f"`shapes`: maxvit-gan's procedural dataset of coloured shapes ({data.get('shapes_num_images')} images, "
            f"{data.get('shapes_num_classes')} classes), generated on the fly; no external data."
        )
    else:
        text = f"`{name}` dataset `{Path(str(data.get('path'))).name}`, center-cropped to {data.get('resolution')} px (ADM preprocessing)."
    if data.get("max_images"):
        text += f" A fixed subset of {data['max_images']} images."
    if class_names:
        shown = ", ".join(class_names[:20]) + (", ..." if len(class_names) > 20 else "")
        text += f" Classes ({len(class_names)}): {shown}."
    elif not data.get("conditional", True):
        text += " Trained unconditionally."
    return text + "\n"


def model_card(G, metadata: dict, license: str, grid_caption: str, training_config: str | None) -> str:
    """The README.md of an exported generator (Hugging Face model card with YAML front matter)."""
    cfg = G.config
    conditional = bool(cfg.num_classes)
    kind = f"class-conditional ({cfg.num_classes} classes)" if conditional else "unconditional"
    params = sum(p.numel() for p in G.parameters()) / 1e6
    step, kimg = metadata.get("step"), metadata.get("kimg")
    trained = f"EMA weights of training step {step}" + (f" ({_fmt(kimg)} kimg)" if kimg is not None else "") if step is not None else "EMA weights"
    pipeline = "unconditional-image-generation" if not conditional else "image-generation"
    labels = "torch.arange(4) % G.num_classes" if conditional else "None"
    sample_cmd = "maxvit-gan sample run=<this folder or USER/NAME> seeds=0-63 out=grid.png"
    card = [
        "---",
        "library_name: maxvit-gan",
        f"license: {license}",
        f"pipeline_tag: {pipeline}",
        "tags: [gan, maxvit, hit, image-generation]",
        "---",
        "",
        "# maxvit-gan generator",
        "",
        f"A GAN generator built from MaxViT blocks in the HiT layout, trained with maxvit-gan {__version__}: "
        f"{kind}, {cfg.resolution}x{cfg.resolution} px, z_dim {cfg.z_dim}, {params:.2f}M parameters, {trained}.",
        "",
        f"![samples]({SAMPLES_FILE})",
        "",
        f"*{grid_caption}*",
        "",
        "## Metrics",
        "",
        _metrics_table(metadata.get("metrics") or {}),
        "Numbers are comparable only under the same protocol (features, number of samples, reference).",
        "",
        "## Training data",
        "",
        _dataset_text(metadata.get("data"), metadata.get("class_names")),
        "## Use",
        "",
        "```python",
        "import torch",
        "from maxvit_gan import Generator",
        "",
        'G = Generator.from_pretrained("<this folder or USER/NAME>")  # needs huggingface_hub for a repo id',
        f"images = G(torch.randn(4, G.z_dim), {labels})  # (4, 3, R, R) in [-1, 1]",
        "```",
        "",
        f"or `{sample_cmd}`; `G.metadata` holds the class names, step, kimg and metrics.",
        "",
        "## License",
        "",
        f"The weights are released under `{license}`. Check that the terms of the training data allow it. "
        "The maxvit-gan code is Apache-2.0.",
        "",
    ]
    if training_config:
        card += [
            "## Training configuration",
            "",
            f"<details><summary>{TRAINING_CONFIG_FILE}</summary>",
            "",
            "```yaml",
            training_config.rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(card)


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
        metadata["source_run"] = str(run.path.resolve())
        metadata["data"] = run.read_config().get("data")
        metadata["metrics"] = run.latest_metrics()
        training_config = run.config_file.read_text()
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
        card = model_card(G, metadata, cfg.license, caption, training_config)
        G.save_pretrained(folder, json.loads(json.dumps(metadata, default=str)), model_card=card)
        url = None
        if cfg.push_to_hub is not None:
            kwargs = {"private": cfg.private}
            if cfg.commit_message:
                kwargs["commit_message"] = cfg.commit_message
            url = upload_folder(folder, cfg.push_to_hub, **kwargs)
        return {"folder": None if temporary else folder, "url": url}
    finally:
        if temporary is not None:
            temporary.cleanup()


__all__ = ["SAMPLES_FILE", "TRAINING_CONFIG_FILE", "export_generator", "model_card"]

