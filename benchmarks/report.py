"""RESULTS.md from run.py's JSON.

Only the part between the BEGIN/END markers is regenerated; anything else in the file (other
benchmarks' sections, e.g. data loading or FID written by other scripts) is kept as is.
"""

from __future__ import annotations

import os
from pathlib import Path

BEGIN = "<!-- BEGIN benchmarks/run.py (generated: edit run.py/report.py, not this block) -->"
END = "<!-- END benchmarks/run.py -->"


def _f(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def render(r: dict, plot_dir: str = "") -> str:
    """The markdown block; plot links are ``plot_dir`` + the file names stored in ``r``."""
    m = r["machine"]
    L = [BEGIN, "", "## Performance (benchmarks/run.py)", ""]
    L += [
        f"- Command: `{r['command']}` ({'quick' if r.get('quick') else 'full'} run, {r.get('wall_s', 0):.0f} s)",
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs (shared with other jobs; load average at start "
        f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'] or [])}), {m['platform']}",
        f"- torch {m['torch']}, Python {m['python']}, **torch threads: {m['torch_threads']}**, date {m['date']}",
    ]
    if len({(v["command"], v["date"]) for v in r.get("section_runs", {}).values()}) > 1:
        L += ["- Sections come from several runs (`--only` updates sections of an existing JSON):"]
        L += [
            f"  - {sec}: `{v['command']}` on {v['date']} ({v['threads']} thread(s))"
            for sec, v in r["section_runs"].items()
        ]
    L += [
        "- Timing: candidates run interleaved (shuffled order each round), after one warm-up call each; the table "
        "shows medians; a speed-up is the median over rounds of t(baseline)/t(ours) in the same round, so drift of "
        "the shared machine's load cancels. > 1 means ours is faster.",
        "- Threads: 1 by default. The 2 cores are shared with other developers' jobs: with 2 threads every "
        "parallel region waits for the slower core, so timings measure the neighbours more than the code. "
        "Use `--threads N` on a quiet machine.",
        "",
    ]
    b = r.get("block_vs_timm")
    if b:
        g = b["geomean"]
        L += [
            "### Our MaxViTBlock vs timm's MaxxVitBlock",
            "",
            f"**block_vs_timm_fwd_bwd = {_f(g['fwd_bwd'])}** (geometric mean over the configs below; "
            f"fwd only {_f(g['fwd'])}, bf16 autocast fwd+bwd {_f(g['bf16_fwd_bwd'])}).",
            "",
            f"Window 8, grid 8, head dim 32, MBConv expansion 4, FFN ratio 4, batch {b['batch']}, float32 unless noted. "
            "fwd+bwd: training mode, backward of a fixed random gradient shaped like the output (no `.sum()`, whose "
            "stride-0 gradient would add copies to both); fwd: eval mode under `torch.no_grad()`.",
            "",
            "| width | map | heads | params ours / timm | fwd+bwd ours ms | timm ms | speed-up | fwd ours ms | timm ms "
            "| speed-up | bf16 fwd+bwd ours ms | timm ms | speed-up |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in b["rows"]:
            fb, fw, bf = row["fwd_bwd"], row["fwd"], row.get("bf16_fwd_bwd")
            L.append(
                f"| {row['width']} | {row['side']}x{row['side']} | {row['heads']} | {row['params_ours']:,} / "
                f"{row['params_timm']:,} | {fb['ours_ms']:.1f} | {fb['timm_ms']:.1f} | **{fb['speedup']:.2f}** | "
                f"{fw['ours_ms']:.1f} | {fw['timm_ms']:.1f} | {fw['speedup']:.2f} | "
                + (f"{bf['ours_ms']:.1f} | {bf['timm_ms']:.1f} | {bf['speedup']:.2f} |" if bf else "- | - | - |")
            )
        L += [
            "",
            "timm block: `MaxxVitBlock(dim, dim, stride=1)` with `MaxxVitConvCfg(expand_ratio=4)` and "
            "`MaxxVitTransformerCfg(dim_head=32, window_size=8, grid_size=8, rel_pos_type='bias')`, channels-last "
            "attention (`PartitionAttentionCl`), fused SDPA on. What cannot be matched: timm's MBConv has three "
            "BatchNorms (pre-norm, after the 1x1 expand, after the depthwise conv; batch statistics in training "
            "mode) where ours has one LayerNorm (no train/eval mismatch in a generator); timm's LayerNorm eps is "
            "1e-6 (ours 1e-5); stride 1, so neither block downsamples; timm raises on maps not divisible by the "
            "window, ours pads and masks (the sizes here are divisible, so no padding runs). Parameter counts "
            "differ by the BN affine parameters.",
            "",
            "bf16: this AVX2 CPU has no native bf16 matmul, so both blocks run 8-10x slower than in float32; "
            "under autocast ours takes the explicit product with a float32 softmax (the reference path's "
            "numerics) instead of its float32-only fused CPU attention, and ends up ~10% behind timm. "
            "Worth re-measuring on a GPU or a CPU with AMX/AVX512-BF16.",
            "",
            "What makes ours faster (same math; `tests/test_nn.py` compares outputs and all gradients with a "
            "frozen copy of the original code to 1e-5): LayerNorm and the fused qkv projection run on the "
            "whole channels-last map and the qkv tensor is partitioned into (3, B*groups, heads, N, d) with "
            "one copy (merge back: one more); the residual stream is contiguous NHWC for the whole block; the "
            "MBConv runs channels-last (1x1 convs as matmuls on the same weights, depthwise conv on a "
            "channels-last view) and folds the squeeze-excite gate into a per-sample projection weight; on "
            "CPU with a trainable bias, attention is one autograd Function (in-place score ops, bias gradient "
            "reduced per cache-sized chunk, packed qkv gradient) instead of SDPA's unfused math fallback; "
            "inference uses SDPA's fused CPU kernel (4-D mask).",
            "",
        ]
    c = r.get("compile")
    if c is None:
        L += ["### torch.compile", "", "Not in this run (`--quick` leaves it out; run without `--quick`).", ""]
    if c:
        L += ["### torch.compile", ""]
        if "speedup" in c:
            L += [
                f"One block (width {c['width']}, {c['side']}x{c['side']}, batch {c['batch']}) fwd+bwd, inductor on CPU, "
                f"after warm-up: eager {c['eager_ms']:.1f} ms, compiled {c['compiled_ms']:.1f} ms, "
                f"**speed-up {c['speedup']:.2f}**. Compilation plus the first two calls took "
                f"{c['first_two_calls_s']:.0f} s (less with a warm inductor cache). On this CPU, with 1 thread, "
                "inductor's code does not beat eager for this block (the matmuls stay in the same BLAS; the "
                "generated element-wise kernels do not make up for it); no CPU-specific inductor tuning was tried. "
                "`train.compile=true` is meant for GPUs.",
                "",
            ]
        else:
            L += [f"{c.get('status')}", ""]
    s = r.get("scaling")
    if s:
        fm, ff = s["fit"]["maxsa"], s["fit"]["full"]
        L += [
            "### Max-SA scaling vs full self-attention",
            "",
            f"One block, width {s['width']}, {s['heads']} heads, window {s['window']} / grid {s['grid']}, batch 1, "
            "forward in eval mode under no_grad. FLOPs from `torch.utils.flop_counter.FlopCounterMode` (matmuls, "
            "convolutions and SDPA; element-wise ops are not counted). The full-attention reference block is "
            "pre-norm global SDPA over all H*W tokens + the same FFN (no MBConv), so its per-pixel cost at small "
            f"maps is lower than ours. Exponent of cost vs pixels (log-log fit): Max-SA time "
            f"**{fm['time_exponent']:.2f}**, FLOPs {fm['flops_exponent']:.2f}; full attention time "
            f"{ff['time_exponent']:.2f}, FLOPs {ff['flops_exponent']:.2f} (fit over {ff['fit_sides']} px). "
            f"Plot: [{s['plot']}]({plot_dir}{s['plot']}).",
            "",
            "| side | pixels | Max-SA us/px | Max-SA kFLOP/px | full attn us/px | full attn kFLOP/px |",
            "|---|---|---|---|---|---|",
        ]
        for row in s["rows"]:
            L.append(
                f"| {row['side']} | {row['pixels']} | {row['maxsa_us_per_px']:.2f} | {row['maxsa_flops_per_px'] / 1e3:.0f} | "
                f"{_f(row.get('full_us_per_px'))} | "
                + (f"{row['full_flops_per_px'] / 1e3:.0f} |" if "full_flops_per_px" in row else "- |")
            )
        L.append("")
    mo = r.get("models")
    if mo:
        L += [
            "### Generator and training throughput",
            "",
            "Each preset/resolution runs in a fresh process. G fwd: eval, no_grad. Training step: one D step "
            "(real + detached fake, non-saturating loss) and one G step, Adam, no R1/EMA/augmentation; img/s = "
            "batch / median step time. Memory: peak resident set size (RSS, MB) while the training steps run, "
            "sampled every 2 ms from /proc/self/statm by a thread (a lower bound: spikes shorter than 2 ms can be "
            "missed; `ru_maxrss` alone would not do, as imports and earlier phases set the process high-water "
            "mark), and its growth over the RSS after building the models and optimizers (= activations, "
            "gradients, Adam state, allocator caches).",
            "",
            "| preset | res | batch | G params (M) | D params (M) | G fwd img/s | G+D step img/s | training peak RSS MB | "
            "growth MB (G fwd / training) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in mo["rows"]:
            if "error" in row:
                L.append(f"| {row['preset']} | {row['resolution']} | - | - | - | failed: {row['error']} | | | |")
                continue
            L.append(
                f"| {row['preset']} | {row['resolution']} | {row['batch']} | {row['g_params_m']:.2f} | "
                f"{row['d_params_m']:.2f} | {row['g_fwd_img_s']:.1f} | {row['train_step_img_s']:.2f} | "
                f"{row['train_peak_rss_mb']:.0f} | {row['g_fwd_rss_growth_mb']:.0f} / {row['train_rss_growth_mb']:.0f} |"
            )
        if mo.get("skipped_in_this_run"):
            L.append(f"\nNot run in this (quick) run: {', '.join(mo['skipped_in_this_run'])}.")
        L.append("")
    fid = r.get("fid_features")
    if fid is not None:
        L += ["### FID feature extraction", ""]
        if fid.get("status") == "ok":
            run = r.get("section_runs", {}).get("fid", {})
            fd = fid["frechet"]
            L += [
                f"Random uint8 images at 128 px ({'quick' if run.get('quick') else 'full'} size, "
                f"{run.get('threads', m['torch_threads'])} thread(s)), the real Inception-V3 architecture with "
                "random weights (no download); details in `benchmarks/fid_features.py`.",
                "",
                "| pipeline | img/s |",
                "|---|---|",
                f"| ours, `tf` | {fid['ours_tf_img_s']:.2f} |",
                f"| torch-fidelity module directly | {fid['torch_fidelity_module_img_s']:.2f} |",
                f"| ours, `clean` | {fid['ours_clean_img_s']:.2f} |",
                f"| clean-fid's own loop | {fid['cleanfid_loop_img_s']:.2f} |",
                "",
                f"Ratios: tf / torch-fidelity {fid['tf_over_torch_fidelity']:.2f} (same network: ~1 within noise), "
                f"clean / clean-fid loop **{fid['clean_over_cleanfid']:.2f}**; clean features equal clean-fid's to "
                f"{fid['clean_vs_cleanfid_max_abs_diff']:.1e}. Frechet distance at d=2048: ours "
                f"{fd['ours_eigh_s']:.1f} s vs scipy sqrtm {fd['scipy_sqrtm_s']:.1f} s (**{fd['speedup']:.1f}x**), "
                f"relative difference {fd['rel_diff']:.1e}.",
                "",
            ]
        else:
            L += [f"{fid.get('status')}", ""]
    L += [END]
    return "\n".join(L) + "\n"


def write_results_md(results: dict, path: Path, json_dir: Path) -> None:
    """Regenerate run.py's block of the markdown file ``path`` (created if missing) from
    ``results``, the JSON stored in ``json_dir`` (plots are stored beside it)."""
    rel = os.path.relpath(json_dir, path.parent)
    block = render(results, "" if rel == "." else rel.replace(os.sep, "/") + "/")
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block.rstrip("\n") + tail)
            return
        path.write_text(text.rstrip("\n") + "\n\n" + block)
        return
    path.write_text("# Benchmark results\n\nSee benchmarks/README.md for how to run each benchmark.\n\n" + block)
