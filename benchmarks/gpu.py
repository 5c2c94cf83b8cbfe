"""GPU check: does the GPU path work, and how fast is it? One command, under 8 minutes.

    python benchmarks/gpu.py                                   # on a GPU machine (= --device cuda)
    bash benchmarks/gpu_check.sh                               # the same under a timeout; JSON + log into $OUT
    PYTHONPATH=. python benchmarks/gpu.py --device cpu --tiny  # every path but the CUDA-only ones (~1 min, 2 cores)

Correctness first, then speed. Sections, in the order they run:

  env            device, torch/CUDA, dense bf16 peak of the card (datasheet table below) and a
                 measured bf16 matmul rate
  models         G and D of each preset at the training resolution: forward + backward in fp32
                 and under bf16 autocast, finite; bf16 vs fp32 outputs and gradients agree
  maxsa          a MaxViT block (divisible and padded map) and cross-attention on the device vs
                 the float64 CPU reference path: float64, fp32 (TF32 off), bf16 autocast
  sdpa           which SDPA backend runs for block / grid attention (trainable relative-position
                 bias) and cross-attention, fp32 and bf16, training: the profiler's op names by
                 default, and each of flash / efficient / cudnn forced with sdpa_kernel; the
                 whole generator's SDPA calls (forward + backward, bf16)
  trainer        the real Trainer.train() (1 process, bf16, micro-batch 32, shapes data, EMA,
                 snapshot, checkpoint) for a few steps: finite losses
  speed_gen      generator forward img/s (eval, no_grad): fp32, bf16, bf16 + channels_last
  speed_train    Trainer.train_step img/s (G + D + R1 + EMA, the imagenet128 settings at
                 micro-batch 32, bf16): eager, channels_last, lazy R1; peak memory; FLOPs per
                 image (FlopCounterMode) and MFU
  fid            FID feature extraction img/s (real Inception architecture, random weights)
  speed_compile  torch.compile: train.compile=true as the Trainer does it (G compiled, D eager)
                 (+ channels_last)

Every section catches its own failure and is reported in the table; the JSON (and a markdown
copy) is rewritten before and after every section, so a killed run keeps what it measured and
names the section it was stopped in (status "unfinished"). A time budget
(--budget-s, default 450 s on a GPU) skips the sections that no longer fit, with a note, and
stops a section that overruns its share (SIGALRM).

Output: benchmarks/out/gpu.json and gpu.md (git-ignored), ``--json PATH`` elsewhere;
``--write`` (GPU runs only) also writes benchmarks/results/gpu.json and the GPU block of
benchmarks/RESULTS.md; ``--record GPU_JSON`` does that here, from a gpu.json brought back from a
GPU machine. Exit status: 0 when every check passed and no section failed, 1 when
a check or a section failed, 2 for a bad command line (e.g. --device cuda without CUDA).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

if __name__ == "__main__":  # the Trainer's progress bar (tqdm reads this when imported): its tick lines suffice
    os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from common import OUT_DIR, RESULTS_DIR, RESULTS_MD, RssSampler, interleaved, machine_info  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, flop_registry  # noqa: E402

GOAL_IMG_S = 500.0  # the b generator's 128-px training step on one H100-class GPU, bf16 (issue #17)

# Dense (no sparsity) BF16 Tensor Core peaks in TFLOP/s, from NVIDIA's product datasheets (SXM
# boost clocks unless the name says otherwise; the RTX 4090 figure is the Ada whitepaper's "BF16
# with FP32 accumulate"). Matched in this order against torch.cuda.get_device_name(). MFU against
# them is an upper-bound denominator: real cards sustain less (the measured matmul rate is the
# second denominator, DESIGN.md section 9).
BF16_PEAK_TFLOPS = [
    (r"GH200", 989.4),
    (r"H200 NVL", 835.5),
    (r"H200", 989.4),
    (r"H100 NVL", 835.5),
    (r"H100 PCIe", 756.0),
    (r"H100|H800", 989.4),
    (r"B200", 2250.0),
    (r"A100|A800", 312.0),
    (r"L40S", 362.1),
    (r"L40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
    (r"RTX 4090", 165.2),
]
H100_CLASS = re.compile(r"H100|H200|H800")

# SDPA's backends as the profiler names their forward ops
SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "cpu_flash",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
    "aten::_scaled_dot_product_attention_math": "math",
}

# tolerances of the checks (relative L2 error ||a - b|| / ||b|| unless noted)
TOL = {
    "bf16_vs_fp32_output": 0.05,  # whole model, random init, bf16 autocast vs fp32 (TF32 off)
    "bf16_vs_fp32_grad_cos": 0.99,  # cosine similarity of all parameter gradients (min)
    "float64": 1e-9,  # device float64 vs CPU float64 reference, per tensor
    "fp32": 1e-4,  # device fp32 (TF32 off) vs CPU float64 reference, per tensor
    "bf16_block_output": 0.03,  # one block under bf16 autocast vs CPU float64 reference
    "bf16_block_grads": 0.05,  # all gradients of one block, concatenated
}


class SectionTimeout(BaseException):
    """The time budget ran out (SIGALRM). Not an Exception: only the places that mean to
    record it and go on (the section runner, the speed variants) catch it."""


@dataclass
class Plan:
    """Sizes: the real ones on a GPU, tiny ones for the CPU check (--tiny)."""

    device: torch.device
    tiny: bool
    presets: list[str]
    resolution: int
    micro_batch: int  # the training micro-batch (imagenet128 on one GPU: 256 = 8 x 32)
    check_batch: int  # models / maxsa sections
    gen_batch: int  # generator forward img/s
    trainer_steps: int  # real Trainer.train()
    steps_per_round: int  # train_step calls per timed round (lazy R1: the R1 interval)
    rounds: int  # timed rounds (median)
    lazy_r1_interval: int
    fid_images: int
    fid_batch: int
    fid_clean_images: int
    compile_backend: str
    workers: int
    budget_s: float


def make_plan(args) -> Plan:
    dev = torch.device(args.device)
    from maxvit_gan.models import PRESETS

    presets = args.presets.split(",") if args.presets else (["tiny"] if args.tiny else [p for p in ("b", "hit_b") if p in PRESETS])
    if args.tiny:
        p = Plan(dev, True, presets, resolution=32, micro_batch=4, check_batch=2, gen_batch=4, trainer_steps=2,
                 steps_per_round=1, rounds=1, lazy_r1_interval=2, fid_images=2, fid_batch=2, fid_clean_images=0,
                 compile_backend="eager", workers=0, budget_s=300.0)
    else:
        cuda = dev.type == "cuda"
        p = Plan(dev, False, presets, resolution=128, micro_batch=32, check_batch=8, gen_batch=128 if cuda else 8,
                 trainer_steps=4, steps_per_round=4, rounds=3, lazy_r1_interval=16, fid_images=1000 if cuda else 16,
                 fid_batch=250 if cuda else 8, fid_clean_images=200 if cuda else 4, compile_backend="inductor",
                 workers=4, budget_s=450.0)
    if args.resolution:
        p.resolution = args.resolution
    if args.micro_batch:
        p.micro_batch = args.micro_batch
    if args.compile_backend:
        p.compile_backend = args.compile_backend
    if args.budget_s:
        p.budget_s = args.budget_s
    return p


# --------------------------------------------------------------------------- small helpers


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class PeakMemory:
    """Peak memory while the body runs: CUDA max_memory_allocated (GiB), or sampled RSS on CPU."""

    def __init__(self, dev: torch.device):
        self.dev, self.gib = dev, None

    def __enter__(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
        else:
            self._rss = RssSampler().__enter__()
        return self

    def __exit__(self, *exc):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
            self.gib = torch.cuda.max_memory_allocated(self.dev) / 2**30
        else:
            self._rss.__exit__(*exc)
            self.gib = self._rss.peak_mb / 1024


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu().flatten(), b.detach().double().cpu().flatten()
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))


def all_finite(*ts) -> bool:
    return all(bool(torch.isfinite(t.detach()).all()) for t in ts if t is not None)


def flat_grads(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().flatten().double().cpu() for p in module.parameters() if p.grad is not None])


def first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0][:300] if msg else ''}"


def autocast(dev: torch.device, enabled: bool):
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=enabled)


@contextlib.contextmanager
def no_tf32():
    """True fp32 matmuls and convolutions (the fp32 references)."""
    from maxvit_gan.metrics.features import no_tf32 as _no_tf32

    with _no_tf32():
        yield


def time_rounds(fn, dev: torch.device, rounds: int, warmup: int = 1) -> float:
    """Median seconds of ``fn`` (synchronized), after ``warmup`` calls (common.interleaved)."""

    def call():
        fn()
        sync(dev)

    return interleaved({"x": call}, repeats=rounds, warmup=warmup)["x"]["median_s"]


def perturb_(module: torch.nn.Module, seed: int, std: float = 0.05) -> torch.nn.Module:
    """Random weights everywhere (zero-initialised projections would hide whole paths)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * std)
    return module


