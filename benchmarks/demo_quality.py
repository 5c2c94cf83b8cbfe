"""Score the checkpoints of a shapes training run: Shapes-FID and per-class accuracy.

    python benchmarks/demo_quality.py outputs/2026-11-26/02-30-00 [more run dirs]

For each ``checkpoints/step-*`` of each run (class-conditional, 32 px, 4 shape classes), the
EMA generator makes N images, classes balanced, from fixed latents; the metrics are those of
``benchmarks/quality_shapes.py``: Frechet distance between features of a small shapes
classifier (trained once, cached in benchmarks/out/) of the samples and of N held-out reals,
and that classifier's accuracy on the samples for the requested class, overall and per class
(circle, square, triangle, cross). This is how the CPU demo recipe was chosen
(benchmarks/RESULTS.md, "CPU demo recipe").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import quality_shapes as q  # noqa: E402

from maxvit_gan.rundir import RunDir, load_generator  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run directories of shapes (32 px, conditional) runs")
    ap.add_argument("--n", type=int, default=800, help="samples and reals per evaluation")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    clf = q.classifier()
    xr, _ = q.image_bank(seed=103, n=args.n)
    with torch.no_grad():
        real_feats = clf.features(xr)
    print("run  checkpoint  shapes-FID  accuracy  (circle square triangle cross)")
    for run in args.runs:
        G = load_generator(run)
        if G.resolution != q.RES or G.num_classes != q.NUM_CLASSES:
            raise ValueError(f"{run}: needs a conditional 32-px shapes run, got {G.resolution} px, {G.num_classes} classes")
        for ck in RunDir(run).checkpoints():
            G = load_generator(run, checkpoint=ck)
            r = q.evaluate(G.eval(), clf, real_feats, args.n, seed=0)
            cls = " ".join(f"{a:.2f}" for a in r["per_class"])
            print(f"{run.name}  {ck.name}  {r['fid']:8.1f}  {r['acc']:.3f}  ({cls})", flush=True)


if __name__ == "__main__":
    main()
