"""Shared benchmark helpers: output folders, interleaved timing, timm's matching block, machine info.

Timings on shared CPUs are noisy. Every comparison here runs the candidates *interleaved*
(one call of each per round, in a shuffled order) and reports medians; ratios are the median
of the per-round ratios, so slow drift of the machine load cancels out.
"""

from __future__ import annotations

import datetime
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"  # default output of every benchmark: git-ignored scratch
RESULTS_DIR = HERE / "results"  # committed results: written only with --write
RESULTS_MD = HERE / "RESULTS.md"  # committed report: written only with --write


def machine_info(threads: int) -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_at_start": load,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, seed: int = 0) -> dict:
    """Time each callable ``repeats`` times, interleaved in shuffled order per round.

    Returns {name: {"median_s", "min_s", "times_s"}} plus "rounds" (list of per-round dicts)
    so callers can form paired ratios.
    """
    rng = random.Random(seed)
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    rounds = []
    for _ in range(repeats):
        order = names[:]
        rng.shuffle(order)
        r = {}
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            r[n] = time.perf_counter() - t0
        rounds.append(r)
    out = {n: _summary([r[n] for r in rounds]) for n in names}
    out["rounds"] = rounds
    return out


def _summary(ts: list[float]) -> dict:
    return {"median_s": statistics.median(ts), "min_s": min(ts), "times_s": ts}


def paired_ratio(res: dict, slow: str, fast: str) -> float:
    """Median over rounds of t[slow] / t[fast] (> 1 means ``fast`` is faster)."""
    return statistics.median(r[slow] / r[fast] for r in res["rounds"])


def geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x and x > 0]
    if not xs:
        return float("nan")
    return float(torch.tensor(xs, dtype=torch.float64).log().mean().exp())


def maxrss_mb() -> float:
    """Peak resident set size of this process so far (MB; Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident set size now (MB), from /proc/self/statm (Linux); ru_maxrss where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return maxrss_mb()


class RssSampler:
    """Peak RSS while the ``with`` body runs: a thread samples /proc/self/statm every 2 ms.

    ru_maxrss is a process-lifetime high-water mark (imports and earlier phases can hide a
    later phase's peak); sampling sees each phase on its own. Short spikes (< 2 ms) can be
    missed, so the numbers are lower bounds.
    """

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.peak_mb = 0.0

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self):
        import threading

        self.peak_mb = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


# --------------------------------------------------------------------------- timm's block


def timm_maxvit_block(dim: int, window: int, grid: int, head_dim: int = 32, expand: float = 4.0, mlp_ratio: float = 4.0):
    """timm's ``MaxxVitBlock`` configured like our ``MaxViTBlock``.

    Matched: width in = out, stride 1 (no downsample, identity shortcut), heads = dim / 32,
    window / grid partition sizes, MBConv expansion 4 (from the output width), SE 0.25 with
    SiLU, GELU, FFN ratio 4, fused SDPA, relative position bias ("bias": table + index),
    channels-last attention (``PartitionAttentionCl``), no layer scale, no drop path.
    Not matched (documented in RESULTS.md): timm's MBConv uses BatchNorm (pre-norm, after
    the 1x1 expand and after the depthwise conv: 3 BNs, batch statistics in training mode)
    where ours has one LayerNorm2d; timm's attention LayerNorm eps is 1e-6 (ours 1e-5); timm
    does not pad non-divisible maps (ours pads and masks: the benchmark sizes are divisible).
    """
    from timm.models.maxxvit import MaxxVitBlock, MaxxVitConvCfg, MaxxVitTransformerCfg

    conv = MaxxVitConvCfg(block_type="mbconv", expand_ratio=expand, expand_output=True, attn_ratio=0.25)
    tr = MaxxVitTransformerCfg(
        dim_head=head_dim,
        expand_ratio=mlp_ratio,
        window_size=(window, window),
        grid_size=(grid, grid),
        rel_pos_type="bias",
        use_nchw_attn=False,
        init_values=None,
    )
    return MaxxVitBlock(dim, dim, stride=1, conv_cfg=conv, transformer_cfg=tr)