def bf16_peak_tflops(name: str) -> float | None:
    for pattern, tflops in BF16_PEAK_TFLOPS:
        if re.search(pattern, name):
            return tflops
    return None


# --------------------------------------------------------------------------- the run: sections, checks, budget


UNFINISHED = "did not finish: the process was stopped (a hard timeout or a kill) while this section ran"


class Run:
    def __init__(self, plan: Plan, json_path: Path, command: str):
        self.plan, self.dev = plan, plan.device
        self.json_path, self.md_path = json_path, json_path.with_suffix(".md")
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + plan.budget_s
        self.results: dict = {
            "command": command,
            "device": str(plan.device),
            "tiny": plan.tiny,
            "presets": plan.presets,
            "resolution": plan.resolution,
            "micro_batch": plan.micro_batch,
            "budget_s": plan.budget_s,
            "goal_img_s": GOAL_IMG_S,
            "tolerances": TOL,
            "machine": machine_info(torch.get_num_threads()),
            "sections": {},
            "checks": [],
        }
        self.tmp = Path(tempfile.mkdtemp(prefix="maxvit_gan_gpu_"))

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def check(self, section: str, name: str, passed: bool | None, value=None, limit=None, note: str | None = None):
        self.results["checks"].append(
            {"section": section, "check": name, "passed": passed, "value": value, "limit": limit, "note": note}
        )

    @contextlib.contextmanager
    def time_limit(self, seconds: float):
        """Raise SectionTimeout in the main thread after ``seconds`` (SIGALRM)."""
        if seconds <= 0 or not hasattr(signal, "setitimer"):
            yield
            return

        def handler(signum, frame):
            raise SectionTimeout(f"stopped after {seconds:.0f} s (time budget)")

        old = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def section(self, name: str, fn, estimate_s: float, *args):
        """Run one section unless the budget cannot fit ``estimate_s``; record ok/failed/skipped."""
        left = self.left()
        rec: dict = {"estimate_s": estimate_s}
        if left < estimate_s:
            rec.update(status="skipped", note=f"time budget: {max(left, 0):.0f} s left, the section needs ~{estimate_s:.0f} s")
            print(f"[{name}] skipped: {rec['note']}", flush=True)
        else:
            print(f"[{name}] ...", flush=True)
            # on disk while it runs: a run killed here (a hard timeout, a lease ending) says where it stopped
            self.results["sections"][name] = {**rec, "status": "unfinished", "note": UNFINISHED}
            self.save()
            t = time.perf_counter()
            try:
                # a section may overrun its estimate, but not the budget (plus a few seconds to save)
                with self.time_limit(max(left - 5, 1)):
                    rec.update(status="ok", **(fn(self, *args) or {}))
            except SectionTimeout as e:  # the budget ran out: what the section had is lost, the run goes on
                rec.update(status="stopped", note=f"{e} (the time budget ran out)")
            except Exception as e:  # one failing section must not lose the others' numbers
                rec.update(status="failed", error=first_line(e), traceback=traceback.format_exc()[-3000:])
                print(f"[{name}] FAILED: {first_line(e)}", flush=True)
            rec["seconds"] = round(time.perf_counter() - t, 2)
            print(f"[{name}] {rec['status']} in {rec['seconds']:.1f} s", flush=True)
        self.results["sections"][name] = rec
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
        self.save()
        return rec

    def save(self) -> None:
        self.results["wall_s"] = round(time.perf_counter() - self.t0, 2)
        self.results["summary"] = summary(self.results)
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(_json_safe(self.results), indent=1))
        self.md_path.write_text(render_markdown(self.results))


