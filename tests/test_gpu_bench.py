"""benchmarks/gpu.py (the one-command GPU check): its CPU mode runs every section end to end,
and it refuses cleanly where it cannot run. Subprocesses, as a user runs it."""

import json
import math
import subprocess
import sys

import pytest
import torch
from train_utils import ROOT, subprocess_env

SCRIPT = ROOT / "benchmarks" / "gpu.py"
SECTIONS = ["env", "models:tiny", "maxsa", "sdpa", "trainer", "speed_gen:tiny", "speed_train:tiny", "fid",
            "speed_compile:tiny"]  # fmt: skip


def _run(args, cwd, timeout):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=subprocess_env(), cwd=cwd,
                          timeout=timeout)  # fmt: skip


def _leaves(x, path="$"):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, x


@pytest.mark.slow
def test_cpu_mode_runs_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    p = _run(["--device", "cpu", "--tiny", "--json", str(out)], cwd=tmp_path, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    r = json.loads(out.read_text())

    assert list(r["sections"]) == SECTIONS
    for name, sec in r["sections"].items():
        assert sec["status"] == "ok", (name, sec.get("error"), sec.get("note"))
    checks = r["checks"]
    assert all(c["passed"] in (True, None) for c in checks), [c for c in checks if c["passed"] is False]
    passed = {c["section"] for c in checks if c["passed"] is True}
    assert passed >= {"models", "maxsa", "trainer", "speed_train", "fid", "speed_compile"}
    assert r["summary"]["checks_failed"] == [] and r["summary"]["sections_failed"] == []
    for path, v in _leaves(r):  # numbers finite (non-finite ones would be written as strings)
        assert not (isinstance(v, float) and not math.isfinite(v)), path
        assert v not in ("nan", "inf", "-inf"), path

    s = r["sections"]
    assert {c["case"] for c in s["maxsa"]["rows"]} and all(row["passed"] for row in s["maxsa"]["rows"])
    assert {row["mode"] for row in s["maxsa"]["rows"]} == {"float64", "fp32", "bf16"}
    assert s["sdpa"]["rows"] and all(row["default"] for row in s["sdpa"]["rows"])
    assert s["trainer"]["steps"] == 2 and s["trainer"]["mixed_precision"] == "bf16"
    assert all(math.isfinite(v) for vs in s["trainer"]["losses"].values() for v in vs)
    assert [row["variant"] for row in s["speed_gen:tiny"]["rows"]] == ["fp32", "bf16", "bf16 + channels_last"]
    train = s["speed_train:tiny"]
    assert [row["variant"] for row in train["rows"]] == ["eager", "channels_last", "lazy R1 (every 2)"]
    assert train["flops_per_img"]["step_with_r1"] > train["flops_per_img"]["step_without_r1"] > 0
    for row in train["rows"] + s["speed_gen:tiny"]["rows"] + s["fid"]["rows"]:
        assert row["img_s"] > 0 and row["peak_mem_gib"] > 0, row
    for row in train["rows"]:
        assert row["flops_per_img"] > 0 and row["achieved_tflops"] > 0 and row["mfu_measured_matmul"] > 0
    compiled = {row["variant"]: row for row in s["speed_compile:tiny"]["rows"]}
    assert compiled["train.compile=true (G compiled, D eager)"]["img_s"] > 0  # with R1: D must not be compiled

    md = out.with_suffix(".md").read_text()
    assert "## GPU check" in md and "| section | status |" in md and "### Speed" in md
    assert "| maxsa | ok |" in md


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize(
    "args, needle",
    [
        ([], "CUDA is not available"),  # the default device is cuda
        (["--device", "cuda"], "CUDA is not available"),
        (["--device", "cpu", "--tiny", "--write"], "--write records GPU results only"),
    ],
)
def test_refuses_in_one_line(tmp_path, args, needle):
    out = tmp_path / "gpu.json"
    p = _run([*args, "--json", str(out)], cwd=tmp_path, timeout=120)
    assert p.returncode == 2
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], lines
    assert not out.exists()


