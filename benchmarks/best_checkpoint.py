"""The best checkpoint by tracked SWD against the last one, on quality_real.py's runs.

    PYTHONPATH=. python benchmarks/best_checkpoint.py --datasets stamps --arch conv_d2x_r1hi --seeds 0-2 --kimg 128

What a user gets from ``metrics.swd.every_kimg=4`` with FID off: the trainer keeps the checkpoint
with the lowest tracked SWD (its defaults: 1000 samples against the training images, draw seed 0).
This script computes that tracked SWD for every 4-kimg checkpoint of an existing run (from
``--from-kimg``, default 32), picks the lowest, and scores the pick and the last checkpoint with
the benchmark's SWD (n = half the dataset, as quality_real.py) under ``--draws`` other draw seeds
(1, 2, ...: other fakes, patches, directions and reference halves than the pick saw), mean over
draws. Selecting on one draw and scoring on others keeps the pick's luck out of its score; the
images are the same training set, as in papers' best-FID numbers.

Output: benchmarks/results/quality_real_best.json (one entry per run, merged across invocations);
the tracked values are cached per checkpoint in benchmarks/out/best_checkpoint_cache.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality_real as qr  # noqa: E402

from maxvit_gan.checkpoint import EMA_FILE, list_checkpoints, read_train_state  # noqa: E402
from maxvit_gan.files import atomic_path  # noqa: E402
from maxvit_gan.loading import load_generator  # noqa: E402
from maxvit_gan.metrics.swd import GeneratorSWD  # noqa: E402
from maxvit_gan.rundir import RunDir  # noqa: E402
from maxvit_gan.sampling.parse import parse_seeds  # noqa: E402

RESULT_FILE = qr.RESULTS / "quality_real_best.json"
CACHE_FILE = qr.OUT / "best_checkpoint_cache.json"
TRACK_SAMPLES = 1000  # metrics.swd.num_samples' default


def ratio(metric: GeneratorSWD, run: Path, ckpt: Path) -> float:
    with torch.no_grad():
        out = metric(load_generator(run, checkpoint=ckpt))
    return out["swd"] / out["swd_floor"]


def run_checkpoints(run: Path, from_kimg: float, kimg: float) -> dict[str, Path]:
    """``{kimg: checkpoint}`` of a run from ``from_kimg`` to ``kimg``; the last must be at ``kimg``."""
    found = {read_train_state(c)["nimg"] / 1000: c for c in list_checkpoints(RunDir(run).checkpoints_dir)}
    picked = {f"{k:g}": c for k, c in sorted(found.items()) if from_kimg - 1e-9 <= k <= kimg + 1e-9}
    if not picked or abs(max(map(float, picked)) - kimg) > 1e-6:
        raise SystemExit(f"best_checkpoint.py: {run} has no checkpoint at {kimg:g} kimg: train it first "
                         f"(quality_real.py --kimg {kimg:g})")  # fmt: skip
    return picked


def pick_and_score(run: Path, reals, kimg: float, from_kimg: float, draws: int, cache: dict,
                   track_samples: int = TRACK_SAMPLES, save=lambda cache: None) -> dict:  # fmt: skip
    """Tracked SWD of every checkpoint (cached), the pick, and both scored on ``draws`` other draws."""
    track = GeneratorSWD(reals, track_samples, batch_size=100, seed=0)  # what the trainer tracks
    n = min(qr.SWD_MAX_N, len(reals) // 2)
    ckpts = run_checkpoints(run, from_kimg, kimg)
    tracked = {}
    for k, ckpt in ckpts.items():
        st = (ckpt / EMA_FILE).stat()
        key = f"{(ckpt / EMA_FILE).resolve()}|{st.st_size}|{st.st_mtime_ns}|track={track_samples}"
        if key not in cache:
            cache[key] = ratio(track, run, ckpt)
            save(cache)
        tracked[k] = cache[key]
    best, last = min(tracked, key=tracked.get), max(ckpts, key=float)
    judges = [GeneratorSWD(reals, n, batch_size=100, seed=d) for d in range(1, draws + 1)]
    scored = {name: [ratio(j, run, ckpts[k]) for j in judges] for name, k in (("best", best), ("last", last))}
    return {"kimg": kimg, "best_kimg": float(best), "tracked": tracked, "best_draws": scored["best"],
            "last_draws": scored["last"], "best": statistics.mean(scored["best"]),
            "last": statistics.mean(scored["last"])}  # fmt: skip


def _save(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="stamps,icons")
    ap.add_argument("--arch", default="conv_d2x_r1hi")
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--kimg", type=float, default=128.0, help="the runs' length (their last checkpoint)")
    ap.add_argument("--from-kimg", type=float, default=32.0, help="first checkpoint the pick may take")
    ap.add_argument("--draws", type=int, default=4, help="draw seeds 1..N for scoring the pick and the last")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cache = json.loads(CACHE_FILE.read_text()) if CACHE_FILE.is_file() else {}
    results = json.loads(RESULT_FILE.read_text()) if RESULT_FILE.is_file() else {}
    for ds in args.datasets.split(","):
        reals = qr.ZipDataset(str(qr.zip_path(ds)), resolution=None)
        for seed in parse_seeds(args.seeds):
            run = qr.run_dir(ds, args.arch, seed)
            entry = pick_and_score(run, reals, args.kimg, args.from_kimg, args.draws, cache,
                                   save=lambda c: _save(CACHE_FILE, c))  # fmt: skip
            results[f"{ds}-{args.arch}-s{seed}-{args.kimg:g}"] = {"dataset": ds, "arch": args.arch, "seed": seed, **entry}
            _save(RESULT_FILE, results)
            b = entry["best_kimg"]
            print(f"{run.name}: best by tracked SWD at {b:g} kimg ({entry['tracked'][f'{b:g}']:.2f}); scored on "
                  f"{args.draws} other draws: best {entry['best']:.2f} ({', '.join(f'{v:.2f}' for v in entry['best_draws'])}), "
                  f"last {entry['last']:.2f} ({', '.join(f'{v:.2f}' for v in entry['last_draws'])})", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
