"""SWD on shapes (32 px): the real-vs-real floor by N, a fresh generator, blurred reals, and the time it takes.

    PYTHONPATH=. python benchmarks/swd_shapes.py                        # N = 1000, 2000, 5000; floor over seeds 0-2
    PYTHONPATH=. python benchmarks/swd_shapes.py --ns 1000 --seeds 0    # quick

All numbers are ``maxvit_gan.metrics.swd`` (ProGAN's recipe, x1e3): the floor is the SWD between two
disjoint random sets of N shapes images (``swd_reference``); the generator is the ``tiny`` preset
at its initialisation (torch.manual_seed(0)), EMA-free, N samples against the same reference set;
blurred reals are the floor's second set after a Gaussian blur. Timings: one thread
(``--threads``), wall clock, a shared machine (the load average is recorded). Writes
benchmarks/out/swd_shapes.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from common import OUT_DIR, machine_info  # benchmarks/common.py (the script's folder is on sys.path)

from maxvit_gan.data import ShapesDataset
from maxvit_gan.metrics.swd import (
    GeneratorSWD,
    dataset_descriptors,
    image_descriptors,
    reference_split,
    swd_distance,
    swd_reference,
)
from maxvit_gan.models.generator import Generator
from maxvit_gan.models.presets import generator_preset


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    r = 3
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(images.float(), (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ns", default="1000,2000,5000")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the floor (reference split, patches, directions)")
    ap.add_argument("--sigmas", default="0.5,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT_DIR / "swd_shapes.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ns = [int(n) for n in args.ns.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    data = ShapesDataset(resolution=32, num_images=50000)
    result: dict = {"machine": machine_info(args.threads), "rows": []}

    # time per 1000 images: descriptors of 1000 reals, the distance of two sets of 1000
    t0 = time.perf_counter()
    a = dataset_descriptors(data, range(1000), batch_size=64, progress=False)
    t_desc = time.perf_counter() - t0
    b = dataset_descriptors(data, range(1000, 2000), batch_size=64, progress=False)
    t0 = time.perf_counter()
    swd_distance(a, b)
    t_dist = time.perf_counter() - t0
    result["seconds_per_1000"] = {"descriptors": round(t_desc, 2), "distance_1000_vs_1000": round(t_dist, 2)}
    print(f"per 1000 images: descriptors {t_desc:.2f} s (incl. rendering), distance 1000 vs 1000 {t_dist:.2f} s")

    torch.manual_seed(0)
    G = Generator(generator_preset("tiny", 32, data.num_classes)).eval()
    for n in ns:
        floors, t_ref = [], None
        for seed in seeds:
            t0 = time.perf_counter()
            ref = swd_reference(data, n, seed=seed, batch_size=64, progress=False)
            t_ref = t_ref or time.perf_counter() - t0
            floors.append(ref.floor)
        ref = swd_reference(data, n, seed=seeds[0], batch_size=64, progress=False)  # the first seed again
        metric = GeneratorSWD(data, n, batch_size=64, seed=seeds[0])
        metric.reference = ref
        t0 = time.perf_counter()
        gen = metric(G)
        t_gen = time.perf_counter() - t0
        _, b_idx = reference_split(len(data), n, seeds[0])
        b_images = torch.stack([data[i][0] for i in b_idx])
        blurred = {}
        for s in sigmas:
            desc = image_descriptors(blur(b_images, s), seed=seeds[0])
            blurred[s] = ref.score(desc)
        row = {
            "n": n,
            "floor": [f["swd_floor"] for f in floors],
            "floor_levels": {k: [f[k] for f in floors] for k in floors[0] if k.endswith("px")},
            "generator_init": {k: v for k, v in gen.items() if k.startswith("swd") and not k.startswith("swd_floor")},
            "blurred": {str(s): {k: v for k, v in r.items() if not k.startswith("swd_floor")} for s, r in blurred.items()},
            "seconds": {"reference_and_floor": round(t_ref, 1), "generator_swd": round(t_gen, 1)},
        }
        result["rows"].append(row)
        fl = row["floor"]
        print(
            f"N={n}: floor {statistics.mean(fl):.2f} (seeds {', '.join(f'{x:.2f}' for x in fl)}); "
            f"fresh G {gen['swd']:.2f}; blurred "
            + ", ".join(f"s={s} {blurred[s]['swd']:.2f}" for s in sigmas)
            + f"; reference+floor {t_ref:.1f} s, G {t_gen:.1f} s",
            flush=True,
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