def test_bf16_peak_table_matches_device_names():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    names = {
        "NVIDIA H100 80GB HBM3": 989.4,  # SXM
        "NVIDIA H100 PCIe": 756.0,
        "NVIDIA H100 NVL": 835.5,
        "NVIDIA H200": 989.4,
        "NVIDIA GH200 480GB": 989.4,
        "NVIDIA A100-SXM4-80GB": 312.0,
        "NVIDIA A100 80GB PCIe": 312.0,
        "NVIDIA L40S": 362.1,
        "NVIDIA L4": 121.0,
        "NVIDIA A10": 125.0,
        "NVIDIA GeForce RTX 4090": 165.2,
        "NVIDIA A10G": None,  # not in the table: MFU against the measured matmul rate only
        "Tesla V100-SXM2-16GB": None,
    }
    assert {n: gpu.bf16_peak_tflops(n) for n in names} == names
    assert gpu.H100_CLASS.search("NVIDIA H200") and not gpu.H100_CLASS.search("NVIDIA A100-SXM4-80GB")


def _gpu_module():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return gpu


def test_a_section_reads_unfinished_on_disk_while_it_runs(tmp_path):
    """A run killed inside a section (a hard timeout, a lease ending) leaves a JSON that names it."""
    import types

    gpu = _gpu_module()
    args = types.SimpleNamespace(device="cpu", tiny=True, presets=None, resolution=None, micro_batch=None,
                                 budget_s=60, compile_backend=None)  # fmt: skip
    run = gpu.Run(gpu.make_plan(args), tmp_path / "gpu.json", "test")
    seen = {}

    def section(r):
        seen.update(json.loads(r.json_path.read_text()))
        return {"value": 1}

    run.section("probe", section, 0)
    assert seen["sections"]["probe"]["status"] == "unfinished"
    assert seen["summary"]["sections_unfinished"] == ["probe"]
    assert "**unfinished**" in gpu.render_markdown(seen)
    done = json.loads(run.json_path.read_text())
    assert done["sections"]["probe"]["status"] == "ok" and done["sections"]["probe"]["value"] == 1
    assert done["summary"]["sections_unfinished"] == []


def test_record_writes_a_gpu_json_and_its_block_and_refuses_cpu_runs(tmp_path):
    gpu = _gpu_module()
    results = {"command": "python benchmarks/gpu.py", "device": "cuda", "tiny": False, "presets": ["b"], "resolution": 128,
               "micro_batch": 32, "budget_s": 450.0, "machine": {"date": "2026-12-04"}, "checks": [],
               "sections": {"env": {"status": "ok", "device_name": "NVIDIA H200", "torch": "2.11.0", "cuda_build": "13.0",
                                    "measured_bf16_matmul_tflops": 715.3, "peak_bf16_tflops_datasheet": 989.4},
                            "speed_compile:b": {"status": "unfinished", "note": gpu.UNFINISHED}}}  # fmt: skip
    src = tmp_path / "device" / "gpu.json"
    src.parent.mkdir()
    src.write_text(json.dumps(results))
    md_path = tmp_path / "RESULTS.md"
    md_path.write_text(f"before\n{gpu.GPU_BLOCK_BEGIN}\nold block\n{gpu.GPU_BLOCK_END}\nafter\n")

    gpu.record(src, tmp_path / "results", md_path)
    text = md_path.read_text()
    assert text.startswith("before\n") and text.endswith(f"{gpu.GPU_BLOCK_END}\nafter\n") and "old block" not in text
    assert "NVIDIA H200" in text and "715.3 TFLOP/s" in text and "speed_compile:b" in text and "**unfinished**" in text
    kept = json.loads((tmp_path / "results" / "gpu.json").read_text())
    assert kept["sections"] == results["sections"] and kept["summary"]["sections_unfinished"] == ["speed_compile:b"]

    cpu = tmp_path / "cpu.json"
    cpu.write_text(json.dumps({**results, "device": "cpu", "tiny": True}))
    for bad, needle in ((cpu, "--record takes GPU runs only"), (tmp_path / "missing.json", "not a gpu.py result JSON")):
        with pytest.raises(ValueError, match=needle):
            gpu.record(bad, tmp_path / "results2", md_path)
    assert not (tmp_path / "results2").exists() and md_path.read_text() == text
    p = _run(["--record", str(cpu)], cwd=tmp_path, timeout=120)  # the command line: one line, exit 2
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "--record takes GPU runs only" in lines[0], lines
