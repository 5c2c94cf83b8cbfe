"""Generator quality on shapes (32 px, 4 classes), trained by the product itself.

    python benchmarks/quality_shapes.py                          # 3 seeds x {maxvit, conv, mbconv}, 32 kimg each
    python benchmarks/quality_shapes.py --jobs 2 --threads 1     # two runs at a time, one thread each
    python benchmarks/quality_shapes.py --write                  # also regenerate its RESULTS.md section + figures
    python benchmarks/quality_shapes.py score outputs/<run> ...  # score every checkpoint of existing shapes runs
    python benchmarks/quality_shapes.py report --write          # render the last JSON again (no scoring)

Every run is the README's demo command, ``scripts/train_gan.py`` (``experiment=shapes_cpu``:
the trainer, discriminator, losses and recipe users run), with ``seed=N`` and, for the
baselines, one key: ``model.generator.arch=conv`` (residual conv stages, FiLM-modulated by
the latent tokens, parameter-matched) or ``model.generator.arch=mbconv`` (the MaxViT
generator without self-attention). Checkpoints every 4 kimg are kept and scored; runs live
in benchmarks/out/quality_runs/ and are reused when complete (``--retrain`` to redo).
Ablations (``ABLATIONS``: one or two overrides each, e.g. ``--archs maxvit_cw03,maxvit_r1x10``)
get a table of their own; ``maxvit_noema`` trains nothing: it scores the maxvit runs' raw G.

Scorer ("Shapes-FID"): the Frechet distance (``maxvit_gan.metrics.frechet_distance``, float64
statistics) between features of a small CNN trained on shapes (the 128-d layer before its
ReLU; trained once, deterministic, cached in benchmarks/out/) of N EMA-generator samples
(classes balanced, quantised to uint8 like every saved image) and N held-out reals; the
classifier's accuracy on the samples for the requested class, overall and per class; and the
fixed checkerboard: the mean |a - b - c + d| over the aligned 2x2 cells of the average of the
samples, in 8-bit levels. Content averages out over samples; a pattern tied to pixel
positions (what a sub-pixel upsampler can learn) does not. Reals: 0.4.
Default output: benchmarks/out/ (git-ignored); ``--write`` regenerates the section of
benchmarks/RESULTS.md and the figures in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from maxvit_gan.checkpoint import EMA_FILE, latest_checkpoint, list_checkpoints, read_train_state
from maxvit_gan.data import ShapesDataset
from maxvit_gan.files import atomic_path
from maxvit_gan.images import quantize_images
from maxvit_gan.loading import load_generator
from maxvit_gan.metrics import StreamingStats, frechet_distance
from maxvit_gan.rundir import RunDir
from maxvit_gan.sampling.parse import parse_seeds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RUNS = OUT / "quality_runs"
RESULTS = HERE / "results"
RES, NUM_CLASSES = 32, 4
CLASS_NAMES = ("circle", "square", "triangle", "cross")
ARCHS = {"maxvit": [], "conv": ["model.generator.arch=conv"], "mbconv": ["model.generator.arch=mbconv"]}
# Ablations of the demo recipe (item 4 of the quality issue) and the candidates it was chosen
# among: same seeds and length; pass their names to --archs. Runs are named <name>-s<seed> like
# the three kinds.
ABLATIONS = {  # name -> (overrides on top of the demo, what changes); cw06: at class loss 0.6
    "maxvit_r01": (["loss.r1_gamma=0.1"], "R1 gamma 1.0 -> 0.1"),
    "maxvit_r4": (["loss.r1_gamma=4"], "R1 gamma 1.0 -> 4"),
    "maxvit_cw06": (["loss.class_weight=0.6"], "class loss 1.0 -> 0.6: the second demo recipe (earlier on 2026-11-30)"),
    "conv_cw06": (["model.generator.arch=conv", "loss.class_weight=0.6"], "conv at class loss 0.6"),
    "mbconv_cw06": (["model.generator.arch=mbconv", "loss.class_weight=0.6"], "mbconv at class loss 0.6"),
    "maxvit_cw06r01": (["loss.class_weight=0.6", "loss.r1_gamma=0.1"], "class loss 0.6, R1 0.1"),
    "conv_cw06r01": (["model.generator.arch=conv", "loss.class_weight=0.6", "loss.r1_gamma=0.1"], "conv at class loss 0.6, R1 0.1"),
    "maxvit_cw06r01mbstd16": (
        ["loss.class_weight=0.6", "loss.r1_gamma=0.1", "model.discriminator.mbstd_group=16"],
        "class loss 0.6, R1 0.1, minibatch stddev over 16, not 4",
    ),
    "maxvit_cw03": (["loss.class_weight=0.3", "loss.r1_gamma=0.1"], "class loss 0.3, R1 0.1: the first demo recipe"),
    "conv_cw03": (["model.generator.arch=conv", "loss.class_weight=0.3", "loss.r1_gamma=0.1"], "conv at the first demo recipe"),
    "mbconv_cw03": (["model.generator.arch=mbconv", "loss.class_weight=0.3", "loss.r1_gamma=0.1"], "mbconv at the first demo recipe"),
    "maxvit_cw06r4": (["loss.class_weight=0.6", "loss.r1_gamma=4"], "class loss 0.6, R1 4"),
    "maxvit_cw06lr2": (["loss.class_weight=0.6", "optim.g_lr=2.5e-4", "optim.d_lr=2.5e-4"], "class loss 0.6, half the learning rate"),
    "maxvit_cw06ema4": (
        ["loss.class_weight=0.6", "train.ema_half_life_kimg=4", "train.ema_rampup=0.125"],
        "class loss 0.6, EMA half-life 2 -> 4 kimg",
    ),
    "maxvit_cw06rd16": (["loss.class_weight=0.6", "optim.lr_rampdown_kimg=16"], "class loss 0.6, learning rates down to 0 over the last 16 kimg"),
    "maxvit_cw06rd8": (["loss.class_weight=0.6", "optim.lr_rampdown_kimg=8"], "class loss 0.6, learning rates down to 0 over the last 8 kimg"),
    "maxvit_attn32": (
        ["model.generator.window_sizes=[4,4,4]", "model.generator.grid_sizes=[2,4,8]"],
        "Max-SA at 32 px too",
    ),
}
# The EMA ablation needs no training: the maxvit runs' checkpoints hold the raw G next to its EMA.
RAW = {"maxvit_noema": "maxvit"}  # name -> the runs whose raw (non-EMA) generator it scores
WHAT = {**{k: v[1] for k, v in ABLATIONS.items()}, "maxvit_noema": "no EMA: the trained G itself (the maxvit runs)"}
VARIANTS = {**ARCHS, **{k: v[0] for k, v in ABLATIONS.items()}, **{k: None for k in RAW}}
RAW_WEIGHTS = "model.safetensors"  # a checkpoint's generator (Accelerate's first model); ema.safetensors is its EMA
RUN_KEYS = ["train.checkpoint_kimg=4", "train.keep_checkpoints=1000"]  # more checkpoints: curves; same training
BEGIN = "<!-- BEGIN benchmarks/quality_shapes.py (generated) -->"
END = "<!-- END benchmarks/quality_shapes.py -->"


# --------------------------------------------------------------------------- the scorer


def image_bank(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n shapes images as float [-1, 1] (n, 3, 32, 32) and labels; cached on disk."""
    path = OUT / f"shapes{RES}_seed{seed}_n{n}.pt"
    if path.exists():
        d = torch.load(path, weights_only=True)
        return d["x"].float() / 127.5 - 1, d["y"]
    ds = ShapesDataset(RES, n, NUM_CLASSES, seed=seed, conditional=True)
    xs, ys = zip(*(ds[i] for i in range(n)))
    x, y = torch.stack(xs), torch.stack(ys).long()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y}, path)
    return x.float() / 127.5 - 1, y


class ShapesClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.fc = nn.Linear(128 * 16, 128)
        self.head = nn.Linear(128, NUM_CLASSES)

    def features(self, x):  # (B, 128), before the ReLU
        return self.fc(self.convs(x).flatten(1))

    def forward(self, x):
        return self.head(F.relu(self.features(x)))


def classifier() -> ShapesClassifier:
    """Trained once (seeded, 1 thread: deterministic) and cached in benchmarks/out/."""
    path = OUT / "shapes32_classifier.pt"
    net = ShapesClassifier()
    if path.exists():
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    x, y = image_bank(seed=101, n=8000)
    xt, yt = image_bank(seed=102, n=1000)
    torch.manual_seed(0)
    net = ShapesClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(xt).argmax(1) == yt).float().mean().item()
    print(f"shapes classifier: held-out accuracy {acc:.4f}", flush=True)
    torch.save(net.state_dict(), path)
    (OUT / "shapes32_classifier.json").write_text(json.dumps({"heldout_accuracy": acc}))
    return net


def dark_share(x: torch.Tensor) -> float:
    """Share of images in [-1, 1] whose one-pixel border averages below 110 of 255: the dark
    backgrounds, a mode of the shapes data (a quarter of the reals) that generators drop."""
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    return ((border.mean(dim=(1, 2)) + 1) * 127.5 < 110).float().mean().item()


