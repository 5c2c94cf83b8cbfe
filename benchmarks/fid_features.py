"""FID feature extraction speed (both modes) vs the libraries' own loops; Frechet distance time at d=2048.

Real Inception architecture with random weights (no download), written to a temporary
directory. Prints a markdown table and writes JSON: benchmarks/out/fid_features.json
(git-ignored) by default, ``--json PATH`` elsewhere, ``--write`` to the committed
benchmarks/results/fid_features.json.

    PYTHONPATH=. python benchmarks/fid_features.py --images 32 --resolution 128 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg
import torch

from maxvit_gan.metrics import build_feature_extractor, frechet_distance
from maxvit_gan.metrics.stand_ins import save_random_inception_weights

HERE = Path(__file__).resolve().parent


def _batches(images: torch.Tensor, b: int):
    return [images[i : i + b] for i in range(0, len(images), b)]


def bench_features(args, tmp: Path) -> dict:
    from cleanfid.fid import get_files_features
    from cleanfid.inception_torchscript import InceptionV3W
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    g = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (args.images, 3, args.resolution, args.resolution), generator=g, dtype=torch.uint8
    )
    n = len(images)
    out = {}

    tf_path = save_random_inception_weights(tmp / "inception_tf.pth", "tf")
    clean_path = save_random_inception_weights(tmp / "inception-2015-12-05.pt", "clean")
    tf_ext = build_feature_extractor("tf", weights_path=tf_path)
    clean_ext = build_feature_extractor("clean", weights_path=clean_path)
    warm = images[:2]
    tf_ext(warm), clean_ext(warm)

    tf_raw = FeatureExtractorInceptionV3(
        "x", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(tf_path)
    )
    tf_raw(warm)
    files = []
    for i, img in enumerate(images):
        files.append(tmp / f"{i}.npy")
        np.save(files[-1], img.permute(1, 2, 0).numpy())
    model = InceptionV3W(str(tmp), download=False, resize_inside=False)
    kw = dict(model=model, num_workers=0, batch_size=args.batch, device=torch.device("cpu"), verbose=False)
    get_files_features(files[:2], **kw)

    pipelines = {
        "ours_tf_img_s": lambda: [tf_ext(b) for b in _batches(images, args.batch)],
        "torch_fidelity_module_img_s": lambda: [tf_raw(b) for b in _batches(images, args.batch)],
        "ours_clean_img_s": lambda: [clean_ext(b) for b in _batches(images, args.batch)],
        "cleanfid_loop_img_s": lambda: get_files_features(files, **kw),
    }
    best = dict.fromkeys(pipelines, float("inf"))
    for _ in range(args.repeats):  # round-robin, best of repeats: fair under a shared, noisy CPU
        for name, fn in pipelines.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    out.update({name: n / t for name, t in best.items()})
    ours = clean_ext(images)["features"].numpy()
    theirs = get_files_features(files, **kw)
    out["clean_vs_cleanfid_max_abs_diff"] = float(np.abs(ours - theirs).max())
    out["tf_over_torch_fidelity"] = out["ours_tf_img_s"] / out["torch_fidelity_module_img_s"]
    out["clean_over_cleanfid"] = out["ours_clean_img_s"] / out["cleanfid_loop_img_s"]
    return out


def bench_frechet(d: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)

    def spd(n):
        a = rng.normal(size=(d, n)) * rng.uniform(0.1, 1.0, size=(d, 1))
        return a @ a.T / n

    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * 0.5
    s1, s2 = spd(d + 500), spd(d + 500)

    def ours():
        return frechet_distance(mu1, s1, mu2, s2)

    def scipy_sqrtm():  # pytorch-fid / clean-fid style
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)

    res = {}
    for name, fn, reps in (("ours_eigh", ours, repeats), ("scipy_sqrtm", scipy_sqrtm, 1)):
        times, val = [], None
        for _ in range(reps):
            t = time.perf_counter()
            val = fn()
            times.append(time.perf_counter() - t)
        res[f"{name}_s"] = min(times)
        res[f"{name}_value"] = val
    res["rel_diff"] = abs(res["ours_eigh_value"] - res["scipy_sqrtm_value"]) / abs(res["scipy_sqrtm_value"])
    res["speedup"] = res["scipy_sqrtm_s"] / res["ours_eigh_s"]
    return res


def benchmark(quick: bool, threads: int) -> dict:
    """Entry point for benchmarks/run.py: feature extraction img/s (ours vs torch-fidelity and
    clean-fid loops) and the Frechet distance at d=2048 (ours vs scipy sqrtm)."""
    torch.set_num_threads(threads)
    args = argparse.Namespace(images=8 if quick else 32, resolution=128, batch=8 if quick else 16,
                              repeats=1 if quick else 3, dim=2048)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        feats = bench_features(args, Path(tmp))
    fd = bench_frechet(args.dim, 1)
    return {"ours_img_s": feats["ours_tf_img_s"], **feats, "frechet": fd}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--json", type=str, default=str(HERE / "out" / "fid_features.json"), help="JSON output path")
    p.add_argument("--write", action="store_true", help="also write the committed benchmarks/results/fid_features.json")
    args = p.parse_args()

    env = dict(
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch=torch.__version__,
        numpy=np.__version__,
        scipy=scipy.__version__,
        torch_threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        images=args.images,
        resolution=args.resolution,
        batch=args.batch,
    )
    with tempfile.TemporaryDirectory() as tmp:
        feats = bench_features(args, Path(tmp))
    fd = bench_frechet(args.dim, args.repeats)
    result = dict(env=env, features=feats, frechet=fd)

    print(f"torch {env['torch']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch threads")
    print(
        f"\n{args.images} images at {args.resolution} px, batch {args.batch}, random-weight Inception (real architecture)\n"
    )
    print("| pipeline | img/s |\n|---|---|")
    print(f"| ours, tf (torch-fidelity net, TF1 bilinear resize) | {feats['ours_tf_img_s']:.2f} |")
    print(f"| torch-fidelity module called directly | {feats['torch_fidelity_module_img_s']:.2f} |")
    print(f"| ours, clean (clean-fid resize + TorchScript) | {feats['ours_clean_img_s']:.2f} |")
    print(f"| clean-fid's own loop (get_files_features, .npy files) | {feats['cleanfid_loop_img_s']:.2f} |")
    print(f"\nratios: tf / torch-fidelity {feats['tf_over_torch_fidelity']:.3f}, clean / clean-fid {feats['clean_over_cleanfid']:.3f};"
          f" clean features vs clean-fid max |diff| {feats['clean_vs_cleanfid_max_abs_diff']:.2e}")  # fmt: skip
    print(f"\nFrechet distance, d={args.dim}, float64: ours (eigh) {fd['ours_eigh_s']:.3f} s, scipy sqrtm "
          f"{fd['scipy_sqrtm_s']:.3f} s (x{fd['speedup']:.1f}); relative difference {fd['rel_diff']:.2e}")  # fmt: skip
    for path in [Path(args.json)] + ([HERE / "results" / "fid_features.json"] if args.write else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
