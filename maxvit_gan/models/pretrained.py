"""A generator as one self-describing safetensors file, or as a shareable folder.

The file holds the weights and, in its metadata, the GeneratorConfig as JSON (plus any
extra string metadata, e.g. the training step). No pickles: safe to load from anywhere.

``save_pretrained`` writes the layout the Hugging Face Hub expects of a PyTorch model
(``model.safetensors`` + ``config.json``, plus a README.md model card), so a trained
generator can be shared without its run folder; ``from_pretrained`` reads it back from a
folder, a self-describing ``.safetensors`` file or, when the optional ``huggingface_hub``
package is installed, a Hub repo id. A loaded generator carries its extra metadata (class
names, step, kimg, metrics, ...) as ``generator.metadata``, and ``save_pretrained`` writes it
back, so a load/save round trip keeps it. :class:`PretrainedMixin` gives ``Generator`` these
methods; this module does not import the generator (the class arrives as ``cls``).
A training run's directory is read by :func:`maxvit_gan.loading.load_generator`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from maxvit_gan._version import __version__
from maxvit_gan.files import atomic_path, write_text
from maxvit_gan.models.config import GeneratorConfig

PRETRAINED_WEIGHTS = "model.safetensors"
PRETRAINED_CONFIG = "config.json"
MODEL_TYPE = "maxvit-gan-generator"
MODEL_CARD = "README.md"
HUB_INSTALL = "pip install huggingface_hub"  # the optional `hub` extra of maxvit-gan


def save_generator(generator, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write weights + config to one ``.safetensors`` file, atomically (temporary name, then rename)."""
    path = Path(path)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["generator_config"] = json.dumps(generator.config.to_dict())
    state = {k: v.detach().contiguous().cpu() for k, v in generator.state_dict().items()}
    with atomic_path(path) as tmp:  # disk full, interrupted: no partial file left behind
        save_file(state, str(tmp), metadata=meta)


def _unreadable(path, err: BaseException) -> ValueError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return ValueError(f"{path}: not a readable safetensors file (truncated or damaged?): {type(err).__name__}: {first}")