def checkerboard(x: torch.Tensor) -> float:
    """The fixed 2x2 pattern of images in [-1, 1] (N, 3, H, W): mean |a - b - c + d| over the
    aligned 2x2 cells of their average image, in 8-bit levels."""
    m = x.mean(0)
    a, b, c, d = m[..., ::2, ::2], m[..., ::2, 1::2], m[..., 1::2, ::2], m[..., 1::2, 1::2]
    return (a - b - c + d).abs().mean().item() * 127.5


def _stats(feats: torch.Tensor):
    s = StreamingStats(feats.shape[1])
    s.update(feats)
    return s.mean_cov()


class Scorer:
    def __init__(self, n: int = 800):
        self.n = n
        self.clf = classifier()
        reals, _ = image_bank(seed=103, n=n)
        reals2, _ = image_bank(seed=104, n=n)
        with torch.no_grad():
            self.real_stats = _stats(self.clf.features(reals))
            self.real_vs_real = frechet_distance(*_stats(self.clf.features(reals2)), *self.real_stats)
        self.real_checkerboard = checkerboard(reals)
        self.real_dark = dark_share(reals)
        self.heldout_accuracy = json.loads((OUT / "shapes32_classifier.json").read_text())["heldout_accuracy"]
        self._cache: dict | None = None

    def cached(self, weights: Path, run: Path) -> dict:
        """Scores of a checkpoint (dir: its EMA; file: those weights), from benchmarks/out/'s cache
        when the weights file is unchanged (same size and mtime), else scored and cached."""
        file = weights / EMA_FILE if weights.is_dir() else weights
        st = file.stat()
        key = f"{file.resolve()}|{st.st_size}|{st.st_mtime_ns}|n={self.n}"
        cache_file = OUT / "quality_scores_cache.json"
        if self._cache is None:  # read once per scorer; written after every new score
            self._cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
        cache = self._cache
        if key not in cache:
            G = load_generator(run, checkpoint=weights)
            if G.resolution != RES or G.num_classes != NUM_CLASSES:
                raise ValueError(f"{run}: needs a conditional 32-px shapes run, got {G.resolution} px, {G.num_classes} classes")
            cache[key] = self(G)
            OUT.mkdir(parents=True, exist_ok=True)
            with atomic_path(cache_file) as tmp:
                tmp.write_text(json.dumps(cache))
        return cache[key]

    @torch.no_grad()
    def __call__(self, G, seed: int = 0) -> dict:
        g = torch.Generator().manual_seed(10_000 + seed)
        z = torch.randn(self.n, G.z_dim, generator=g)
        labels = torch.arange(self.n) % NUM_CLASSES
        images = torch.cat([quantize_images(G(zi, li)) for zi, li in zip(z.split(100), labels.split(100))])
        x = images.float() / 127.5 - 1
        feats, pred = self.clf.features(x), self.clf(x).argmax(1)
        right = pred == labels
        return {
            "fid": frechet_distance(*_stats(feats), *self.real_stats),
            "acc": right.float().mean().item(),
            "per_class": [right[labels == c].float().mean().item() for c in range(NUM_CLASSES)],
            "checkerboard": checkerboard(x),
            "dark": dark_share(x),
        }


def score_run(run: Path, scorer: Scorer, raw: bool = False, upto_kimg: float | None = None) -> list[dict]:
    """Every checkpoint of a shapes run (up to ``upto_kimg``: a longer run read at a shorter
    length): kimg, wall-clock seconds, scores of its EMA generator (``raw``: of the trained
    generator itself, the checkpoint's model weights)."""
    rd = RunDir(run)
    ticks = {m["step"]: m for m in rd.read_metrics() if "time_s" in m}
    points = []
    for ck in list_checkpoints(rd.checkpoints_dir):
        state = read_train_state(ck)
        if upto_kimg is not None and state["nimg"] > upto_kimg * 1000:
            continue
        weights = ck / RAW_WEIGHTS if raw else ck
        tick = ticks.get(state["step"]) or max((t for s, t in ticks.items() if s <= state["step"]), key=lambda t: t["step"], default={})
        points.append({"step": state["step"], "kimg": state["nimg"] / 1000, "time_s": tick.get("time_s"), **scorer.cached(weights, run)})
    return points


