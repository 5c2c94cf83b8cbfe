"""Inception-V3 feature extraction: one interface, two protocols.

``tf`` (default): torch-fidelity's ``FeatureExtractorInceptionV3``, the 2015 TF
Inception graph with TF1's bilinear resize to 299 inside, uint8 input. Matches the
ADM evaluator and StyleGAN / StudioGAN numbers. Weights: torch-fidelity's file
``weights-inception-2015-12-05-6726825d.pth`` (a state dict).

``clean``: clean-fid's protocol. Each image is resized to 299 with clean-fid's own
resizer (PIL bicubic per channel in float, no quantization), normalized
``(x - 128) / 128`` and run through NVIDIA's TorchScript conversion of the same 2015
graph (``inception-2015-12-05.pt``, the file clean-fid downloads), using its
``layers`` trunk exactly as clean-fid's ``InceptionV3W`` does; the IS logits come
from its ``output`` head without bias.

Weights: ``weights_path`` (config ``metrics.inception_weights``) or, when None,
downloaded once into the torch hub cache ``$TORCH_HOME/hub/checkpoints`` (where
torch-fidelity also keeps its copy). Offline with neither: one
``InceptionWeightsError`` that names both ways out. Nothing here ever writes random
weights into that cache (random-weight stand-ins for tests and benchmarks: ``stand_ins``).

The extractor protocol (also what tests' tiny extractors implement): attributes
``mode``, ``dim``, ``network_id`` (a string identifying the network and weights,
part of the reference cache key) and ``forward(uint8 [B,3,H,W]) -> {"features":
float64 [B, dim], "logits": float [B, C] or None}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn as nn

TF_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
CLEAN_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
)
MODES = ("tf", "clean")


class InceptionWeightsError(RuntimeError):
    """The Inception weights could neither be read from a local file nor downloaded."""


# ----------------------------------------------------------------------------- weights


def hub_checkpoint_dir() -> Path:
    """The torch hub weights cache ``$TORCH_HOME/hub/checkpoints`` (real runs read it; never random weights)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _file_sha256(path: Union[str, Path], chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _offline_error(mode: str, url: str, cache_file: Path, err: BaseException) -> InceptionWeightsError:
    return InceptionWeightsError(
        f"Inception weights for metrics mode '{mode}' are not available: there is no local copy and "
        f"downloading {url} into the cache {cache_file} failed ({type(err).__name__}: {err}).\n"
        f"Two ways out:\n"
        f"  1. give a local file: metrics.inception_weights=PATH "
        f"(Python: build_feature_extractor(mode='{mode}', weights_path=PATH)); get it with "
        f"`wget {url}` on a machine with internet;\n"
        f"  2. run once with internet access so the file is cached at {cache_file} "
        f"(the torch hub cache: $TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints)."
    )


def _resolve_weights(mode: str, weights_path: Union[str, Path] | None) -> Path:
    """Local path of the weights file: the given one, or the hub cache (downloading it once)."""
    if weights_path is not None:
        p = Path(weights_path).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(
                f"metrics.inception_weights={weights_path}: no such file. Point it at the Inception weights for "
                f"mode '{mode}' ({TF_URL if mode == 'tf' else CLEAN_URL}), or set it to null to download and cache them."
            )
        return p
    url = TF_URL if mode == "tf" else CLEAN_URL
    cache_file = hub_checkpoint_dir() / os.path.basename(url)
    if cache_file.is_file():
        return cache_file
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # downloads to a temporary file and renames: a failed download leaves no partial file behind;
        # the tf file name carries a sha256 prefix which torch.hub checks
        hash_prefix = "6726825d" if mode == "tf" else None
        torch.hub.download_url_to_file(url, str(cache_file), hash_prefix=hash_prefix, progress=True)
    except Exception as err:  # no network, proxy, disk, hash mismatch: one clear message
        raise _offline_error(mode, url, cache_file, err) from err
    return cache_file


def tf_network(state_dict: dict | None = None) -> nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 ('2048' + 'logits_unbiased').

    torch-fidelity always loads a state dict in its ``__init__`` (with
    ``weights_only=False``); we load the file ourselves with ``weights_only=True`` and
    hand it over as an in-memory buffer. With ``state_dict=None`` the architecture is
    built with its default (random) init, for ``stand_ins.save_random_inception_weights`` only.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    cls = FeatureExtractorInceptionV3
    if state_dict is None:

        class _ArchOnly(FeatureExtractorInceptionV3):
            def load_state_dict(self, sd, strict=True, assign=False):  # empty dict: keep the random init
                return super().load_state_dict(sd, strict=False)

        cls, state_dict = _ArchOnly, {}
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return cls("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=buf)


def _load_tf_state_dict(path: Path) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InceptionWeightsError(
            f"{path}: cannot be read as a state dict ({type(err).__name__}: {err}). Mode 'tf' expects torch-fidelity's "
            f"weights file ({os.path.basename(TF_URL)}); mode 'clean' expects NVIDIA's TorchScript "
            f"inception-2015-12-05.pt."
        ) from err
    if not isinstance(sd, dict) or "Mixed_7c.branch_pool.conv.weight" not in sd:
        raise InceptionWeightsError(
            f"{path}: not a state dict of torch-fidelity's FeatureExtractorInceptionV3"
        )
    return sd


def _load_clean_script(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated in 2.x, but it is the format of the file
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:
        raise InceptionWeightsError(
            f"{path}: cannot be loaded as TorchScript ({type(err).__name__}: {err}). Mode 'clean' expects NVIDIA's "
            f"inception-2015-12-05.pt ({CLEAN_URL}); torch-fidelity's .pth state dict is for mode 'tf'."
        ) from err
    if not hasattr(net, "layers"):
        raise InceptionWeightsError(
            f"{path}: TorchScript module without a 'layers' trunk: not inception-2015-12-05.pt"
        )
    return net


# ----------------------------------------------------------------------------- the extractor


@contextlib.contextmanager
def no_tf32():
    """TF32 off for the duration (FID features must be true fp32 matmuls/convs on Ampere+)."""
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class FeatureExtractor(nn.Module):
    """uint8 images [B,3,H,W] (any H, W) -> {"features": float64 [B,2048], "logits": float32 [B,1008]}.

    Build with ``build_feature_extractor``. Keep it out of ``accelerator.prepare``
    (prepared models run under autocast); it runs in fp32 with TF32 off.
    """

    dim = 2048

    def __init__(self, mode: str, net: nn.Module, network_id: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"metrics mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.net = net.eval()
        for prm in self.net.parameters():
            prm.requires_grad_(False)
        self.network_id = network_id
        self._resize = None
        if mode == "clean":
            from cleanfid.resize import build_resizer

            self._resize = build_resizer("clean")  # PIL bicubic per channel, float, to 299x299

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def train(self, mode: bool = True):  # always eval: BatchNorm must use its running statistics
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | None]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images [B,3,H,W], got {images.dtype} {tuple(images.shape)}")
        dev = self.device
        with no_tf32(), torch.autocast(dev.type, enabled=False):
            if self.mode == "tf":
                feats, logits = self.net(images.to(dev))
            else:
                hwc = images.permute(0, 2, 3, 1).cpu().numpy()
                x = np.stack([self._resize(im) for im in hwc])  # [B,299,299,3] float32 in [0,255]
                x = torch.from_numpy(x).permute(0, 3, 1, 2).to(dev)
                feats = self.net.layers((x - 128) / 128).reshape(x.shape[0], -1)
                head = getattr(self.net, "output", None)
                logits = feats @ head.weight.T if head is not None else None  # IS uses unbiased logits
        return {"features": feats.double(), "logits": None if logits is None else logits.float()}


def build_feature_extractor(
    mode: str = "tf",
    weights_path: Union[str, Path] | None = None,
    device: Union[str, torch.device] = "cpu",
) -> FeatureExtractor:
    """The Inception feature extractor for ``mode`` ('tf' | 'clean').

    ``weights_path`` (``metrics.inception_weights``): a local weights file (tf: torch-fidelity's
    state dict, loaded with ``weights_only=True``; clean: NVIDIA's TorchScript). None: download
    once into the torch hub cache. Raises ``InceptionWeightsError`` when neither works.
    """
    if mode not in MODES:
        raise ValueError(f"metrics.mode must be one of {MODES}, got {mode!r}")
    path = _resolve_weights(mode, weights_path)
    is_cached_official = weights_path is None
    if is_cached_official:
        digest = os.path.basename(TF_URL if mode == "tf" else CLEAN_URL)
    else:
        digest = "sha256:" + _file_sha256(path)[:16]
    net = tf_network(_load_tf_state_dict(path)) if mode == "tf" else _load_clean_script(path)
    return FeatureExtractor(mode, net, network_id=f"{mode}/inception-2015-12-05/{digest}").to(device)


__all__ = [
    "FeatureExtractor",
    "InceptionWeightsError",
    "build_feature_extractor",
    "no_tf32",
    "TF_URL",
    "CLEAN_URL",
]
