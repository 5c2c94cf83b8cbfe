"""Save / load a generator as one self-describing safetensors file.

The file holds the weights and, in its metadata, the GeneratorConfig as JSON (plus any
extra string metadata, e.g. the training step). No pickles: safe to load from anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from maxvit_gan.models.config import GeneratorConfig
from maxvit_gan.models.generator import Generator

GENERATOR_FILE = "generator_ema.safetensors"


def save_generator(generator: Generator, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write weights + config atomically (temporary name, then rename)."""
    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["generator_config"] = json.dumps(generator.config.to_dict())
    state = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    save_file(state, str(tmp), metadata=meta)
    os.replace(tmp, path)


def read_generator_metadata(path: str | os.PathLike) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_generator(path_or_run: str | os.PathLike, device: str | torch.device = "cpu") -> Generator:
    """An eval-mode generator from a `.safetensors` file or a run directory holding one."""
    path = Path(path_or_run)
    if path.is_dir():
        path = path / GENERATOR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no generator weights at {path} (expected a run directory with {GENERATOR_FILE})")
    meta = read_generator_metadata(path)
    if "generator_config" not in meta:
        raise ValueError(f"{path}: no 'generator_config' in the safetensors metadata; not a maxvit-gan generator file")
    cfg = GeneratorConfig.from_dict(json.loads(meta["generator_config"]))
    generator = Generator(cfg)
    from safetensors.torch import load_file

    generator.load_state_dict(load_file(str(path)))
    return generator.to(device).eval().requires_grad_(False)