# --------------------------------------------------------------------------- runs


def run_overrides(arch: str, seed: int, kimg: float, threads: int) -> list[str]:
    return ["experiment=shapes_cpu", f"seed={seed}", f"train.kimg={kimg}", f"train.cpu_threads={threads}", *RUN_KEYS, *VARIANTS[arch]]


def run_is_complete(run: Path, kimg: float) -> bool:
    last = latest_checkpoint(RunDir(run).checkpoints_dir)
    return last is not None and read_train_state(last)["nimg"] >= kimg * 1000


def train(arch: str, seed: int, kimg: float, threads: int, retrain: bool) -> Path:
    run = RUNS / f"{arch}-s{seed}"
    if run_is_complete(run, kimg) and not retrain:
        print(f"[{run.name}] complete, reused", flush=True)
        return run
    if retrain:
        shutil.rmtree(run, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "scripts/train_gan.py"), *run_overrides(arch, seed, kimg, threads), f"hydra.run.dir={run}"]
    if run.exists():
        cmd.append("resume=auto")  # an interrupted run continues where it stopped
    run.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{run.name}] training: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    with open(RUNS / f"{run.name}.log", "a") as log:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{run.name}: training failed (exit {proc.returncode}); see {RUNS / (run.name + '.log')}")
    print(f"[{run.name}] done in {time.time() - t0:.0f} s", flush=True)
    return run


# --------------------------------------------------------------------------- speed


SAME_COST = ("loss.r1_gamma=", "loss.class_weight=", "optim.", "train.ema_")  # overrides that leave a step's work as is


def cost_twin(arch: str) -> str:
    """The variant whose training step does the same work as ``arch``'s: its generator kind when
    it changes only loss weights, learning rates or the EMA (``SAME_COST``), else itself. Speed
    is measured once per twin."""
    arch = RAW.get(arch, arch)
    overrides = VARIANTS[arch]
    kind = next((o.split("=", 1)[1] for o in overrides if o.startswith("model.generator.arch=")), "maxvit")
    rest = [o for o in overrides if not o.startswith("model.generator.arch=")]
    same = all(o.startswith(SAME_COST) and o != "loss.class_weight=0" for o in rest)
    return kind if same else arch


