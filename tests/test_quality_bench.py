"""benchmarks/quality_shapes.py: its scorer and report run on real (tiny) runs of the product's
trainer. Quality numbers themselves live in benchmarks/RESULTS.md, never in tests."""

import ast
import importlib.util
import sys

import pytest
import torch
from train_utils import ROOT, fresh_trainer, run_config

BENCH = ROOT / "benchmarks" / "quality_shapes.py"


@pytest.fixture()
def qs(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("quality_shapes_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path / "out")
    monkeypatch.setattr(mod, "RUNS", tmp_path / "runs")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "shapes32_classifier.json").write_text('{"heldout_accuracy": 0.5}')
    torch.manual_seed(0)
    monkeypatch.setattr(mod, "classifier", lambda: mod.ShapesClassifier().eval())  # untrained: fast
    return mod


def test_benchmark_has_no_training_loop_or_distance_of_its_own():
    tree = ast.parse(BENCH.read_text())
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"maxvit_gan.metrics", "maxvit_gan.rundir"} <= imported
    assert "scripts/train_gan.py" in BENCH.read_text()
    # the only optimisation loop is the one that trains the scorer's classifier
    funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name, fn in funcs.items():
        inner = {c.func.attr for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)}
        if name != "classifier":
            assert "backward" not in inner and "step" not in inner, name
    assert "frechet_distance" not in funcs and "backward" in calls


def test_dark_share_counts_dark_borders_only(qs):
    x = torch.ones(4, 3, 32, 32)  # white images
    x[:2, :, :, :] = -1  # two black ones
    x[2, :, 8:24, 8:24] = -1  # a white one with a black centre: not dark
    assert qs.dark_share(x) == 0.5


@pytest.mark.slow
def test_scores_and_report_from_product_runs(tmp_path, qs):
    for arch in ("maxvit", "conv"):
        cfg = run_config(qs.RUNS / f"{arch}-s0", "train.kimg=0.032", "train.checkpoint_kimg=0.016",
                         "train.grid_kimg=1", "train.keep_checkpoints=10", f"model.generator.arch={arch}")  # fmt: skip
        fresh_trainer(cfg).train()
    scorer = qs.Scorer(n=64)
    runs = {name: qs.score_run(qs.RUNS / name, scorer) for name in ("maxvit-s0", "conv-s0")}
    assert [p["kimg"] for p in runs["maxvit-s0"]] == [0.016, 0.032]
    # the EMA ablation scores the checkpoints' trained G (not its EMA) of the same runs
    raw = qs.score_run(qs.RUNS / "maxvit-s0", scorer, raw=True)
    assert [p["kimg"] for p in raw] == [0.016, 0.032] and raw[-1]["fid"] != runs["maxvit-s0"][-1]["fid"]
    # scores are cached by weights file: scoring again generates nothing
    scorer.__class__ = type("NoGenerate", (qs.Scorer,), {"__call__": lambda self, G, seed=0: pytest.fail("re-scored")})
    assert qs.score_run(qs.RUNS / "maxvit-s0", scorer) == runs["maxvit-s0"]
    # a longer run read at a shorter length: the checkpoints up to it only
    assert [p["kimg"] for p in qs.score_run(qs.RUNS / "conv-s0", scorer, upto_kimg=0.016)] == [0.016]
    p = runs["conv-s0"][-1]
    assert p["fid"] > 0 and 0 <= p["acc"] <= 1 and len(p["per_class"]) == 4 and p["checkerboard"] > 0 and 0 <= p["dark"] <= 1
    summary = qs.summarise(runs, 0.032)
    assert set(summary["archs"]) == {"maxvit", "conv"} and summary["archs"]["conv"]["seeds"] == [0]
    timed = qs.summarise(runs, 0.032, speed={"maxvit": 100.0, "conv": 200.0})  # conv twice as fast
    assert timed["budget_s"] == pytest.approx(0.16) and timed["archs"]["conv"]["budget"]["kimg"][0] == pytest.approx(0.032)
    assert timed["archs"]["maxvit"]["budget"]["kimg"][0] == pytest.approx(0.016)  # half the images in that time
    assert timed["archs"]["maxvit"]["budget"]["fid"][0] == pytest.approx(runs["maxvit-s0"][0]["fid"])
    # an ablation that changes only loss weights / lr / EMA does its kind's work per step: one speed for both
    assert [qs.cost_twin(a) for a in ("maxvit_noema", "maxvit_r01", "conv_cw06r01", "maxvit_cw06ema4")] == ["maxvit", "maxvit", "conv", "maxvit"]
    assert qs.cost_twin("maxvit_attn32") == "maxvit_attn32" and qs.cost_twin("maxvit_cw06r01mbstd16") == "maxvit_cw06r01mbstd16"
    both = qs.summarise({**runs, "maxvit_noema-s0": raw}, 0.032, speed={"maxvit": 100.0, "conv": 200.0})
    assert both["archs"]["maxvit_noema"]["img_per_s"][0] == 100.0
    res = {"command": "x", "date": "d", "machine": "m", "args": {"kimg": 0.032, "n": 64}, "real_vs_real": 1.0,
           "heldout_accuracy": 0.5, "params": {"maxvit": 1e6, "conv": 1e6}, "summary": summary, "notes": ""}  # fmt: skip
    block = qs.render(res)
    assert block.startswith(qs.BEGIN) and block.rstrip().endswith(qs.END)
    assert "| maxvit | 1.00M | 1 |" in block and "| conv | 0 |" in block
    with_ablation = qs.summarise({**runs, "maxvit_noema-s0": raw}, 0.032)
    block2 = qs.render({**res, "summary": with_ablation, "params": {**res["params"], "maxvit_noema": 1e6}})
    assert "| ablation |" in block2 and "| maxvit_noema | 1.00M | 1 |" in block2 and qs.WHAT["maxvit_noema"] in block2
    assert block2.index("| conv |") < block2.index("| ablation |") < block2.index("| maxvit_noema |")
    md = tmp_path / "RESULTS.md"
    md.write_text("# x\n\nkept\n")
    qs.write_md(block, md)
    qs.write_md(block, md)  # regenerated in place, not appended twice
    assert md.read_text().count(qs.BEGIN) == 1 and "kept" in md.read_text()
