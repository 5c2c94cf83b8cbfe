"""benchmarks/quality_real.py: the driver's scorer, summary and report on tiny runs of the product
on a zip the test writes (never the Debian packages). Its numbers live in benchmarks/RESULTS.md."""

import importlib.util
import sys

import pytest
from PIL import Image
from train_utils import ROOT, fresh_trainer, run_config

from maxvit_gan.data.prepare import prepare_dataset

BENCH = ROOT / "benchmarks" / "quality_real.py"


@pytest.fixture()
def qr(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("quality_real_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod.real_datasets, "OUT", tmp_path / "real")
    monkeypatch.setattr(mod, "OUT", tmp_path / "out")
    monkeypatch.setattr(mod, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(mod, "SPEED_FILE", tmp_path / "results" / "speed.json")
    (tmp_path / "out").mkdir()
    src = tmp_path / "icons_src"
    src.mkdir()
    for i in range(32):  # a flat folder: an unconditional dataset, like the icons
        Image.new("RGB", (32, 32), (8 * i, 255 - 8 * i, 128)).save(src / f"{i:02d}.png")
    prepare_dataset(str(src), str(tmp_path / "real" / "icons32.zip"), 32, workers=0, progress=False)
    return mod


def test_runs_are_the_product_with_the_automatic_recipe(qr):
    over = qr.run_overrides("icons", "conv", 2, 32, 1)
    assert over[:2] == ["data=zip", f"data.path={qr.zip_path('icons')}"] and "seed=2" in over
    assert "model.generator.arch=conv" in over and not any(o.startswith(("experiment=", "recipe=")) for o in over)
    assert qr.DATA_KEYS["glyphs"] == ["data.xflip=false"]


@pytest.mark.slow
def test_scores_summary_and_report_from_product_runs(qr, monkeypatch):
    for arch in ("maxvit", "conv"):
        over = qr.run_overrides("icons", arch, 0, 0.032, 1)[2:]  # the zip is given below; run_config: the smoke settings
        cfg = run_config(qr.run_dir("icons", arch, 0), "data=zip", f"data.path={qr.zip_path('icons')}",
                         *[o for o in over if not o.startswith(("train.kimg", "train.checkpoint_kimg"))],
                         "train.kimg=0.032", "train.checkpoint_kimg=0.016")  # fmt: skip
        fresh_trainer(cfg).train()
    scorer = qr.Scorer("icons")
    assert scorer.n == 16 and scorer.judge is None  # half the 32 images; no judge for icons
    points = {f"icons-{a}-s0": qr.score_run(qr.run_dir("icons", a, 0), scorer, 0.032) for a in ("maxvit", "conv")}
    p = points["icons-maxvit-s0"]
    assert [q["kimg"] for q in p] == [0.016, 0.032] and all(q["swd"] > 0 and q["swd_floor"] > 0 for q in p)
    assert p[-1]["swd_ratio"] == pytest.approx(p[-1]["swd"] / p[-1]["swd_floor"])
    last = qr.latest_checkpoint(qr.RunDir(qr.run_dir("icons", "maxvit", 0)).checkpoints_dir)
    assert scorer.cached(qr.run_dir("icons", "maxvit", 0), last)["swd"] == p[-1]["swd"]  # from the cache
    res = qr.summarise(points, 0.032, speed={"icons-maxvit": 10.0, "icons-conv": 20.0})
    g = res["groups"]["icons-maxvit"]
    assert g["wall_clock"]["kimg"] == pytest.approx(0.016)  # half conv's speed: read at half the length
    assert g["at_kimg"]["swd"][0] == pytest.approx(p[-1]["swd"])
    table = qr.render([res])
    assert "| icons | maxvit | 1 | 10.0 |" in table and qr.BEGIN in table and qr.END in table
    # summaries are kept in results/ and merged: a later invocation replaces only its own groups
    qr.merge_summary(res)
    later = qr.summarise({"icons-conv-s0": points["icons-conv-s0"]}, 0.032, speed=None)
    later["groups"]["icons-conv"]["seeds"] = [7]
    merged = qr.merge_summary(later)
    assert list(merged["groups"]) == ["icons-conv", "icons-maxvit"] and merged["groups"]["icons-conv"]["seeds"] == [7]
    assert merged["groups"]["icons-maxvit"] == qr.json.loads(qr.json.dumps({**g, "speed_side_by_side": True}))
    assert qr.json.loads(qr.summary_file(0.032).read_text()) == merged
    table = qr.render([merged])  # one group's img/s is its runs' own: marked
    assert "| icons | conv | 1 | " in table and "* |" in table.split("| icons | conv |")[1].split("\n")[0]
    # an ablation that branches off conv starts from conv's checkpoint at the branch point
    calls = []
    monkeypatch.setattr(qr.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or qr.subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setitem(qr.BRANCHES, "conv_lrdown", ("conv", 0.016))
    qr.train("icons", "conv_lrdown", 0, 0.032, 1)
    start = qr.list_checkpoints(qr.RunDir(qr.run_dir("icons", "conv", 0)).checkpoints_dir)[0]
    assert f"resume={start}" in calls[0] and "optim.lr_rampdown_kimg=32" in calls[0]
    with pytest.raises(RuntimeError, match="icons-conv_lrdown-s1 starts from icons-conv-s1 at 0.016 kimg"):
        qr.train("icons", "conv_lrdown", 1, 0.032, 1)


def test_grid_of_a_budget_is_the_newest_at_or_before_it(qr):
    """A run continued from 32 to 64 kimg keeps its 32-kimg grid; the 32-kimg report shows that one."""
    run = qr.run_dir("icons", "maxvit", 0)
    samples = qr.RunDir(run).samples_dir
    samples.mkdir(parents=True)
    for k in (4, 28, 32, 36, 64):
        Image.new("RGB", (8, 8), (k, k, k)).save(qr.RunDir(run).fakes_grid(k))
    assert qr.grid_at(run, 32) == qr.RunDir(run).fakes_grid(32)
    assert qr.grid_at(run, 34) == qr.RunDir(run).fakes_grid(32)
    assert qr.grid_at(run, 128) == qr.RunDir(run).fakes_grid(64)
    assert qr.grid_at(run, 2) is None
    out = qr.OUT / "g.png"
    qr.grids([run.name], out, "icons", 32)
    assert Image.open(out).getpixel((4, 30)) == (32, 32, 32)  # the 32-kimg tile, under its label


@pytest.mark.slow
def test_best_checkpoint_picks_on_the_tracked_draw_and_scores_on_others(qr, tmp_path):
    """benchmarks/best_checkpoint.py: the pick is the lowest tracked SWD; pick and last are scored on other draws."""
    spec = importlib.util.spec_from_file_location("best_checkpoint_under_test", ROOT / "benchmarks" / "best_checkpoint.py")
    bc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bc)
    run = qr.run_dir("icons", "conv", 0)
    over = qr.run_overrides("icons", "conv", 0, 0.048, 1)[2:]
    cfg = run_config(run, "data=zip", f"data.path={qr.zip_path('icons')}",
                     *[o for o in over if not o.startswith(("train.kimg", "train.checkpoint_kimg"))],
                     "train.kimg=0.048", "train.checkpoint_kimg=0.016")  # fmt: skip
    fresh_trainer(cfg).train()
    reals = qr.ZipDataset(str(qr.zip_path("icons")), resolution=None)
    cache, saved = {}, []
    entry = bc.pick_and_score(run, reals, 0.048, 0.016, 2, cache, track_samples=16, save=saved.append)
    assert list(entry["tracked"]) == ["0.016", "0.032", "0.048"] and len(cache) == 3 and saved
    assert entry["tracked"][f"{entry['best_kimg']:g}"] == min(entry["tracked"].values())
    assert len(entry["best_draws"]) == len(entry["last_draws"]) == 2
    assert entry["best"] == pytest.approx(sum(entry["best_draws"]) / 2) and all(v > 0 for v in entry["last_draws"])
    assert entry["last_draws"][0] != entry["last_draws"][1]  # two draws, two numbers
    again = bc.pick_and_score(run, reals, 0.048, 0.016, 2, cache, track_samples=16, save=saved.append)
    assert again == entry and len(saved) == 3  # tracked values from the cache; the draws repeat exactly
    with pytest.raises(SystemExit, match="no checkpoint at 0.064 kimg"):
        bc.pick_and_score(run, reals, 0.064, 0.016, 2, cache, track_samples=16)


def test_an_unknown_dataset_or_kind_is_named_before_anything_runs(qr, tmp_path):
    with pytest.raises(SystemExit, match=r"--archs: unknown convv \(known: maxvit, conv"):
        qr.main(["--datasets", "icons", "--archs", "convv"])
    with pytest.raises(SystemExit, match="--datasets: unknown stamps128"):
        qr.main(["--datasets", "stamps128", "--archs", "conv", "--no-train"])
    assert not (tmp_path / "runs").exists()  # nothing trained
    # the 64-px stamps are known by name but not in the default set; the recipe-as-is kinds pin nothing
    assert "stamps64" in qr.DATASETS_BY_NAME and "stamps64" not in qr.DATASETS
    assert qr.ARCHS["maxvit_auto"] == [] and qr.ARCHS["conv_auto"] == ["model.generator.arch=conv"]