def measure_speed(archs: list[str], threads: int, kimg: float = 1.0, repeats: int = 2) -> dict[str, float]:
    """Training img/s of each generator kind, measured side by side in this process (the
    product's Trainer on the demo config, archs interleaved, best of ``repeats``), so that
    the equal-wall-clock reading does not depend on how loaded the machine was during the
    long runs. Run it on a quiet machine."""
    import tempfile

    from accelerate.state import AcceleratorState, GradientState

    from maxvit_gan.config import compose
    from maxvit_gan.training.trainer import Trainer

    best = {a: 0.0 for a in archs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for arch in archs:
                overrides = run_overrides(arch, 0, kimg, threads) + ["train.grid_kimg=1000", "train.checkpoint_kimg=1000",
                                                                     "train.log_with=none"]  # fmt: skip
                cfg = compose("train", overrides)
                cfg.run_dir = f"{tmp}/{arch}-{r}"
                AcceleratorState._reset_state(True)
                GradientState._reset_state()
                trainer = Trainer(cfg)
                t0 = time.perf_counter()
                trainer.train()
                best[arch] = max(best[arch], trainer.state["nimg"] / (time.perf_counter() - t0))
    print("training img/s (side by side): " + "  ".join(f"{a} {v:.1f}" for a, v in best.items()), flush=True)
    return best


def _interp(points: list[dict], kimg: float, key: str) -> float:
    """``key`` at ``kimg`` on a run's checkpoint curve (linear between checkpoints; clamped)."""
    pts = sorted(points, key=lambda p: p["kimg"])
    if kimg <= pts[0]["kimg"]:
        return pts[0][key]
    for a, b in zip(pts, pts[1:]):
        if kimg <= b["kimg"]:
            t = (kimg - a["kimg"]) / (b["kimg"] - a["kimg"])
            return a[key] + t * (b[key] - a[key])
    return pts[-1][key]


# --------------------------------------------------------------------------- summary


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: dict[str, list[dict]], kimg: float, speed: dict[str, float] | None = None) -> dict:
    """runs: name -> points. Per arch: final scores (mean, sd), img/s, and the equal-wall-clock
    reading: with ``speed`` (img/s measured side by side), each model's curve is read at the
    kimg it reaches in the time the fastest needs for ``kimg``; without, at the runs' own clocks."""
    by_arch: dict[str, list[tuple[str, list[dict], dict]]] = {}
    for name, pts in runs.items():
        arch, seed = name.rsplit("-s", 1)
        ticks = [m for m in RunDir(RUNS / f"{RAW.get(arch, arch)}-s{seed}").read_metrics() if "img_per_s" in m]
        info = {"seed": int(seed), "img_per_s": statistics.median(m["img_per_s"] for m in ticks) if ticks else float("nan")}
        by_arch.setdefault(arch, []).append((name, pts, info))
    # equal wall-clock: the time the fastest model needs for the full length
    if speed:
        end_time = {a: kimg * 1000 / speed[cost_twin(a)] for a in by_arch}
    else:
        end_time = {a: statistics.fmean(p[-1]["time_s"] for _, p, _ in rs) for a, rs in by_arch.items()}
    budget = min(end_time.values())
    out = {"budget_s": budget, "speed_side_by_side": bool(speed), "archs": {}}
    for arch, rs in by_arch.items():
        finals = [p[-1] for _, p, _ in rs]
        reach = kimg * budget / end_time[arch]
        at_budget = [{"kimg": reach, "fid": _interp(p, reach, "fid"), "acc": _interp(p, reach, "acc")} for _, p, _ in rs]
        s = {
            "seeds": [i["seed"] for _, _, i in rs],
            "kimg": statistics.fmean(f["kimg"] for f in finals),
            "time_s": end_time[arch],
            "img_per_s": (speed[cost_twin(arch)], 0.0) if speed else _mean_sd([i["img_per_s"] for _, _, i in rs]),
            "fid": _mean_sd([f["fid"] for f in finals]),
            "acc": _mean_sd([f["acc"] for f in finals]),
            "per_class": [_mean_sd([f["per_class"][c] for f in finals]) for c in range(NUM_CLASSES)],
            "checkerboard": _mean_sd([f["checkerboard"] for f in finals]),
            "dark": _mean_sd([f.get("dark", float("nan")) for f in finals]),
            "per_seed": [{"seed": i["seed"], "dark": f.get("dark", float("nan")), **{k: f[k] for k in ("fid", "acc", "per_class", "checkerboard")}}
                         for (_, _, i), f in zip(rs, finals)],
            "budget": {"kimg": _mean_sd([q["kimg"] for q in at_budget]), "fid": _mean_sd([q["fid"] for q in at_budget]),
                       "acc": _mean_sd([q["acc"] for q in at_budget])},
        }  # fmt: skip
        out["archs"][arch] = s
    return out


