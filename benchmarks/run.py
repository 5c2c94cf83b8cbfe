"""Performance benchmarks, side by side, as ratios: JSON, a markdown report and a plot.

    PYTHONPATH=. python benchmarks/run.py --quick                    # ~3 min on 2 CPU cores
    PYTHONPATH=. python benchmarks/run.py                            # full run
    PYTHONPATH=. python benchmarks/run.py --only scaling --write     # update committed results

Sections (``--only`` picks some): block (our MaxViTBlock vs timm's MaxxVitBlock: fwd+bwd,
fwd, bf16 autocast), compile (torch.compile speed-up of one block), scaling (Max-SA vs full
self-attention, time and FLOPs per pixel, 16..128 px; plot scaling.png), models (generator
img/s and G+D training-step img/s per preset and resolution, peak RSS; one subprocess
each), fid (FID feature extraction and Frechet distance, from fid_features.py).

Output: ``--out DIR`` (default benchmarks/out/, git-ignored) gets results.json, RESULTS.md
and scaling.png. The committed results change only with ``--write``: the sections run are
merged into benchmarks/results/run.json (plot: benchmarks/results/scaling.png) and the
run.py block of benchmarks/RESULTS.md is regenerated from it. With ``--only``, sections are
merged into the JSON already there, so the other sections keep their last numbers.

Timing rule: candidates run interleaved (shuffled order every round), medians are reported,
and ratios are medians of per-round ratios (see common.py). Threads: ``--threads`` (default 1,
set with torch.set_num_threads before anything runs; see RESULTS.md for why).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import torch  # noqa: E402
from common import (  # noqa: E402
    OUT_DIR,
    RESULTS_DIR,
    RESULTS_MD,
    RssSampler,
    current_rss_mb,
    geomean,
    interleaved,
    machine_info,
    maxrss_mb,
    paired_ratio,
    timm_maxvit_block,
)
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

BLOCK_CONFIGS = [(64, 32), (128, 32), (64, 64), (128, 64)]  # (width, map side); window 8, grid 8


# --------------------------------------------------------------------------- block vs timm


def _fwd_bwd(module, x, autocast: bool = False):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        g = torch.randn_like(module(x)).to(torch.float32)  # same layout as the output

    def step():
        xx = x.detach().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = module(xx)
        y.float().backward(g)

    return step


def _fwd(module, x):
    def step():
        with torch.no_grad():
            module(x)

    return step


def bench_block(quick: bool) -> dict:
    from maxvit_gan.nn import MaxViTBlock

    batch = 4 if quick else 8
    reps = {"fwd_bwd": 3 if quick else 7, "fwd": 3 if quick else 7, "bf16_fwd_bwd": 3 if quick else 5}
    rows = []
    for dim, side in BLOCK_CONFIGS:
        torch.manual_seed(0)
        ours, theirs = MaxViTBlock(dim, dim // 32, 8, 8), timm_maxvit_block(dim, 8, 8)
        x = torch.randn(batch, dim, side, side)
        row = {
            "width": dim,
            "side": side,
            "batch": batch,
            "heads": dim // 32,
            "params_ours": sum(p.numel() for p in ours.parameters()),
            "params_timm": sum(p.numel() for p in theirs.parameters()),
        }
        # bf16 on this AVX2 CPU (no native bf16 matmul) is ~10x slower than float32: quick runs one
        # config, the full run the 32 px maps
        bf16 = (dim, side) == (64, 32) if quick else side == 32
        modes = ["fwd_bwd", "fwd"] + (["bf16_fwd_bwd"] if bf16 else [])
        for mode in modes:
            train = mode != "fwd"
            ours.train(train)
            theirs.train(train)
            if mode == "fwd":
                fns = {"ours": _fwd(ours, x), "timm": _fwd(theirs, x)}
            else:
                ac = mode.startswith("bf16")
                fns = {"ours": _fwd_bwd(ours, x, ac), "timm": _fwd_bwd(theirs, x, ac)}
            res = interleaved(fns, repeats=reps[mode], warmup=1)
            row[mode] = {
                "ours_ms": 1e3 * res["ours"]["median_s"],
                "timm_ms": 1e3 * res["timm"]["median_s"],
                "speedup": paired_ratio(res, "timm", "ours"),
                "repeats": reps[mode],
            }
            print(f"  block {dim}ch {side}px {mode:13s} ours {row[mode]['ours_ms']:8.1f} ms  timm "
                  f"{row[mode]['timm_ms']:8.1f} ms  x{row[mode]['speedup']:.2f}", flush=True)
        rows.append(row)
    summary = {
        mode: geomean([r[mode]["speedup"] for r in rows if mode in r]) for mode in ("fwd_bwd", "fwd", "bf16_fwd_bwd")
    }
    return {"rows": rows, "geomean": summary, "batch": batch, "window": 8, "grid": 8}


# --------------------------------------------------------------------------- torch.compile


def bench_compile(quick: bool) -> dict:
    from maxvit_gan.nn import MaxViTBlock

    dim, side, batch = 64, 32, 4 if quick else 8
    torch.manual_seed(0)
    block = MaxViTBlock(dim, dim // 32, 8, 8)
    x = torch.randn(batch, dim, side, side)
    try:
        compiled = torch.compile(block)
        t0 = time.perf_counter()
        _fwd_bwd(compiled, x)()
        _fwd_bwd(compiled, x)()
        compile_s = time.perf_counter() - t0
    except Exception as e:  # no C++ compiler / inductor failure: report, don't crash the run
        return {"status": f"skipped: {type(e).__name__}: {str(e)[:200]}"}
    res = interleaved({"eager": _fwd_bwd(block, x), "compiled": _fwd_bwd(compiled, x)}, repeats=3 if quick else 7)
    out = {
        "width": dim,
        "side": side,
        "batch": batch,
        "eager_ms": 1e3 * res["eager"]["median_s"],
        "compiled_ms": 1e3 * res["compiled"]["median_s"],
        "speedup": paired_ratio(res, "eager", "compiled"),
        "first_two_calls_s": compile_s,
    }
    print(f"  compile fwd+bwd {dim}ch {side}px: eager {out['eager_ms']:.1f} ms, compiled {out['compiled_ms']:.1f} ms, "
          f"x{out['speedup']:.2f} (compile+first calls {compile_s:.0f} s)", flush=True)
    return out


# --------------------------------------------------------------------------- scaling


class FullAttentionBlock(torch.nn.Module):
    """Reference for the quadratic curve: the same width and heads, one global attention over
    all H*W tokens (pre-norm, qkv, SDPA, proj, residual) and the same FFN."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        from maxvit_gan.nn import FeedForward

        self.heads = heads
        self.norm = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.proj = torch.nn.Linear(dim, dim)
        self.mlp = FeedForward(dim, mlp_ratio)

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        qkv = self.qkv(self.norm(t)).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        o = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        t = t + self.proj(o.transpose(1, 2).reshape(b, h * w, c))
        return self.mlp(t).transpose(1, 2).reshape(b, c, h, w)