def read_generator_metadata(path: str | os.PathLike) -> dict:
    """The raw (string) metadata of a safetensors file; a ValueError (one line) if unreadable."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except OSError:
        raise
    except Exception as err:  # SafetensorError, a header that is not JSON, ...
        raise _unreadable(path, err) from None


def weight_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header (reads the header only)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except OSError:
        raise
    except Exception as err:
        raise _unreadable(path, err) from None


def load_weights(path: str | os.PathLike) -> dict:
    """``safetensors.torch.load_file`` with a one-line ValueError for a damaged file."""
    try:
        return load_file(str(path))
    except OSError:
        raise
    except Exception as err:
        raise _unreadable(path, err) from None


MAX_STAGES = 16  # 8 px * 2**15 = 262144 px: more is not a generator


def check_config_against_weights(config: GeneratorConfig, shapes: dict[str, tuple[int, ...]], source) -> None:
    """Bounds a generator config by the weights it comes with, before anything is built: every
    size it names appears as a tensor dimension in a genuine file and every block holds
    tensors, so a few bytes of JSON cannot ask for gigabytes. A ValueError naming the key."""
    biggest = max((d for shape in shapes.values() for d in shape), default=0)
    lists = {k: getattr(config, k) for k in ("channels", "depths", "window_sizes", "grid_sizes")}
    for key, value in lists.items():
        if value is not None and (not isinstance(value, list) or len(value) > MAX_STAGES):
            raise ValueError(f"{source}: generator config {key}={str(value)[:60]}: not a list of at most {MAX_STAGES} stages")
    ints = {k: getattr(config, k) for k in ("resolution", "z_dim", "num_classes", "head_dim", "num_latent_tokens",
                                            "mbconv_expand", "class_embed_tokens")}  # fmt: skip
    ints.update({f"{k}[{i}]": v for k, vs in lists.items() if vs for i, v in enumerate(vs)})
    for key, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{source}: generator config {key}={value!r}: not a non-negative integer")
        if key.startswith("depths"):
            continue
        if value > biggest:
            raise ValueError(
                f"{source}: generator config {key}={value} is larger than any tensor dimension in the weights "
                f"({biggest}): the config does not describe these weights"
            )
    if sum(config.depths or []) > len(shapes):
        raise ValueError(
            f"{source}: generator config depths={config.depths} ask for more blocks than the weights hold tensors ({len(shapes)})"
        )
    if not isinstance(config.mlp_ratio, (int, float)) or not 0 < config.mlp_ratio <= 64:
        raise ValueError(f"{source}: generator config mlp_ratio={config.mlp_ratio!r}: not in (0, 64]")


def _metadata_to_str(metadata: dict | None) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}


def read_metadata(path: str | os.PathLike) -> dict:
    """The extra metadata stored with a generator (a ``save_pretrained`` folder or a generator
    file); JSON strings are decoded. Empty when there is none."""
    path = Path(path)
    if path.is_dir():
        if (path / PRETRAINED_CONFIG).is_file():
            return dict(json.loads((path / PRETRAINED_CONFIG).read_text()).get("metadata") or {})
        path = path / PRETRAINED_WEIGHTS
    if not path.is_file():
        return {}
    out = {}
    for k, v in read_generator_metadata(path).items():
        if k == "generator_config":
            continue
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for a module with a
    ``config: GeneratorConfig`` attribute and a ``cls(config)`` constructor."""

    config: GeneratorConfig

    def save_pretrained(
        self, directory: str | os.PathLike, metadata: dict | None = None, model_card: str | None = None
    ) -> Path:
        """Write ``model.safetensors`` (self-describing), ``config.json`` and a README.md model card.

        ``metadata``: JSON-able extras kept in config.json (and, as strings, in the weights'
        metadata), e.g. ``{"class_names": [...], "step": 1000}``; they update the metadata the
        generator was loaded with (``self.metadata``). ``model_card``: the README.md text; None
        writes a short card unless the folder already has one (never overwrites a user's card).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        metadata = {**(getattr(self, "metadata", None) or {}), **(metadata or {})}
        save_generator(self, directory / PRETRAINED_WEIGHTS, _metadata_to_str(metadata))
        config = {
            "model_type": MODEL_TYPE,
            "maxvit_gan_version": __version__,
            "generator_config": self.config.to_dict(),
            "metadata": metadata,
        }
        write_text(directory / PRETRAINED_CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
        card = directory / MODEL_CARD
        if model_card is not None:
            write_text(card, model_card)
        elif not card.exists():  # never overwrite a card the user wrote
            from maxvit_gan.models.card import model_card as card_text

            write_text(card, card_text(self, metadata))
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu", **hub_kwargs):
        """An eval-mode generator from a ``save_pretrained`` folder, a self-describing
        ``.safetensors`` file, or a Hugging Face Hub repo id (``user/name``; needs
        ``huggingface_hub``; ``hub_kwargs`` such as ``revision``, ``cache_dir``, ``token``,
        ``local_files_only`` go to ``hf_hub_download``). A training run directory:
        ``maxvit_gan.load_generator(run)``."""
        path = Path(name_or_path)
        if path.is_dir():
            if (path / PRETRAINED_CONFIG).is_file():
                return cls._from_folder(path, device)
            raise FileNotFoundError(
                f"{path}: not a save_pretrained folder (no {PRETRAINED_CONFIG}); for a training run "
                "directory use maxvit_gan.load_generator(run)"
            )
        if path.is_file():
            return cls._from_file(path, device)
        try:
            import huggingface_hub
        except ImportError:
            raise FileNotFoundError(
                f"{name_or_path}: no such file or directory (to load a Hugging Face Hub repo id: {HUB_INSTALL})"
            ) from None
        config_file = huggingface_hub.hf_hub_download(str(name_or_path), PRETRAINED_CONFIG, **hub_kwargs)
        weights = huggingface_hub.hf_hub_download(str(name_or_path), PRETRAINED_WEIGHTS, **hub_kwargs)
        if Path(config_file).parent != Path(weights).parent:
            raise RuntimeError(f"{name_or_path}: config.json and model.safetensors landed in different folders")
        return cls._from_folder(Path(config_file).parent, device)

    @classmethod
    def _build(cls, config: GeneratorConfig, weights: Path, device, metadata: dict | None = None):
        """Check the config against the weights' header (bounds, then every tensor's shape on a
        model built on the meta device: no memory), then build and load. Untrusted files fail
        with one line naming what does not fit, never with a huge allocation."""
        shapes = weight_shapes(weights)
        check_config_against_weights(config, shapes, weights)
        try:
            with torch.device("meta"):
                want = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
        except (ValueError, TypeError) as err:
            raise ValueError(f"{weights}: invalid generator config: {err}") from None
        diffs = [f"{k}: {shapes.get(k)} in the file, {want.get(k)} for the config" for k in sorted(set(want) | set(shapes))
                 if want.get(k) != shapes.get(k)]  # fmt: skip
        if diffs:
            raise ValueError(
                f"{weights}: the weights do not fit their generator config ({len(diffs)} tensors differ, e.g. {'; '.join(diffs[:3])})"
            )
        generator = cls(config)
        generator.load_state_dict(load_weights(weights))  # strict: every key must match
        generator.metadata = dict(metadata or {})
        return generator.to(device).eval().requires_grad_(False)

    @staticmethod
    def _config_from(data, source) -> GeneratorConfig:
        try:
            if isinstance(data, str):
                data = json.loads(data)
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            return GeneratorConfig.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: invalid generator config: {err}") from None

    @classmethod
    def _from_file(cls, path: Path, device):
        meta = read_generator_metadata(path)
        if "generator_config" not in meta:
            raise ValueError(f"{path}: no 'generator_config' in the safetensors metadata; not a maxvit-gan generator file")
        return cls._build(cls._config_from(meta["generator_config"], path), path, device, read_metadata(path))

    @classmethod
    def _from_folder(cls, directory: Path, device):
        config_file, weights = directory / PRETRAINED_CONFIG, directory / PRETRAINED_WEIGHTS
        if not weights.is_file():
            raise FileNotFoundError(f"{directory}: no {PRETRAINED_WEIGHTS} (not a save_pretrained directory)")
        try:
            config = json.loads(config_file.read_text())
        except (UnicodeDecodeError, ValueError) as err:
            raise ValueError(f"{config_file}: not valid JSON ({err})") from None
        if not isinstance(config, dict) or config.get("model_type") != MODEL_TYPE or "generator_config" not in config:
            kind = config.get("model_type") if isinstance(config, dict) else None
            raise ValueError(f"{config_file}: not a maxvit-gan generator config (model_type {kind!r})")
        return cls._build(cls._config_from(config["generator_config"], config_file), weights, device, config.get("metadata"))

    def push_to_hub(self, repo_id: str, metadata: dict | None = None, model_card: str | None = None, **hub_kwargs) -> str:
        """``save_pretrained`` into a temporary folder and upload it as model repo ``repo_id``.
        ``hub_kwargs``: ``private``, ``token``, ``commit_message``, ``revision``. Returns the commit URL."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, metadata, model_card)
            return upload_folder(tmp, repo_id, **hub_kwargs)


def upload_folder(folder: str | os.PathLike, repo_id: str, **hub_kwargs) -> str:
    """Upload a ``save_pretrained`` folder as Hugging Face Hub model repo ``repo_id`` (created if
    needed). ``hub_kwargs``: ``private``, ``token``, ``commit_message``, ``revision``. Returns the
    commit URL. Needs ``huggingface_hub``."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ModuleNotFoundError(f"pushing to the Hub needs huggingface_hub: {HUB_INSTALL}", name="huggingface_hub") from None

    token, private = hub_kwargs.pop("token", None), hub_kwargs.pop("private", None)
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", **hub_kwargs))