def plot(runs: dict[str, list[dict]], path: Path, speed: dict[str, float] | None = None) -> None:
    """Curves of the generator kinds (the ablations are in the tables); the time axis is the
    side-by-side img/s (``speed``) when measured, else the runs' own clocks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"maxvit": "tab:blue", "conv": "tab:orange", "mbconv": "tab:green"}
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    others = itertools.cycle(["tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive", "tab:cyan"])
    labelled = set()
    kinds = {n: p for n, p in runs.items() if n.rsplit("-s", 1)[0] in ARCHS}
    for name, pts in sorted((kinds or runs).items()):
        arch = name.rsplit("-s", 1)[0]
        if arch not in colors:
            colors[arch] = next(others)
        c = colors[arch]
        label = None if arch in labelled else arch  # one legend entry per model
        labelled.add(arch)
        kimg = [p["kimg"] for p in pts]
        if speed:
            minutes = [p["kimg"] * 1000 / speed[cost_twin(arch)] / 60 for p in pts]
        else:
            minutes = [(p["time_s"] or float("nan")) / 60 for p in pts]
        for ax, x, key in ((axes[0, 0], kimg, "fid"), (axes[0, 1], kimg, "acc"), (axes[1, 0], minutes, "fid"), (axes[1, 1], minutes, "acc")):
            ax.plot(x, [p[key] for p in pts], "o-", color=c, alpha=0.7, ms=3, label=label)
    for ax in axes[:, 0]:
        ax.set_yscale("log")
        ax.set_ylabel("Shapes-FID (lower is better)")
    for ax in axes[:, 1]:
        ax.set_ylabel("accuracy on samples (requested class)")
    for ax in axes[0]:
        ax.set_xlabel("kimg")
    for ax in axes[1]:
        ax.set_xlabel("training time at the side-by-side img/s (min)" if speed else "training wall-clock (min)")
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend()
    fig.suptitle("Shapes 32 px, class-conditional, the demo recipe; one line per seed")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def last_grid(run: Path) -> Path:
    """The snapshot grid written at the end of a run (at its last checkpoint's kimg)."""
    rd = RunDir(run)
    return rd.fakes_grid(read_train_state(latest_checkpoint(rd.checkpoints_dir))["nimg"] / 1000)


def grids(archs: list[str], path: Path) -> None:
    """The last snapshot grid of each model's seed-0 run, side by side (2x zoom)."""
    from PIL import Image

    tiles = []
    for arch in archs:
        if arch not in ARCHS or not (RUNS / f"{arch}-s0").is_dir():
            continue
        f = last_grid(RUNS / f"{arch}-s0")
        if f.is_file():
            tiles.append(Image.open(f).convert("RGB"))
    if not tiles:
        return
    w, h = tiles[0].size
    canvas = Image.new("RGB", (len(tiles) * (w + 8) - 8, h), "white")
    for i, t in enumerate(tiles):
        canvas.paste(t, (i * (w + 8), 0))
    canvas.resize((canvas.width * 2, canvas.height * 2), Image.NEAREST).save(path)


def crops(before: Path, after: Path, path: Path, cells: int = 3) -> None:
    """Top-left cells x cells samples of two runs' last grids at 4x zoom (nearest), side by side."""
    from PIL import Image

    images = []
    for run in (before, after):
        img = Image.open(last_grid(run)).convert("RGB").crop((0, 0, cells * RES, cells * RES))
        images.append(img.resize((cells * RES * 4,) * 2, Image.NEAREST))
    w = images[0].width
    canvas = Image.new("RGB", (2 * w + 16, w), "white")
    canvas.paste(images[0], (0, 0))
    canvas.paste(images[1], (w + 16, 0))
    canvas.save(path)


def render(res: dict) -> str:
    s, a = res["summary"], res["args"]
    pm = lambda v, d=1: f"{v[0]:.{d}f} ± {v[1]:.{d}f}"  # noqa: E731
    L = [BEGIN, "", "## Generator quality on shapes: MaxViT vs conv vs MaxViT without attention (benchmarks/quality_shapes.py)", ""]
    L += [
        f"- Command: `{res['command']}` ({res['date']}; {res['machine']}). Every run is "
        f"`scripts/train_gan.py experiment=shapes_cpu seed=N` (the README demo) plus `model.generator.arch=...` for the "
        f"baselines; {a['kimg']:g} kimg each, checkpoints every 4 kimg scored.",
        f"- Scorer: Shapes-FID (Frechet distance of shapes-classifier features, {a['n']} samples vs {a['n']} held-out reals; "
        f"real-vs-real floor {res['real_vs_real']:.1f}; classifier held-out accuracy {res['heldout_accuracy']:.4f}), "
        f"accuracy of the samples for the requested class, fixed checkerboard (8-bit levels; reals {res.get('real_checkerboard', 0):.2f}), "
        f"dark share (samples with a dark background, a mode generators drop; reals {res.get('real_dark', float('nan')):.2f}).",
    ]
    cols = f"G params | seeds | img/s | Shapes-FID @ {a['kimg']:g} kimg | accuracy | circle | square | triangle | cross | checkerboard |"
    kinds = [k for k in s["archs"] if k in ARCHS]
    ablations = [k for k in s["archs"] if k not in ARCHS]

    def row(arch: str) -> str:
        v = s["archs"][arch]
        pc = " | ".join(pm(c, 2) for c in v["per_class"])
        return (f"| {arch} | {res['params'][arch] / 1e6:.2f}M | {len(v['seeds'])} | {pm(v['img_per_s'], 0)} | {pm(v['fid'])} | "
                f"{pm(v['acc'], 3)} | {pc} | {pm(v['checkerboard'], 2)} |")  # fmt: skip

    L += ["", f"| generator | {cols}", "|---" * 11 + "|", *map(row, kinds)]
    if ablations:
        L += ["", "Ablations of the demo recipe and the recipes it replaced (same length; `--archs <name>`):", "",
              f"| ablation | {cols} what changes |", "|---" * 12 + "|", *(row(k) + f" {WHAT.get(k, '')} |" for k in ablations)]  # fmt: skip
    how = ("img/s measured side by side in one process (`--speed`), curves read at the kimg each model reaches"
           if s.get("speed_side_by_side") else "the runs' own clocks")
    L += ["", f"Equal wall-clock (the same runs; {how} in {s['budget_s'] / 60:.1f} min, the fastest model's time for "
          f"{a['kimg']:g} kimg):", "",
          "| generator | kimg reached | Shapes-FID | accuracy |", "|---|---|---|---|"]  # fmt: skip
    for arch, v in s["archs"].items():
        b = v["budget"]
        L.append(f"| {arch} | {pm(b['kimg'])} | {pm(b['fid'])} | {pm(b['acc'], 3)} |")
    L += ["", "Per seed (the demo's acceptance: every class >= 0.85 and Shapes-FID <= 80):", "",
          "| generator | seed | Shapes-FID | accuracy | worst class | checkerboard | dark share |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for arch, v in s["archs"].items():
        for p in v["per_seed"]:
            worst = min(range(NUM_CLASSES), key=lambda c: p["per_class"][c])
            L.append(f"| {arch} | {p['seed']} | {p['fid']:.1f} | {p['acc']:.3f} | {CLASS_NAMES[worst]} {p['per_class'][worst]:.2f} | {p['checkerboard']:.2f} | {p.get('dark', float('nan')):.2f} |")
    L += ["", "Curves: [results/quality_shapes.png](results/quality_shapes.png); last grids (seed 0; "
          f"{', '.join(kinds)}): [results/quality_grids.png](results/quality_grids.png).", ""]
    if res.get("notes"):
        L += [res["notes"], ""]
    return "\n".join(L + [END]) + "\n"


def write_md(block: str, path: Path) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "score":
        return score_main(argv[1:])
    if argv and argv[0] == "report":
        return report_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-2", help="seeds: 0-2, 1,2 or 0-1,5 (the README demo's seed=N)")
    ap.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated, from {list(VARIANTS)}")
    ap.add_argument("--kimg", type=float, default=32, help="training length per run (the demo's: 32)")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run")
    ap.add_argument("--n", type=int, default=800, help="samples (and reals) per score")
    ap.add_argument("--retrain", action="store_true", help="train again even when a complete run exists")
    ap.add_argument("--no-train", action="store_true", help="score the complete runs only; skip (and report) missing ones")
    ap.add_argument("--speed", action="store_true", help="measure training img/s side by side (quiet machine) for the wall-clock reading")
    ap.add_argument("--write", action="store_true", help="regenerate the RESULTS.md section and benchmarks/results/ figures")
    ap.add_argument("--machine", default="2-core CPU", help="described in RESULTS.md")
    ap.add_argument("--notes", default="", help="text under the tables in RESULTS.md")
    args = ap.parse_args(argv)
    archs = args.archs.split(",")
    unknown = [a for a in archs if a not in VARIANTS]
    if unknown:
        raise SystemExit(f"--archs: unknown {unknown}; choose from {list(VARIANTS)}")
    seeds = parse_seeds(args.seeds)
    raw_of = {a: RAW[a] for a in archs if a in RAW}
    archs_to_train = list(dict.fromkeys(raw_of.get(a, a) for a in archs))
    torch.set_num_threads(args.threads)
    jobs = [(a, s) for s in seeds for a in archs_to_train]
    if args.no_train:
        missing = [f"{a}-s{s}" for a, s in jobs if not run_is_complete(RUNS / f"{a}-s{s}", args.kimg)]
        print(f"--no-train: {len(jobs) - len(missing)} complete runs; not run: {', '.join(missing) or 'none'}", flush=True)
        paths = [RUNS / f"{a}-s{s}" for a, s in jobs if f"{a}-s{s}" not in missing]
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            paths = list(pool.map(lambda j: train(j[0], j[1], args.kimg, args.threads, args.retrain), jobs))
    scorer = Scorer(args.n)
    runs, first_run = {}, {}
    for arch in archs:
        for path in paths:
            arch_of_run, seed = path.name.rsplit("-s", 1)
            if arch_of_run != raw_of.get(arch, arch):
                continue
            name = f"{arch}-s{seed}"
            runs[name] = score_run(path, scorer, raw=arch in raw_of, upto_kimg=args.kimg)
            first_run.setdefault(arch, path)
            last = runs[name][-1]
            print(f"[{name}] {last['kimg']:.1f} kimg  Shapes-FID {last['fid']:.1f}  acc {last['acc']:.3f}  "
                  f"per class {' '.join(f'{v:.2f}' for v in last['per_class'])}  checkerboard {last['checkerboard']:.2f}  dark {last['dark']:.2f}", flush=True)  # fmt: skip
    archs = [a for a in archs if a in first_run]
    params = {a: sum(p.numel() for p in load_generator(run).parameters()) for a, run in first_run.items()}
    speed = measure_speed(list(dict.fromkeys(cost_twin(a) for a in archs)), args.threads) if args.speed else None
    res = {
        "command": "python benchmarks/quality_shapes.py " + " ".join(argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": args.machine,
        "args": vars(args),
        "real_vs_real": scorer.real_vs_real,
        "real_checkerboard": scorer.real_checkerboard,
        "real_dark": scorer.real_dark,
        "heldout_accuracy": scorer.heldout_accuracy,
        "params": params,
        "runs": runs,
        "speed": speed,
        "summary": summarise(runs, args.kimg, speed),
        "notes": args.notes,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "quality_shapes.json").write_text(json.dumps(res, indent=1))
    publish(res, archs, args.write)


def publish(res: dict, archs: list[str], write: bool) -> None:
    """Print the section; curves and grids to benchmarks/out/, or with ``write`` to
    benchmarks/results/ together with the JSON and the RESULTS.md section."""
    block = render(res)
    print(block)
    target = RESULTS if write else OUT
    target.mkdir(parents=True, exist_ok=True)
    plot(res["runs"], target / "quality_shapes.png", res.get("speed"))
    grids(archs, target / "quality_grids.png")
    if write:
        shutil.copy(OUT / "quality_shapes.json", RESULTS / "quality_shapes.json")
        write_md(block, HERE / "RESULTS.md")
        print(f"wrote {HERE / 'RESULTS.md'} and {RESULTS}/quality_*", flush=True)


def report_main(argv) -> None:
    ap = argparse.ArgumentParser(prog="quality_shapes.py report", description="render the last run's JSON again (no scoring)")
    ap.add_argument("--write", action="store_true", help="regenerate the RESULTS.md section and benchmarks/results/ figures")
    ap.add_argument("--notes", default=None, help="replace the notes under the tables")
    args = ap.parse_args(argv)
    res = json.loads((OUT / "quality_shapes.json").read_text())
    if args.notes is not None:
        res["notes"] = args.notes
        (OUT / "quality_shapes.json").write_text(json.dumps(res, indent=1))
    publish(res, list(res["summary"]["archs"]), args.write)


def score_main(argv) -> None:
    ap = argparse.ArgumentParser(prog="quality_shapes.py score", description="score every checkpoint of shapes runs")
    ap.add_argument("runs", nargs="+", type=Path, help="run directories of shapes runs (32 px, conditional)")
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--crops", type=Path, help="also write a before/after 4x crop of the first two runs' last grids here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    scorer = Scorer(args.n)
    print("run  step  kimg  shapes-FID  accuracy  (circle square triangle cross)  checkerboard  dark", flush=True)
    for run in args.runs:
        for p in score_run(run, scorer):
            cls = " ".join(f"{a:.2f}" for a in p["per_class"])
            print(f"{run.name}  {p['step']}  {p['kimg']:.1f}  {p['fid']:8.1f}  {p['acc']:.3f}  ({cls})  {p['checkerboard']:.2f}  {p['dark']:.2f}", flush=True)
    if args.crops and len(args.runs) >= 2:
        crops(args.runs[0], args.runs[1], args.crops)
        print(f"wrote {args.crops}")


if __name__ == "__main__":
    main()