def _flops(module, x) -> int:
    """Forward FLOPs. SDPA is forced onto its math path: the CPU flash kernel has no FLOP
    formula in FlopCounterMode, so it would count as zero."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops()


def _slope(xs, ys) -> float:
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def bench_scaling(quick: bool, out_png: Path) -> dict:
    from maxvit_gan.nn import MaxViTBlock

    dim, heads = 64, 2
    sides = [16, 32, 64, 128]
    full_max = 64 if quick else 128
    torch.manual_seed(0)
    maxsa, full = MaxViTBlock(dim, heads, 8, 8).eval(), FullAttentionBlock(dim, heads).eval()
    rows = []
    for side in sides:
        x = torch.randn(1, dim, side, side)
        px = side * side
        row = {"side": side, "pixels": px, "maxsa_flops_per_px": _flops(maxsa, x) / px}
        fns = {"maxsa": _fwd(maxsa, x)}
        if side <= full_max:
            row["full_flops_per_px"] = _flops(full, x) / px
            fns["full"] = _fwd(full, x)
        res = interleaved(fns, repeats=3 if quick else 5, warmup=1)
        row["maxsa_us_per_px"] = 1e6 * res["maxsa"]["median_s"] / px
        if "full" in fns:
            row["full_us_per_px"] = 1e6 * res["full"]["median_s"] / px
        rows.append(row)
        print(f"  scaling {side:3d}px: Max-SA {row['maxsa_us_per_px']:.2f} us/px {row['maxsa_flops_per_px'] / 1e3:.0f} kFLOP/px"
              + (f" | full {row['full_us_per_px']:.2f} us/px {row['full_flops_per_px'] / 1e3:.0f} kFLOP/px" if "full" in fns else ""),
              flush=True)
    fit = {}
    for name in ("maxsa", "full"):
        pts = [r for r in rows if f"{name}_us_per_px" in r]
        px = [r["pixels"] for r in pts]
        fit[name] = {
            "time_exponent": _slope(px, [r[f"{name}_us_per_px"] * r["pixels"] for r in pts]),
            "flops_exponent": _slope(px, [r[f"{name}_flops_per_px"] * r["pixels"] for r in pts]),
            "fit_sides": [r["side"] for r in pts],
        }
    _plot_scaling(rows, out_png)
    return {"width": dim, "heads": heads, "window": 8, "grid": 8, "batch": 1, "rows": rows, "fit": fit, "plot": out_png.name}


def _plot_scaling(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax, unit in (("us_per_px", axes[0], "time per pixel (us)"), ("flops_per_px", axes[1], "FLOPs per pixel")):
        for name, label in (("maxsa", "MaxViT block (Max-SA, window 8 / grid 8)"), ("full", "full self-attention block")):
            pts = [r for r in rows if f"{name}_{key}" in r]
            ax.plot([r["side"] for r in pts], [r[f"{name}_{key}"] for r in pts], "o-", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("map side (px)")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Per-pixel cost of one block, width 64, batch 1, forward (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- generator / training


MODEL_COMBOS_QUICK = [("tiny", 32), ("tiny", 64), ("tiny", 128), ("s", 32)]
MODEL_COMBOS_FULL = [(p, r) for p in ("tiny", "s", "b") for r in (32, 64, 128)]


def model_worker(preset: str, resolution: int, batch: int, repeats: int, threads: int) -> dict:
    """One preset/resolution in a fresh process: img/s of G forward and of one G+D training
    step, peak RSS (ru_maxrss) and its growth over the RSS after building the models."""
    torch.set_num_threads(threads)
    from maxvit_gan.models.build import build_models
    from maxvit_gan.models.config import ModelConfig
    from maxvit_gan.training.losses import d_loss, g_loss

    torch.manual_seed(0)
    G, D = build_models(ModelConfig(preset=preset), resolution)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.99))
    z = torch.randn(batch, G.z_dim)
    reals = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    rss_built = current_rss_mb()

    def gen_fwd():
        with torch.no_grad():
            G(z)

    def train_step():
        fake = G(z)
        loss_d = d_loss("nonsaturating", D(reals), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = g_loss("nonsaturating", D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    G.eval()
    with RssSampler() as mem_f:
        res_f = interleaved({"g": gen_fwd}, repeats=repeats, warmup=1)
    G.train()
    with RssSampler() as mem_t:
        res_t = interleaved({"t": train_step}, repeats=repeats, warmup=1)
    return {
        "preset": preset,
        "resolution": resolution,
        "batch": batch,
        "g_params_m": sum(p.numel() for p in G.parameters()) / 1e6,
        "d_params_m": sum(p.numel() for p in D.parameters()) / 1e6,
        "g_fwd_img_s": batch / res_f["g"]["median_s"],
        "train_step_img_s": batch / res_t["t"]["median_s"],
        "rss_after_build_mb": rss_built,
        "g_fwd_peak_rss_mb": mem_f.peak_mb,
        "train_peak_rss_mb": mem_t.peak_mb,
        "g_fwd_rss_growth_mb": mem_f.peak_mb - rss_built,
        "train_rss_growth_mb": mem_t.peak_mb - rss_built,
        "process_maxrss_mb": maxrss_mb(),
        "repeats": repeats,
    }


def bench_models(quick: bool, threads: int) -> dict:
    combos = MODEL_COMBOS_QUICK if quick else MODEL_COMBOS_FULL
    rows = []
    for preset, res in combos:
        # s and b carry a 512-wide discriminator: several seconds per image and step on this CPU
        batch = (8 if res <= 64 else 4) if preset == "tiny" else 2
        repeats = 2 if quick else 3
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_model-worker", f"{preset},{res},{batch},{repeats}",
               "--threads", str(threads)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            rows.append({"preset": preset, "resolution": res, "error": p.stderr.strip().splitlines()[-1:]})
            print(f"  model {preset}@{res}: FAILED {p.stderr[-300:]}", flush=True)
            continue
        row = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  model {preset:4s}@{res:3d}: G fwd {row['g_fwd_img_s']:7.1f} img/s, G+D step {row['train_step_img_s']:6.2f} "
              f"img/s, training peak RSS {row['train_peak_rss_mb']:.0f} MB (+{row['train_rss_growth_mb']:.0f})", flush=True)
    skipped = [f"{p}@{r}" for p, r in MODEL_COMBOS_FULL if (p, r) not in combos]
    return {"rows": rows, "skipped_in_this_run": skipped}


# --------------------------------------------------------------------------- FID features


def bench_fid(quick: bool, threads: int) -> dict:
    """``fid_features.benchmark``: feature-extraction img/s against torch-fidelity's and
    clean-fid's own loops, and the Frechet distance at d=2048 against scipy's sqrtm. Stored
    as returned, with ``status`` ok, or the error (e.g. clean-fid not installed)."""
    try:
        from fid_features import benchmark

        return {"status": "ok", **benchmark(quick=quick, threads=threads)}
    except Exception as e:
        return {"status": f"error: {type(e).__name__}: {e}"}


# --------------------------------------------------------------------------- main


def _merge(path: Path, new: dict, partial: bool) -> dict:
    """``new`` on top of the JSON at ``path`` when only some sections ran, else ``new`` alone."""
    results = json.loads(path.read_text()) if partial and path.exists() else {}
    runs = {**results.get("section_runs", {}), **new["section_runs"]}
    results.update(new)
    results["section_runs"] = runs
    return results


def _save(results: dict, json_path: Path, md_path: Path) -> None:
    from report import write_results_md

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1))
    write_results_md(results, md_path, json_path.parent)
    print(f"wrote {json_path} and {md_path}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats (~3 min on 2 CPU cores)")
    ap.add_argument("--out", default=str(OUT_DIR), help="output folder: results.json, RESULTS.md, scaling.png")
    ap.add_argument(
        "--write",
        action="store_true",
        help="also update the committed results: benchmarks/results/run.json, results/scaling.png "
        "and the run.py block of benchmarks/RESULTS.md",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated sections (default: all; --quick leaves out compile, ~1-2 min of inductor compilation)",
    )
    ap.add_argument("--_model-worker", dest="model_worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.model_worker:
        preset, res, batch, repeats = args.model_worker.split(",")
        print(json.dumps(model_worker(preset, int(res), int(batch), int(repeats), args.threads)))
        return {}

    committed_json = RESULTS_DIR / "run.json"
    if args.write and args.only and not committed_json.exists():
        ap.error(f"--write with --only merges into {committed_json}, which does not exist: run all sections once")
    only = args.only or ("block,scaling,models,fid" if args.quick else "block,compile,scaling,models,fid")
    sections = [s.strip() for s in only.split(",") if s.strip()]
    command = "PYTHONPATH=. python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info(args.threads)
    results: dict = {"machine": info, "command": command, "quick": args.quick}
    results["section_runs"] = {
        sec: {"command": command, "date": info["date"], "threads": args.threads, "quick": args.quick} for sec in sections
    }
    t_start = time.perf_counter()
    if "block" in sections:
        print("block vs timm", flush=True)
        results["block_vs_timm"] = bench_block(args.quick)
        results["block_vs_timm_fwd_bwd"] = results["block_vs_timm"]["geomean"]["fwd_bwd"]
        results["block_vs_timm_fwd"] = results["block_vs_timm"]["geomean"]["fwd"]
        results["block_vs_timm_bf16_fwd_bwd"] = results["block_vs_timm"]["geomean"]["bf16_fwd_bwd"]
    if "compile" in sections:
        print("torch.compile", flush=True)
        results["compile"] = bench_compile(args.quick)
        results["compile_speedup_fwd_bwd"] = results["compile"].get("speedup")
    if "scaling" in sections:
        print("Max-SA scaling", flush=True)
        results["scaling"] = bench_scaling(args.quick, out_dir / "scaling.png")
        results["maxsa_time_exponent"] = results["scaling"]["fit"]["maxsa"]["time_exponent"]
    if "models" in sections:
        print("generator / training throughput", flush=True)
        results["models"] = bench_models(args.quick, args.threads)
    if "fid" in sections:
        results["fid_features"] = bench_fid(args.quick, args.threads)
    results["wall_s"] = time.perf_counter() - t_start
    print(f"ran {', '.join(sections)} in {results['wall_s']:.0f} s")
    _save(_merge(out_dir / "results.json", results, bool(args.only)), out_dir / "results.json", out_dir / "RESULTS.md")
    if args.write:
        if "scaling" in sections:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out_dir / "scaling.png", RESULTS_DIR / "scaling.png")
        _save(_merge(committed_json, results, bool(args.only)), committed_json, RESULTS_MD)
    return results


if __name__ == "__main__":
    main()