def _json_safe(x):
    """Non-finite floats as strings (valid JSON, and visible)."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


# --------------------------------------------------------------------------- env


def sec_env(run: Run) -> dict:
    dev = run.dev
    out = {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        name = torch.cuda.get_device_name(dev)
        peak = bf16_peak_tflops(name)
        out.update(
            device_name=name,
            capability=".".join(map(str, torch.cuda.get_device_capability(dev))),
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            bf16_supported=torch.cuda.is_bf16_supported(),
            peak_bf16_tflops_datasheet=peak,
            peak_source="NVIDIA datasheet, dense BF16 Tensor Core (table in benchmarks/gpu.py)" if peak else
            "device not in the table: MFU only against the measured matmul rate",
            h100_class=bool(H100_CLASS.search(name)),
        )  # fmt: skip
        n, iters = 8192, 20
    else:
        out.update(device_name=run.results["machine"]["cpu"], peak_bf16_tflops_datasheet=None,
                   peak_source="CPU: no datasheet peak; MFU against the measured matmul rate is indicative only",
                   h100_class=False)  # fmt: skip
        n, iters = 512, 3
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)

    def mm():
        for _ in range(iters):
            torch.mm(a, b)

    s = time_rounds(mm, dev, rounds=3)
    out["measured_bf16_matmul_tflops"] = 2 * n**3 * iters / s / 1e12
    out["measured_matmul_size"] = n
    print(f"  {out['device_name']}: bf16 matmul {out['measured_bf16_matmul_tflops']:.1f} TFLOP/s measured"
          + (f", {out['peak_bf16_tflops_datasheet']} datasheet" if out.get("peak_bf16_tflops_datasheet") else ""), flush=True)
    run.env = out
    return out


# --------------------------------------------------------------------------- models: fwd/bwd fp32 and bf16


def _build(preset: str, resolution: int, dev: torch.device):
    from maxvit_gan.models.build import build_models
    from maxvit_gan.models.config import ModelConfig

    torch.manual_seed(0)
    G, D = build_models(ModelConfig(preset=preset), resolution)
    return G.to(dev), D.to(dev)


def sec_models(run: Run, preset: str) -> dict:
    plan, dev = run.plan, run.dev
    G, D = _build(preset, plan.resolution, dev)
    g = torch.Generator().manual_seed(0)
    B, R = plan.check_batch, plan.resolution
    z = torch.randn(B, G.z_dim, generator=g).to(dev)
    reals = (torch.rand(B, 3, R, R, generator=g) * 2 - 1).to(dev)
    w_img = torch.randn(B, 3, R, R, generator=g).to(dev)  # a fixed random direction: non-trivial gradients
    out: dict = {"g_params_m": sum(p.numel() for p in G.parameters()) / 1e6,
                 "d_params_m": sum(p.numel() for p in D.parameters()) / 1e6, "batch": B}  # fmt: skip
    res = {}
    for mode in ("fp32", "bf16"):
        ac = mode == "bf16"
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        ctx = no_tf32() if mode == "fp32" else contextlib.nullcontext()
        with ctx, PeakMemory(dev) as mem:
            t = time.perf_counter()
            with autocast(dev, ac):
                img = G(z)
            (img.float() * w_img).mean().backward()
            with autocast(dev, ac):
                logits = D(reals)
            logits.float().mean().backward()
            sync(dev)
            secs = time.perf_counter() - t
        res[mode] = (img.detach().float(), logits.detach().float(), flat_grads(G), flat_grads(D))
        finite = all_finite(*res[mode])
        out[mode] = {"fwd_bwd_s": secs, "peak_mem_gib": mem.gib, "finite": finite,
                     "img_dtype": str(img.dtype), "logits_dtype": str(logits.dtype)}  # fmt: skip
        run.check("models", f"{preset}: G and D fwd+bwd {mode}, outputs and gradients finite", finite)
    f, b = res["fp32"], res["bf16"]
    cmp = {
        "G_output_rel_err": rel_err(b[0], f[0]),
        "D_output_rel_err": rel_err(b[1], f[1]),
        "G_grad_cosine": cosine(b[2], f[2]),
        "D_grad_cosine": cosine(b[3], f[3]),
        "G_grad_rel_err": rel_err(b[2], f[2]),
        "D_grad_rel_err": rel_err(b[3], f[3]),
    }
    out["bf16_vs_fp32"] = cmp
    lim_o, lim_c = TOL["bf16_vs_fp32_output"], TOL["bf16_vs_fp32_grad_cos"]
    for net in ("G", "D"):
        run.check("models", f"{preset}: {net} output bf16 vs fp32 (rel. L2)", cmp[f"{net}_output_rel_err"] <= lim_o,
                  cmp[f"{net}_output_rel_err"], f"<= {lim_o}")  # fmt: skip
        run.check("models", f"{preset}: {net} parameter gradients bf16 vs fp32 (cosine)", cmp[f"{net}_grad_cosine"] >= lim_c,
                  cmp[f"{net}_grad_cosine"], f">= {lim_c}")  # fmt: skip
    print(f"  {preset}@{R}: bf16 vs fp32 G out {cmp['G_output_rel_err']:.2e}, D out {cmp['D_output_rel_err']:.2e}, "
          f"grad cos G {cmp['G_grad_cosine']:.4f} D {cmp['D_grad_cosine']:.4f}", flush=True)
    return out


# --------------------------------------------------------------------------- Max-SA on the device vs the CPU reference


def _maxsa_cases(tiny: bool):
    from maxvit_gan.nn import CrossAttention, MaxViTBlock

    if tiny:
        return [
            ("MaxViTBlock 64ch 16x16 (window 8, grid 8)", lambda: MaxViTBlock(64, 2, 8, 8), (2, 64, 16, 16), None),
            ("MaxViTBlock 64ch 12x12 (padded to 16)", lambda: MaxViTBlock(64, 2, 8, 8), (2, 64, 12, 12), None),
            ("CrossAttention 64ch 16x16, 16 tokens", lambda: CrossAttention(64, 128, 2), (2, 64, 16, 16), (2, 16, 128)),
        ]
    return [
        ("MaxViTBlock 128ch 64x64 (window 8, grid 8)", lambda: MaxViTBlock(128, 4, 8, 8), (2, 128, 64, 64), None),
        ("MaxViTBlock 384ch 8x8 (window 4, grid 2)", lambda: MaxViTBlock(384, 12, 4, 2), (4, 384, 8, 8), None),
        ("MaxViTBlock 128ch 20x20 (padded to 24/32)", lambda: MaxViTBlock(128, 4, 8, 8), (2, 128, 20, 20), None),
        ("CrossAttention 128ch 64x64, 16 tokens", lambda: CrossAttention(128, 384, 4), (2, 128, 64, 64), (2, 16, 384)),
    ]


def _fwd_bwd_case(module, x, ctxt, g, dev, dtype, ac):
    """Outputs and gradients (input, context, parameters) as float64 CPU tensors."""
    m = module.to(dev, dtype)
    xx = x.detach().to(dev, dtype).clone().requires_grad_()
    cc = ctxt.detach().to(dev, dtype).clone().requires_grad_() if ctxt is not None else None
    m.zero_grad(set_to_none=True)
    with autocast(dev, ac):
        y = m(xx, cc) if cc is not None else m(xx)
    (y.to(dtype) * g.to(dev, dtype)).sum().backward()
    grads = {"input": xx.grad}
    if cc is not None:
        grads["context"] = cc.grad
    grads.update({n: p.grad for n, p in m.named_parameters()})
    return y.detach().double().cpu(), {k: v.detach().double().cpu() for k, v in grads.items()}


def sec_maxsa(run: Run) -> dict:
    import copy

    from maxvit_gan.nn import set_attention_backend

    dev = run.dev
    rows = []
    for i, (name, make, shape, ctx_shape) in enumerate(_maxsa_cases(run.plan.tiny)):
        torch.manual_seed(100 + i)
        base = perturb_(make(), seed=100 + i).train()
        gen = torch.Generator().manual_seed(i)
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        c = torch.randn(ctx_shape, generator=gen, dtype=torch.float64) if ctx_shape else None
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        ref_m = set_attention_backend(copy.deepcopy(base), False)  # reference path: plain product, float64, CPU
        y_ref, g_ref = _fwd_bwd_case(ref_m, x, c, g, torch.device("cpu"), torch.float64, False)
        for label, dtype, ac in (("float64", torch.float64, False), ("fp32", torch.float32, False), ("bf16", torch.float32, True)):
            with no_tf32():
                y, gr = _fwd_bwd_case(copy.deepcopy(base), x, c, g, dev, dtype, ac)
            errs = {k: rel_err(gr[k], g_ref[k]) for k in g_ref}
            worst = max(errs, key=errs.get)
            all_g = rel_err(torch.cat([gr[k].flatten() for k in g_ref]), torch.cat([g_ref[k].flatten() for k in g_ref]))
            row = {"case": name, "mode": label, "output_rel_err": rel_err(y, y_ref), "worst_grad": worst,
                   "worst_grad_rel_err": errs[worst], "all_grads_rel_err": all_g,
                   "finite": all_finite(y, *gr.values())}  # fmt: skip
            if label == "bf16":
                ok = row["output_rel_err"] <= TOL["bf16_block_output"] and all_g <= TOL["bf16_block_grads"]
                limit = f"out <= {TOL['bf16_block_output']}, grads <= {TOL['bf16_block_grads']}"
                value = max(row["output_rel_err"], all_g)
            else:
                tol = TOL[label]
                value = max(row["output_rel_err"], errs[worst])
                ok, limit = value <= tol, f"<= {tol} per tensor"
            ok = ok and row["finite"]
            row["passed"] = ok
            rows.append(row)
            run.check("maxsa", f"{name}, {dev.type} {label} vs CPU float64 reference (fwd+bwd)", ok, value, limit)
            print(f"  {name:45s} {label:7s} out {row['output_rel_err']:.1e}  grads {all_g:.1e} (worst {worst} "
                  f"{errs[worst]:.1e})", flush=True)
    return {"rows": rows, "reference": "CPU, float64, reference attention path (use_sdpa=False)",
            "note": "fp32 and float64 run with TF32 off; bf16 = fp32 weights under bf16 autocast"}  # fmt: skip


# --------------------------------------------------------------------------- SDPA backend


def _sdpa_calls(fn, dev: torch.device, kernels: bool = True) -> dict:
    """Run ``fn`` under the profiler: SDPA forward ops by backend, and (``kernels``) the
    attention-like GPU kernels."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" and kernels else [])
    with profile(activities=acts) as prof:
        fn()
        sync(dev)
    counts: dict[str, int] = {}
    gpu_kernels = set()
    for e in prof.events():
        if e.name in SDPA_OPS:
            counts[SDPA_OPS[e.name]] = counts.get(SDPA_OPS[e.name], 0) + 1
        elif dev.type == "cuda" and getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA:
            if re.search(r"fmha|flash|attention|mem_eff|cutlass.*attn|sdpa", e.name, re.I):
                gpu_kernels.add(e.name[:120])
    return {"sdpa_ops": counts, "gpu_kernels": sorted(gpu_kernels)[:8]}


