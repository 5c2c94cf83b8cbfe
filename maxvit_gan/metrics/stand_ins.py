"""Random-weight stand-ins for the Inception networks: for tests and benchmarks only.

``save_random_inception_weights`` writes the real architecture (torch-fidelity's
``FeatureExtractorInceptionV3``; for ``clean`` a TorchScript file with the interface of
NVIDIA's ``inception-2015-12-05.pt``) with random weights to a file; load it with
``build_feature_extractor(mode, weights_path=file)``: the code path is the real one, only
the weights differ. Nothing here ever writes into a cache a real run reads: it writes only
to the path it is given and refuses the torch hub weights cache (``features.hub_checkpoint_dir``).
Not under ``tests/`` because the benchmarks (``benchmarks/fid_features.py``) use it too.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

from maxvit_gan.metrics.features import MODES, hub_checkpoint_dir, tf_network

_TRUNK = (  # torch-fidelity's FeatureExtractorInceptionV3 blocks, in forward order, up to pool3
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)  # fmt: skip


class _CleanStandIn(nn.Module):
    """Same interface as NVIDIA's inception-2015-12-05.pt as clean-fid uses it: ``layers`` maps a
    normalized [B,3,299,299] batch to [B,2048]; ``output`` is the 1008-way head;
    ``forward(x, return_features)`` takes 0..255 images already at 299."""

    def __init__(self, tf_net: nn.Module):
        super().__init__()
        trunk = OrderedDict((name, getattr(tf_net, name)) for name in _TRUNK)
        trunk["flatten"] = nn.Flatten(1)
        self.layers = nn.Sequential(trunk)
        self.output = tf_net.fc

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        feats = self.layers((x - 128) / 128)
        if return_features:
            return feats
        return torch.softmax(self.output(feats), dim=1)


def save_random_inception_weights(path: Union[str, Path], mode: str = "tf", seed: int = 0) -> Path:
    """Write the real Inception architecture with random weights to ``path`` (tests, benchmarks).

    Convs are re-initialized with Kaiming-normal (torch-fidelity's default init gives features
    with std ~1e-8). ``tf``: a state dict with torch-fidelity's keys. ``clean``: a TorchScript
    file with the interface of NVIDIA's inception-2015-12-05.pt (``layers``, ``output``), built
    from the same torch-fidelity blocks. Load it back with ``build_feature_extractor(mode,
    weights_path=path)``. Refuses to write into the torch hub cache that real runs read.
    """
    path = Path(path)
    if path.resolve().parent == hub_checkpoint_dir().resolve():
        raise ValueError(f"refusing to write random Inception weights into the weights cache {path.parent}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    gen = torch.Generator().manual_seed(seed)
    net = tf_network(None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * m.in_features**-0.5)
                m.bias.zero_()
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "tf":
        torch.save(net.state_dict(), path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.script(_CleanStandIn(net).eval()), str(path))
    return path


__all__ = ["save_random_inception_weights"]
