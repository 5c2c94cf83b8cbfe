"""torch.compile (inductor, CPU) of a MaxViTBlock gives the eager outputs and gradients.

Needs a working C++ compiler for inductor's CPU backend; skips with the reason otherwise.
"""

import shutil

import pytest
import torch

from maxvit_gan.nn import MaxViTBlock


def _compile_or_skip(module):
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler (g++/c++ not found)")
    return torch.compile(module)


def _run(fn, module, x, g):
    """fn(x) forward and backward; gradients of ``module``'s parameters (shared with fn)."""
    x = x.clone().requires_grad_()
    y = fn(x)
    y.backward(g)
    grads = {n: p.grad.clone() for n, p in module.named_parameters()}
    module.zero_grad(set_to_none=True)
    return y.detach(), x.grad, grads


@pytest.mark.slow
def test_compiled_block_equals_eager():
    torch.manual_seed(0)
    block = MaxViTBlock(64, 2, window_size=4, grid_size=4)
    with torch.no_grad():
        for p in block.parameters():  # zero-init projections would hide the MBConv path
            p.copy_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, 64, 8, 8)
    g = torch.randn(2, 64, 8, 8)
    y_e, gx_e, gp_e = _run(block, block, x, g)
    compiled = _compile_or_skip(block)
    try:
        y_c, gx_c, gp_c = _run(compiled, block, x, g)
    except Exception as e:  # inductor could not build its C++ kernels here
        if "CppCompileError" in type(e).__name__ or "InductorError" in type(e).__name__:
            pytest.skip(f"inductor cannot compile on this machine: {type(e).__name__}: {str(e)[:200]}")
        raise
    torch.testing.assert_close(y_c, y_e, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx_c, gx_e, atol=1e-5, rtol=1e-5)
    assert gp_c.keys() == gp_e.keys()
    for name in gp_e:
        torch.testing.assert_close(gp_c[name], gp_e[name], atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():  # inference graph too (fused SDPA route)
        torch.testing.assert_close(compiled(x), block(x), atol=1e-5, rtol=1e-5)


def test_train_compile_compiles_g_only(tmp_path, monkeypatch):
    """train.compile=true: a compiled D fails at the first R1 step (R1 differentiates D twice;
    compiled graphs have no double backward: benchmarks/gpu.py shows it), so the trainer
    compiles G only. torch.compile is recorded here, not run (inductor is minutes on this CPU)."""
    from train_utils import fresh_trainer, run_config

    compiled = []

    def record(module, **kw):
        compiled.append(type(module).__name__)
        return module

    monkeypatch.setattr(torch, "compile", record)
    cfg = run_config(tmp_path / "run", "train.compile=true", "train.kimg=0.016", "loss.r1_interval=1", "loss.r1_gamma=1",
                     "train.grid_kimg=1", "train.checkpoint_kimg=1")  # fmt: skip
    out = fresh_trainer(cfg).train()
    assert compiled == ["Generator"] and out["step"] == 2
