"""The model card (README.md) of a saved generator: what it is, its samples, metrics, training
data, how to use it, its license. ``save_pretrained`` writes it (``maxvit-gan export`` with
everything it knows about the run, a bare ``save_pretrained`` with what the generator knows)."""

from __future__ import annotations

from pathlib import Path

from maxvit_gan._version import __version__


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


def model_card(
    G, metadata: dict, license: str | None = None, samples: str | None = None, grid_caption: str | None = None,
    training_config: str | None = None,
) -> str:  # fmt: skip
    """The README.md of a saved generator (a Hugging Face model card with YAML front matter).
    What is not given (no license, no sample grid, no training config: ``save_pretrained`` alone)
    is left out or says it was not recorded."""
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
        *([f"license: {license}"] if license else []),
        f"pipeline_tag: {pipeline}",
        "tags: [gan, maxvit, hit, image-generation]",
        "---",
        "",
        "# maxvit-gan generator",
        "",
        f"A GAN generator built from MaxViT blocks in the HiT layout, trained with maxvit-gan {__version__}: "
        f"{kind}, {cfg.resolution}x{cfg.resolution} px, z_dim {cfg.z_dim}, {params:.2f}M parameters, {trained}.",
        "",
        *([f"![samples]({samples})", "", f"*{grid_caption}*", ""] if samples else []),
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
        f"images = G(torch.randn(4, G.z_dim), {labels})  # (4, 3, R, R), about [-1, 1]: not clipped",
        "```",
        "",
        f"or `{sample_cmd}`; `G.metadata` holds the class names, step, kimg and metrics.",
        "",
        "## License",
        "",
        (f"The weights are released under `{license}`. Check that the terms of the training data allow it. "
         if license else "No license was given for the weights (maxvit-gan export license=...). ")
        + "The maxvit-gan code is Apache-2.0.",
        "",
    ]
    if training_config:
        card += [
            "## Training configuration",
            "",
            "<details><summary>the run's configuration</summary>",
            "",
            "```yaml",
            training_config.rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(card)
