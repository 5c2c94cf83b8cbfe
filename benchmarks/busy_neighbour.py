"""CPU training throughput when the machine is shared: the default demo's training step
(experiment=shapes_cpu) with and without a busy neighbour (a Python busy loop, one core),
for OpenMP wait policies and thread counts.

    PYTHONPATH=. python benchmarks/busy_neighbour.py                 # ~5 min; JSON to benchmarks/out/
    PYTHONPATH=. python benchmarks/busy_neighbour.py --out benchmarks/results/busy_neighbour.json  # the committed one

Each measurement is a fresh process (the OpenMP wait policy is read once, when the runtime
loads): build the demo Trainer, 3 warm-up steps, then as many steps as fit in ``--seconds``;
img/s = images / time. Configurations run interleaved, ``--rounds`` times, medians reported;
the ratios compare measurements of the same run (the machine's other load drifts).
Writes a markdown table to stdout and JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (threads: "auto" = the trainer's own choice (ThreadGovernor), OMP_WAIT_POLICY or None = unset,
# neighbour). "before" = the trainer's former automatic choice: cores / local processes = 2, fixed.
CONFIGS = {
    "before, quiet": ("2", None, False),
    "before, busy neighbour": ("2", None, True),
    "after, quiet": ("auto", None, False),
    "after, busy neighbour": ("auto", None, True),
    "1 thread, busy neighbour": ("1", None, True),
    "2 threads PASSIVE, busy neighbour": ("2", "PASSIVE", True),
}


def worker(threads: str, seconds: float) -> None:
    import torch

    from maxvit_gan.config import compose
    from maxvit_gan.training.trainer import Trainer

    cfg = compose("train", ["data.num_workers=0", "train.log_with=none"])
    cfg.run_dir = tempfile.mkdtemp(prefix="busy_neighbour_")
    if threads != "auto":
        cfg.train.cpu_threads = int(threads)
    trainer = Trainer(cfg)
    batches = trainer._batches()
    for _ in range(3):  # warm-up (the thread governor measures from the trainer's construction on)
        trainer.train_step(*next(batches))
        if trainer.threads is not None:
            trainer.threads.update()
    n, t0 = 0, time.perf_counter()
    changes = []
    while time.perf_counter() - t0 < seconds:
        trainer.train_step(*next(batches))
        n += cfg.train.batch_size
        if trainer.threads is not None and trainer.threads.update():  # as the training loop does
            changes.append(round(time.perf_counter() - t0, 1))
    dt = time.perf_counter() - t0
    print(json.dumps({"img_s": n / dt, "threads": torch.get_num_threads(), "thread_changes_at_s": changes,
                      "wait_policy": os.environ.get("OMP_WAIT_POLICY")}))  # fmt: skip


def measure(name: str, seconds: float) -> dict:
    threads, policy, neighbour = CONFIGS[name]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MAXVIT_GAN_CPU_THREADS", None)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    cmd = [sys.executable, __file__, "--worker", "--threads", threads, "--seconds", str(seconds)]
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if out.returncode != 0:
        raise RuntimeError(f"{name}: exit {out.returncode}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="configuration names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "busy_neighbour.json")
    args = ap.parse_args()
    if args.worker:
        worker(args.threads, args.seconds)
        return
    names = args.only or list(CONFIGS)
    load = os.getloadavg()
    results: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(measure(name, args.seconds))
            print(f"round {r}: {name}: {results[name][-1]}", file=sys.stderr, flush=True)
    med = {n: statistics.median(x["img_s"] for x in results[n]) for n in names}
    base = med.get("before, quiet")
    print(f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} logical CPUs; "
          f"{args.rounds} rounds of {args.seconds:.0f} s, medians")  # fmt: skip
    print("\n| configuration | torch threads (at the end) | OMP_WAIT_POLICY | img/s | vs before, quiet |\n|---|---|---|---|---|")
    for n in names:
        x = results[n][-1]
        ratio = f"{med[n] / base:.2f}" if base else "-"
        print(f"| {n} | {x['threads']} | {x['wait_policy'] or '(unset)'} | {med[n]:.1f} | {ratio} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average": load, "seconds": args.seconds, "results": results, "median_img_s": med}, indent=1))


if __name__ == "__main__":
    main()