def _attention_layers(run: Run):
    """Block, grid and cross-attention at the first and last attention stage of the first preset."""
    from maxvit_gan.models import generator_preset
    from maxvit_gan.nn import BlockAttention, CrossAttention, GridAttention

    cfg = generator_preset(run.plan.presets[0], run.plan.resolution)
    att = [i for i, w in enumerate(cfg.window_sizes) if w > 0]
    c0, nlat = cfg.channels[0], cfg.num_latent_tokens
    layers = []
    for i in [att[0]] if run.plan.tiny else sorted({att[0], att[-1]}):
        dim, side = cfg.channels[i], 8 * 2**i
        heads = max(1, dim // cfg.head_dim)
        w, gsz = cfg.window_sizes[i], cfg.grid_sizes[i]
        stage = f"{side}px {dim}ch {heads}h"
        layers.append((f"block attn P={w} ({stage})", "block", lambda d=dim, h=heads, p=w: BlockAttention(d, h, p), dim, side))
        layers.append((f"grid attn G={gsz} ({stage})", "grid", lambda d=dim, h=heads, p=gsz: GridAttention(d, h, p), dim, side))
        layers.append((f"cross attn {nlat} tokens ({stage})", "cross", lambda d=dim, h=heads: CrossAttention(d, c0, h), dim, side))
    return layers, c0, nlat


def sec_sdpa(run: Run) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev, B = run.dev, 4
    forced = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
    if hasattr(SDPBackend, "CUDNN_ATTENTION"):
        forced["cudnn"] = SDPBackend.CUDNN_ATTENTION
    layers, c0, nlat = _attention_layers(run)
    rows = []
    for name, kind, make, dim, side in layers:
        torch.manual_seed(0)
        m = make().to(dev).train()  # the relative-position table is trainable: the bias needs a gradient
        x = torch.randn(B, dim, side, side, device=dev)
        ctxt = torch.randn(B, nlat, c0, device=dev) if kind == "cross" else None
        for dtype in ("fp32", "bf16"):

            def step(m=m, x=x, ctxt=ctxt, ac=dtype == "bf16"):
                m.zero_grad(set_to_none=True)
                with autocast(dev, ac):
                    y = m(x, ctxt) if ctxt is not None else m(x)
                y.float().square().mean().backward()

            row = {"layer": name, "kind": kind, "dtype": dtype}
            d = _sdpa_calls(step, dev)
            row["default"] = sorted(d["sdpa_ops"]) or ["no SDPA call"]
            row["gpu_kernels"] = d["gpu_kernels"]
            for bname, backend in forced.items():
                try:
                    with sdpa_kernel([backend]):
                        used = _sdpa_calls(step, dev, kernels=False)["sdpa_ops"]
                    row[bname] = "ok" if used else "ok (no SDPA call)"
                except Exception as e:
                    row[bname] = "error: " + first_line(e)[:160]
            rows.append(row)
            print(f"  {name:38s} {dtype}: default {','.join(row['default']):12s} "
                  + " ".join(f"{b}={'ok' if row[b].startswith('ok') else 'no'}" for b in forced), flush=True)

    # the whole generator, training mode, bf16: every SDPA call of forward + backward
    G, _ = _build(run.plan.presets[0], run.plan.resolution, dev)
    z = torch.randn(2, G.z_dim, device=dev)

    def g_step():
        with autocast(dev, True):
            y = G(z)
        y.float().square().mean().backward()

    g_step()  # warm-up (index caches)
    gen = _sdpa_calls(g_step, dev)
    print(f"  generator ({run.plan.presets[0]}, fwd+bwd, bf16): SDPA calls {gen['sdpa_ops'] or 'none'}", flush=True)

    if dev.type == "cuda":
        biased = [r for r in rows if r["kind"] in ("block", "grid") and r["dtype"] == "bf16"]
        run.check("sdpa", "block/grid attention, trainable bias, bf16: default backend is fused (no math fallback)",
                  all("math" not in r["default"] and r["default"] != ["no SDPA call"] for r in biased),
                  "; ".join(f"{r['layer']}: {','.join(r['default'])}" for r in biased))  # fmt: skip
        run.check("sdpa", "block/grid attention, trainable bias, bf16: runs forced to EFFICIENT_ATTENTION (fwd+bwd)",
                  all(r["efficient"] == "ok" for r in biased),
                  "; ".join(f"{r['layer']}: {r['efficient']}" for r in biased if r["efficient"] != "ok") or "all ok")  # fmt: skip
        cross = [r for r in rows if r["kind"] == "cross" and r["dtype"] == "bf16"]
        run.check("sdpa", "cross-attention, bf16: default backend is fused (flash/efficient/cudnn)",
                  all("math" not in r["default"] and r["default"] != ["no SDPA call"] for r in cross),
                  "; ".join(f"{r['layer']}: {','.join(r['default'])}" for r in cross))  # fmt: skip
        run.check("sdpa", f"generator fwd+bwd bf16: SDPA math-fallback calls ({run.plan.presets[0]})",
                  gen["sdpa_ops"].get("math", 0) == 0, gen["sdpa_ops"].get("math", 0), "0")  # fmt: skip
    else:
        run.check("sdpa", "fused-kernel checks (CUDA only)", None, note="CPU: training attention with a trainable bias "
                  "runs maxvit_gan's own kernel (fp32) or the reference product (autocast), not SDPA")  # fmt: skip
    return {"rows": rows, "generator_bf16_fwd_bwd": gen, "batch": B,
            "how": "default: op names from torch.profiler; forced: each backend alone under "
                   "torch.nn.attention.sdpa_kernel, 'error' = that kernel cannot run this call"}  # fmt: skip


# --------------------------------------------------------------------------- the real Trainer


def imagenet_config(run: Run, preset: str, run_dir: Path, **train):
    """The imagenet128 experiment (maxvit_gan/conf/experiment/imagenet.yaml) on procedural shapes, one
    process, micro-batch = global batch (no accumulation), no FID, no TensorBoard."""
    from maxvit_gan.config import compose

    plan = run.plan
    overrides = [
        "experiment=imagenet",
        f"data.resolution={plan.resolution}",
        f"model.preset={preset}",
        "data.name=shapes",
        "data.path=null",
        "data.conditional=false",
        f"data.num_workers={plan.workers}",
        f"data.shapes_num_images={max(256, 4 * plan.micro_batch * plan.trainer_steps)}",
        "metrics.fid.every_kimg=0",
        "train.log_with=none",
        f"train.batch_size={plan.micro_batch}",
        "train.grad_accum=1",
    ]
    cfg = compose("train", overrides)
    cfg.run_dir = str(run_dir)
    cfg.train.cpu_threads = torch.get_num_threads()
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


def build_trainer(run: Run, cfg):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    from maxvit_gan.training.trainer import Trainer

    AcceleratorState._reset_state(True)  # a fresh Accelerator per Trainer (process-wide singletons)
    GradientState._reset_state()
    acc = Accelerator(
        mixed_precision=cfg.train.mixed_precision,
        cpu=run.dev.type == "cpu",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
    )
    return Trainer(cfg, acc)


def sec_trainer(run: Run) -> dict:
    from maxvit_gan.checkpoint import latest_checkpoint

    plan = run.plan
    preset, steps = plan.presets[0], plan.trainer_steps
    run_dir = run.tmp / "trainer_run"
    cfg = imagenet_config(run, preset, run_dir)
    cfg.train.kimg = steps * plan.micro_batch / 1000
    cfg.train.tick_kimg = plan.micro_batch / 1000  # a line per step
    cfg.train.grid_kimg = 1e9  # grids at the start and the end only
    cfg.train.checkpoint_kimg = 1e9  # one checkpoint, at the end
    cfg.train.grid_rows = cfg.train.grid_cols = 4
    with PeakMemory(run.dev) as mem:
        t = time.perf_counter()
        trainer = build_trainer(run, cfg)
        result = trainer.train()
        secs = time.perf_counter() - t
    rd = trainer.run
    lines = [json.loads(s) for s in rd.metrics_file.read_text().splitlines() if s.strip()]
    losses = {k: [ln[k] for ln in lines if k in ln] for k in ("loss_D", "loss_G", "r1")}
    finite = bool(lines) and all(math.isfinite(v) for vs in losses.values() for v in vs)
    ok = finite and result["step"] == steps
    written = (rd.generator_file, rd.reals_grid, rd.fakes_grid(0.0), latest_checkpoint(rd.checkpoints_dir) or rd.checkpoints_dir)
    present = {p.name: p.exists() for p in written}
    run.check("trainer", f"Trainer.train(): {steps} steps of {plan.micro_batch} ({preset}, bf16), losses finite", ok,
              {k: [round(v, 4) for v in vs] for k, vs in losses.items()})  # fmt: skip
    run.check("trainer", "Trainer.train(): EMA generator, sample grids and a checkpoint written", all(present.values()), present)
    return {"preset": preset, "steps": result["step"], "batch": plan.micro_batch, "mixed_precision": cfg.train.mixed_precision,
            "device": str(trainer.accelerator.device), "seconds_incl_setup": secs, "peak_mem_gib": mem.gib,
            "losses": losses, "r1_gamma": cfg.loss.r1_gamma, "r1_interval": cfg.loss.r1_interval,
            "ema_decay": cfg.train.ema_decay}  # fmt: skip


# --------------------------------------------------------------------------- speed: generator forward


class _FlopCount(TorchDispatchMode):
    """FlopCounterMode's formulas (torch.utils.flop_counter.flop_registry) without its module
    tracker: the tracker's backward hooks cannot run inside ``torch.autograd.grad`` (R1)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def _flops(fn, module_tracker: bool = True) -> int:
    """FLOPs of ``fn``: matmuls, convolutions, attention (torch.utils.flop_counter's formulas).
    SDPA runs on its math path, whose matmuls are counted on every device (the CPU's fused
    kernel has no formula). ``module_tracker=False`` for code that calls torch.autograd.grad."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]):
        if module_tracker:
            with FlopCounterMode(display=False) as fc:
                fn()
            return fc.get_total_flops()
        with _FlopCount() as fc:
            fn()
        return fc.total


def sec_speed_gen(run: Run, preset: str) -> dict:
    plan, dev = run.plan, run.dev
    G, D = _build(preset, plan.resolution, dev)
    G.eval()
    D.eval()
    with torch.no_grad():
        z2 = torch.randn(2, G.z_dim, device=dev)
        g_flops = _flops(lambda: G(z2)) / 2
        d_flops = _flops(lambda: D(torch.zeros(2, 3, plan.resolution, plan.resolution, device=dev))) / 2
    D = None
    B = plan.gen_batch
    z = torch.randn(B, G.z_dim, device=dev)
    rows = []
    for variant, ac, cl in (("fp32", False, False), ("bf16", True, False), ("bf16 + channels_last", True, True)):
        G = G.to(memory_format=torch.channels_last if cl else torch.contiguous_format)

        def fwd(G=G, ac=ac):
            with torch.no_grad(), autocast(dev, ac):
                G(z)

        with PeakMemory(dev) as mem:
            s = time_rounds(fwd, dev, rounds=plan.rounds, warmup=2)
        row = {"variant": variant, "batch": B, "img_s": B / s, "peak_mem_gib": mem.gib}
        row.update(_mfu(run, g_flops, row["img_s"]))
        rows.append(row)
        print(f"  G {preset} fwd {variant:22s} {row['img_s']:9.1f} img/s  peak {mem.gib:.2f} GiB", flush=True)
    return {"g_fwd_flops_per_img": g_flops, "d_fwd_flops_per_img": d_flops, "rows": rows,
            "note": "eval mode, torch.no_grad; fp32 uses the default TF32 settings (matmul off, cuDNN conv on)"}  # fmt: skip


def _mfu(run: Run, flops_per_img: float | None, img_s: float | None) -> dict:
    env = getattr(run, "env", {}) or {}
    out = {"flops_per_img": flops_per_img}
    if not flops_per_img or not img_s:
        return out
    achieved = flops_per_img * img_s / 1e12
    out["achieved_tflops"] = achieved
    if env.get("peak_bf16_tflops_datasheet"):
        out["mfu_datasheet"] = achieved / env["peak_bf16_tflops_datasheet"]
    if env.get("measured_bf16_matmul_tflops"):
        out["mfu_measured_matmul"] = achieved / env["measured_bf16_matmul_tflops"]
    return out


# --------------------------------------------------------------------------- speed: training step


def _synthetic_batch(run: Run):
    g = torch.Generator().manual_seed(0)
    R, B = run.plan.resolution, run.plan.micro_batch
    images = torch.randint(0, 256, (B, 3, R, R), generator=g, dtype=torch.uint8).to(run.dev)
    return images, torch.zeros(B, dtype=torch.long)


def _time_train_steps(run: Run, trainer, n_steps: int) -> dict:
    """img/s of ``trainer.train_step`` on a fixed synthetic batch: median over rounds of
    ``n_steps`` steps (a multiple of the R1 interval), after one warm-up round; peak memory."""
    plan, dev = run.plan, run.dev
    images, labels = _synthetic_batch(run)
    last = {}

    def steps():
        for _ in range(n_steps):
            stats = trainer.train_step(images, labels)
            if stats is None:
                raise RuntimeError("train_step skipped a step (non-finite loss)")
            last.update(stats)

    with PeakMemory(dev) as mem:
        t = time.perf_counter()
        trainer.train_step(images, labels)  # first step alone: compilation, allocator, cuDNN autotune
        sync(dev)
        first = time.perf_counter() - t
        s = time_rounds(steps, dev, rounds=plan.rounds, warmup=0 if plan.tiny else 1)
    stats = {k: float(v) for k, v in last.items()}
    return {"img_s": plan.micro_batch * n_steps / s, "step_ms": 1e3 * s / n_steps, "first_step_s": first,
            "peak_mem_gib": mem.gib, "finite": all(math.isfinite(v) for v in stats.values()),
            "last_stats": stats, "steps_timed": n_steps * plan.rounds}  # fmt: skip


def _step_flops(run: Run, trainer) -> dict:
    """FLOPs of one training step with R1 and one without, per image (the trainer's own step)."""
    images, labels = _synthetic_batch(run)
    B = run.plan.micro_batch
    loss = trainer.cfg.loss
    saved = (loss.r1_gamma, loss.r1_interval)
    loss.r1_interval = 1
    with_r1 = _flops(lambda: trainer.train_step(images, labels), module_tracker=False) / B
    loss.r1_gamma = 0.0
    try:
        without = _flops(lambda: trainer.train_step(images, labels), module_tracker=False) / B
    finally:
        loss.r1_gamma, loss.r1_interval = saved
    return {"step_with_r1": with_r1, "step_without_r1": without}


def _variant_flops(flops: dict | None, r1_interval: int) -> float | None:
    if not flops:
        return None
    k = max(1, r1_interval)
    return (flops["step_with_r1"] + (k - 1) * flops["step_without_r1"]) / k


def _train_row(run: Run, preset: str, variant: str, r1_interval: int, res: dict, flops: dict | None) -> dict:
    row = {"preset": preset, "variant": variant, "r1_interval": r1_interval, "batch": run.plan.micro_batch, **res}
    row.update(_mfu(run, _variant_flops(flops, r1_interval), res.get("img_s")))
    if preset == "b" and run.plan.resolution == 128 and res.get("img_s"):
        row["goal_ratio"] = res["img_s"] / GOAL_IMG_S
    return row


def sec_speed_train(run: Run, preset: str) -> dict:
    plan = run.plan
    rows, flops, settings = [], None, None
    variants = [("eager", False, None), ("channels_last", True, None), (f"lazy R1 (every {plan.lazy_r1_interval})", False, plan.lazy_r1_interval)]
    for variant, cl, lazy in variants:
        r1_interval = lazy or None
        left = run.left()
        if rows and left < (20 if run.dev.type == "cuda" else 5):
            rows.append({"preset": preset, "variant": variant, "status": f"skipped: time budget ({left:.0f} s left)"})
            _print_train_row(rows[-1])
            continue
        try:
            cfg = imagenet_config(run, preset, run.tmp / f"speed_{preset}", channels_last=cl)
            if lazy:
                cfg.loss.r1_interval = lazy
            r1_interval = cfg.loss.r1_interval
            settings = _settings(cfg) if not lazy else settings
            trainer = build_trainer(run, cfg)
            res = _time_train_steps(run, trainer, r1_interval if r1_interval > 1 else plan.steps_per_round)
            if flops is None:
                flops = _step_flops(run, trainer)
            row = _train_row(run, preset, variant, r1_interval, res, flops)
            run.check("speed_train", f"{preset}: train_step {variant}: statistics finite", res["finite"])
        except (Exception, SectionTimeout) as e:  # the section keeps the rows it has
            row = {"preset": preset, "variant": variant, "r1_interval": r1_interval, "error": first_line(e)}
            if not isinstance(e, SectionTimeout):
                run.check("speed_train", f"{preset}: train_step {variant} runs", False, first_line(e))
        rows.append(row)
        _print_train_row(row)
        trainer = None
        if run.dev.type == "cuda":
            torch.cuda.empty_cache()
    return {"rows": rows, "flops_per_img": flops, "settings": settings,
            "note": "Trainer.train_step on a fixed synthetic uint8 batch on the device (no data loading): "
                    "D phase (G no_grad, D on reals and fakes, R1 via autograd.grad), G phase, EMA update; "
                    "img/s = micro-batch x steps / time, median over rounds"}  # fmt: skip


def _settings(cfg) -> dict:
    return {"mixed_precision": cfg.train.mixed_precision, "micro_batch": cfg.train.batch_size, "grad_accum": cfg.train.grad_accum,
            "loss": cfg.loss.kind, "r1_gamma": cfg.loss.r1_gamma, "r1_interval": cfg.loss.r1_interval,
            "ema_decay": cfg.train.ema_decay, "xflip": cfg.data.xflip, "optim": "Adam", "betas": list(cfg.optim.betas)}  # fmt: skip


def _print_train_row(row: dict) -> None:
    if "error" in row:
        print(f"  train {row['preset']} {row['variant']:28s} FAILED: {row['error']}", flush=True)
    elif "img_s" in row:
        goal = f"  = {row['goal_ratio']:.2f} x goal" if "goal_ratio" in row else ""
        print(f"  train {row['preset']} {row['variant']:28s} {row['img_s']:8.1f} img/s  peak {row['peak_mem_gib']:.2f} GiB"
              f"  first step {row['first_step_s']:.1f} s{goal}", flush=True)
    else:
        print(f"  train {row['preset']} {row['variant']:28s} {row.get('status', '')}", flush=True)


# --------------------------------------------------------------------------- speed: torch.compile


def compile_double_backward_error() -> str | None:
    """None when torch.compile can differentiate twice (R1: autograd.grad with create_graph),
    else the error. Probed with backend aot_eager on a tiny function: seconds, no GPU."""
    import torch._dynamo

    lin = torch.nn.Linear(4, 1)
    f = torch.compile(lin, backend="aot_eager")
    x = torch.randn(2, 4, requires_grad=True)
    try:
        (gx,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        gx.square().sum().backward()
        return None
    except Exception as e:
        return first_line(e)
    finally:
        torch._dynamo.reset()


@contextlib.contextmanager
def _compile_backend(backend: str):
    """Make torch.compile (as the Trainer calls it) use ``backend`` (cheap backends for the CPU check)."""
    if backend == "inductor":
        yield
        return
    orig = torch.compile

    def patched(model=None, **kw):
        kw.setdefault("backend", backend)
        return orig(model, **kw) if model is not None else orig(**kw)

    torch.compile = patched
    try:
        yield
    finally:
        torch.compile = orig


def sec_speed_compile(run: Run, preset: str) -> dict:
    import torch._dynamo

    plan = run.plan
    flops = (run.results["sections"].get(f"speed_train:{preset}") or {}).get("flops_per_img")
    rows = []
    probe = compile_double_backward_error()
    variants = [("train.compile=true (G compiled, D eager)", "trainer", False)]
    if not plan.tiny:
        variants.append(("train.compile=true + channels_last", "trainer", True))
    for variant, what, cl in variants:
        r1_interval = None
        left = run.left()
        need = 60 if plan.device.type == "cuda" else 10
        if left < need:
            rows.append({"preset": preset, "variant": variant, "status": f"skipped: time budget ({left:.0f} s left)"})
            _print_train_row(rows[-1])
            continue
        try:
            cfg = imagenet_config(run, preset, run.tmp / f"compile_{preset}", channels_last=cl, compile=what == "trainer")
            r1_interval = cfg.loss.r1_interval
            with _compile_backend(plan.compile_backend):
                trainer = build_trainer(run, cfg)
                res = _time_train_steps(run, trainer, plan.steps_per_round)
            row = _train_row(run, preset, variant, r1_interval, res, flops)
            row["compile_backend"] = plan.compile_backend
            run.check("speed_compile", f"{preset}: train_step {variant}: statistics finite", res["finite"])
        except (Exception, SectionTimeout) as e:  # the variant stops, the section keeps its rows
            row = {"preset": preset, "variant": variant, "r1_interval": r1_interval, "error": first_line(e)}
            if not isinstance(e, SectionTimeout):
                run.check("speed_compile", f"{preset}: train_step {variant} runs", False, first_line(e))
        rows.append(row)
        _print_train_row(row)
        trainer = None
        torch._dynamo.reset()
        if run.dev.type == "cuda":
            torch.cuda.empty_cache()
    return {"rows": rows, "compile_backend": plan.compile_backend, "double_backward_probe": probe or "ok",
            "note": "train.compile=true compiles G only (D stays eager: R1 differentiates D twice, and compiled graphs "
                    "have no double backward; double_backward_probe says whether that still holds). First-step time "
                    "includes compilation."}  # fmt: skip


# --------------------------------------------------------------------------- FID features


def sec_fid(run: Run) -> dict:
    from maxvit_gan.metrics import build_feature_extractor
    from maxvit_gan.metrics.stand_ins import save_random_inception_weights

    plan, dev = run.plan, run.dev
    R = plan.resolution
    rows = []
    for mode, n in (("tf", plan.fid_images), ("clean", plan.fid_clean_images)):
        if n <= 0:
            continue
        path = save_random_inception_weights(run.tmp / ("inception_tf.pth" if mode == "tf" else "inception-2015-12-05.pt"), mode)
        ext = build_feature_extractor(mode, weights_path=path, device=dev)
        b = min(plan.fid_batch, n)
        images = torch.randint(0, 256, (b, 3, R, R), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        if mode == "tf":  # as in evaluation: the generator's quantized images are already on the device
            images = images.to(dev)
        batches = max(1, n // b)
        feats = {}

        def extract(ext=ext, images=images, batches=batches, feats=feats):
            for _ in range(batches):
                feats["f"] = ext(images)["features"]

        with PeakMemory(dev) as mem:
            s = time_rounds(extract, dev, rounds=2 if not plan.tiny else 1, warmup=1)
        row = {"mode": mode, "images": batches * b, "batch": b, "img_s": batches * b / s, "peak_mem_gib": mem.gib,
               "finite": all_finite(feats["f"])}  # fmt: skip
        rows.append(row)
        run.check("fid", f"Inception features ({mode}) finite", row["finite"])
        print(f"  FID features {mode:5s}: {row['img_s']:8.1f} img/s (batch {b}, uint8 {R} px)", flush=True)
        ext = None
    return {"rows": rows, "note": "real Inception-V3 architecture with random weights (speed only), fp32 with TF32 off; "
            "tf: uint8 batches already on the device (as in evaluation); clean: from host memory, resized on the CPU "
            "(PIL bicubic) as clean-fid does"}  # fmt: skip


# --------------------------------------------------------------------------- summary, markdown


def summary(results: dict) -> dict:
    secs = results["sections"]
    checks = results["checks"]
    failed_checks = [c["check"] for c in checks if c["passed"] is False]
    out = {
        "sections_ok": sum(s.get("status") == "ok" for s in secs.values()),
        "sections_failed": [k for k, s in secs.items() if s.get("status") == "failed"],
        "sections_skipped": [k for k, s in secs.items() if s.get("status") in ("skipped", "stopped")],
        "sections_unfinished": [k for k, s in secs.items() if s.get("status") == "unfinished"],
        "checks_passed": sum(c["passed"] is True for c in checks),
        "checks_failed": failed_checks,
        "checks_not_applicable": sum(c["passed"] is None for c in checks),
    }
    rows = [r for k, s in secs.items() if k.startswith(("speed_train:b", "speed_compile:b")) for r in s.get("rows", [])]
    rows = [r for r in rows if r.get("preset") == "b" and r.get("goal_ratio")]
    if rows:
        best = max(rows, key=lambda r: r["img_s"])
        eager = next((r for r in rows if r["variant"] == "eager"), None)
        out["goal"] = {
            "goal_img_s": GOAL_IMG_S,
            "best_variant": best["variant"],
            "best_img_s": best["img_s"],
            "best_ratio": best["img_s"] / GOAL_IMG_S,
            "eager_img_s": eager["img_s"] if eager else None,
            "eager_ratio": eager["img_s"] / GOAL_IMG_S if eager else None,
            "h100_class_device": bool((secs.get("env") or {}).get("h100_class")),
        }
    return out


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.{digits}g}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, (dict, list)):
        s = json.dumps(v)
        return s if len(s) < 120 else s[:117] + "..."
    return str(v)


def render_markdown(results: dict) -> str:
    secs, summ = results["sections"], results.get("summary") or {}
    env = secs.get("env") or {}
    L = ["## GPU check (benchmarks/gpu.py)", ""]
    L.append(f"- Command: `{results['command']}`; device {results['device']}"
             + (" (**tiny CPU mode**: sizes are not the real ones)" if results["tiny"] else ""))
    if env.get("status") == "ok":
        peak = env.get("peak_bf16_tflops_datasheet")
        L.append(f"- {env.get('device_name')}, torch {env.get('torch')}, CUDA {env.get('cuda_build')}, "
                 f"bf16 matmul {env.get('measured_bf16_matmul_tflops', 0):.1f} TFLOP/s measured"
                 + (f", {peak} datasheet (dense)" if peak else ""))
    m = results["machine"]
    L.append(f"- Date {m['date']}; wall {results.get('wall_s', 0):.0f} s of a {results['budget_s']:.0f} s budget; "
             f"presets {', '.join(results['presets'])} at {results['resolution']} px, micro-batch {results['micro_batch']}")
    goal = summ.get("goal")
    if goal:
        L.append(f"- **Goal** (b, 128 px training step, bf16, >= {GOAL_IMG_S:.0f} img/s on one H100-class GPU): best "
                 f"{goal['best_img_s']:.1f} img/s ({goal['best_variant']}) = **{goal['best_ratio']:.2f}x** the goal; eager "
                 + (f"{goal['eager_img_s']:.1f} img/s = {goal['eager_ratio']:.2f}x" if goal["eager_img_s"] else "-")
                 + ("" if goal["h100_class_device"] else " (this device is not H100-class)"))
    L.append(f"- Checks: {summ.get('checks_passed', 0)} passed, {len(summ.get('checks_failed', []))} failed, "
             f"{summ.get('checks_not_applicable', 0)} not applicable; sections failed: "
             f"{', '.join(summ.get('sections_failed', [])) or 'none'}; skipped: {', '.join(summ.get('sections_skipped', [])) or 'none'}"
             + (f"; **unfinished** (the process was stopped in it): {', '.join(summ['sections_unfinished'])}"
                if summ.get("sections_unfinished") else ""))
    L += ["", "### Sections", "", "| section | status | s | note |", "|---|---|---|---|"]
    for k, s in secs.items():
        note = s.get("error") or s.get("note") or ""
        L.append(f"| {k} | {s.get('status')} | {_fmt(s.get('seconds'))} | {note[:200]} |")
    L += ["", "### Checks", "", "| section | check | result | value | limit |", "|---|---|---|---|---|"]
    for c in results["checks"]:
        res = {True: "pass", False: "**FAIL**", None: "n/a"}[c["passed"]]
        val = c["note"] if c["passed"] is None else _fmt(c["value"])
        L.append(f"| {c['section']} | {c['check']} | {res} | {val} | {c['limit'] or ''} |")
    L += ["", "### Speed", "",
          "| what | preset | variant | img/s | x goal | peak GiB | GFLOP/img | TFLOP/s | MFU (datasheet) | MFU (matmul) |",
          "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for k, s in secs.items():
        what = k.split(":")[0]
        if what not in ("speed_gen", "speed_train", "speed_compile", "fid"):
            continue
        for r in s.get("rows", []):
            preset = k.split(":")[1] if ":" in k else "-"
            variant = r.get("variant") or r.get("mode")
            if "img_s" not in r:
                L.append(f"| {what} | {preset} | {variant} | {(r.get('error') or r.get('status') or '')[:160]} | | | | | | |")
                continue
            fl = r.get("flops_per_img")
            L.append(f"| {what} | {preset} | {variant} | {r['img_s']:.1f} | {_fmt(r.get('goal_ratio'))} | {_fmt(r.get('peak_mem_gib'))} "
                     f"| {_fmt(fl / 1e9 if fl else None)} | {_fmt(r.get('achieved_tflops'))} | {_fmt(r.get('mfu_datasheet'))} "
                     f"| {_fmt(r.get('mfu_measured_matmul'))} |")
    sd = secs.get("sdpa") or {}
    if sd.get("rows"):
        names = [b for b in ("flash", "efficient", "cudnn") if b in sd["rows"][0]]
        L += ["", "### SDPA backends (training, trainable bias)", "",
              "| layer | dtype | default (profiler) | " + " | ".join(f"forced {b}" for b in names) + " |",
              "|---|---|---|" + "---|" * len(names)]  # fmt: skip
        for r in sd["rows"]:
            L.append(f"| {r['layer']} | {r['dtype']} | {', '.join(r['default'])} | "
                     + " | ".join(r[b][:80] for b in names) + " |")
        gen = sd.get("generator_bf16_fwd_bwd", {})
        L.append(f"\nWhole generator, fwd+bwd, bf16: SDPA calls {json.dumps(gen.get('sdpa_ops', {}))}; "
                 f"attention GPU kernels: {', '.join(gen.get('gpu_kernels', [])) or '-'}")
    return "\n".join(L) + "\n"


GPU_BLOCK_BEGIN = "<!-- BEGIN benchmarks/gpu.py (generated: edit gpu.py, not this block) -->"
GPU_BLOCK_END = "<!-- END benchmarks/gpu.py -->"


def write_results_block(md: str, path: Path = RESULTS_MD) -> None:
    """Replace the GPU block of RESULTS.md (between the markers) with ``md``."""
    text = path.read_text()
    i, j = text.find(GPU_BLOCK_BEGIN), text.find(GPU_BLOCK_END)
    if i < 0 or j < 0:
        raise SystemExit(f"gpu.py: the markers of the GPU block are missing from {path}")
    path.write_text(text[: i + len(GPU_BLOCK_BEGIN)] + "\n\n" + md + "\n" + text[j:])


# --------------------------------------------------------------------------- main


def record(json_path: Path, results_dir: Path = RESULTS_DIR, results_md: Path = RESULTS_MD) -> str:
    """Record a GPU machine's gpu.json here: results/gpu.json and RESULTS.md's GPU block (as --write
    does on the GPU machine itself). ValueError for CPU and --tiny runs. Returns the block's markdown."""
    try:
        results = json.loads(Path(json_path).read_text())
        device, tiny = results["device"], results["tiny"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a gpu.py result JSON ({first_line(e)})") from None
    if tiny or not str(device).startswith("cuda"):
        raise ValueError(f"a {'--tiny ' if tiny else ''}run on {device}; --record takes GPU runs only")
    results["summary"] = summary(results)  # older JSONs: the summary as this version reads it
    md = render_markdown(results)
    write_results_block(md, results_md)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "gpu.json").write_text(json.dumps(results, indent=1))
    return md


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cuda (default; pick the GPU with CUDA_VISIBLE_DEVICES) or cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (tiny preset, 32 px, batch 4): the CPU check")
    ap.add_argument("--presets", default=None, help="comma list (default: b and hit_b where it exists; --tiny: tiny)")
    ap.add_argument("--resolution", type=int, default=None, help="default 128 (--tiny: 32)")
    ap.add_argument("--micro-batch", type=int, default=None, help="training micro-batch (default 32; --tiny: 4)")
    ap.add_argument("--budget-s", type=float, default=None, help="time budget in seconds (default 450; --tiny: 300)")
    ap.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; --tiny: aot_eager)")
    ap.add_argument("--only", default=None, help="comma list of sections: env,models,maxsa,sdpa,trainer,speed_gen,"
                    "speed_train,fid,speed_compile (env always runs)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 on --device cpu)")
    ap.add_argument("--json", default=str(OUT_DIR / "gpu.json"), help="result JSON (a .md copy is written next to it)")
    ap.add_argument("--record", default=None, metavar="GPU_JSON",
                    help="no run: record a gpu.json brought back from a GPU machine (results/gpu.json, RESULTS.md block)")
    ap.add_argument("--write", action="store_true",
                    help="also write benchmarks/results/gpu.json and the GPU block of benchmarks/RESULTS.md (GPU runs only)")
    args = ap.parse_args(argv)

    def refuse(msg: str) -> int:
        print(f"gpu.py: {msg}", file=sys.stderr)
        return 2

    if args.record:
        try:
            record(Path(args.record))
        except ValueError as e:
            return refuse(f"--record {args.record}: {e}")
        print(f"recorded {args.record} in {RESULTS_DIR / 'gpu.json'} and the GPU block of {RESULTS_MD}")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        return refuse(f"--device {args.device} but CUDA is not available (torch {torch.__version__}, CUDA build "
                      f"{torch.version.cuda}); run 'python benchmarks/gpu.py --device cpu --tiny' for the CPU check")  # fmt: skip
    if args.write and (args.tiny or args.device != "cuda"):
        return refuse("--write records GPU results only: drop --write, or run on a GPU without --tiny")
    from maxvit_gan.models import PRESETS

    if args.presets and any(p not in PRESETS for p in args.presets.split(",")):
        return refuse(f"--presets {args.presets}: unknown preset; available: {', '.join(sorted(PRESETS))}")
    if args.threads or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)

    plan = make_plan(args)
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    run = Run(plan, Path(args.json), command.strip())
    cuda = plan.device.type == "cuda"
    only = set(args.only.split(",")) if args.only else None

    def want(name):
        return only is None or name in only

    # (name, function, estimated seconds on the GPU / on the CPU with --tiny, args), cheap and critical first
    sections = [("env", sec_env, (10, 5), ())]
    sections += [(f"models:{p}", sec_models, (30, 10), (p,)) for p in plan.presets if want("models")]
    sections += [("maxsa", sec_maxsa, (20, 10), ())] if want("maxsa") else []
    sections += [("sdpa", sec_sdpa, (20, 10), ())] if want("sdpa") else []
    sections += [("trainer", sec_trainer, (60, 15), ())] if want("trainer") else []
    sections += [(f"speed_gen:{p}", sec_speed_gen, (20, 5), (p,)) for p in plan.presets if want("speed_gen")]
    sections += [(f"speed_train:{p}", sec_speed_train, (45, 15), (p,)) for p in plan.presets if want("speed_train")]
    sections += [("fid", sec_fid, (30, 10), ())] if want("fid") else []
    sections += [(f"speed_compile:{p}", sec_speed_compile, (120, 10), (p,)) for p in plan.presets if want("speed_compile")]
    print(f"GPU check on {plan.device} ({'tiny' if plan.tiny else 'full'} sizes), budget {plan.budget_s:.0f} s: "
          f"{', '.join(s[0] for s in sections)}", flush=True)
    for name, fn, est, fargs in sections:
        run.section(name, fn, est[0] if cuda or not plan.tiny else est[1], *fargs)
    run.save()
    md = render_markdown(run.results)
    print("\n" + md)
    print(f"wrote {run.json_path} and {run.md_path}")
    if args.write:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        (RESULTS_DIR / "gpu.json").write_text(run.json_path.read_text())
        write_results_block(md)
        print(f"wrote {RESULTS_DIR / 'gpu.json'} and the GPU block of {RESULTS_MD}")
    shutil.rmtree(run.tmp, ignore_errors=True)  # checkpoints and Inception weights of this run
    summ = run.results["summary"]
    return 1 if summ["checks_failed"] or summ["sections_failed"] else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # no interpreter teardown: a compile stopped by the time budget can leave torch.compile's worker
    # processes busy, and waiting for them at exit cost ~1 minute in a CPU test
    os._exit(code)
