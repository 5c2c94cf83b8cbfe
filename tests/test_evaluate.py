"""FID in training and scripts/evaluate.py, end to end with the real Inception architecture
(random weights from a local file: no download)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maxvit_gan import checkpoint
from maxvit_gan.metrics.stand_ins import save_random_inception_weights

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = ["experiment=smoke", "data.shapes_num_images=16", "train.kimg=0.032", "train.log_with=none"]


def _py(args, tmp_path, extra_env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), TORCH_HOME=str(tmp_path / "torch_home"),
               MAXVIT_GAN_CACHE=str(tmp_path / "cache"), **(extra_env or {}))  # fmt: skip
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_random_inception_weights(tmp_path_factory.mktemp("w") / "inception_tf_random.pth", "tf")


@pytest.mark.slow
def test_fid_tracking_in_training_then_evaluate(tmp_path, weights):
    run = tmp_path / "run"
    proc = _py(["scripts/train_gan.py", *TINY_RUN, f"hydra.run.dir={run}", "metrics.fid.every_kimg=0.016",
                "metrics.fid.num_samples=8", "metrics.fid.batch_size=8", f"metrics.inception_weights={weights}"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    fids = [r["fid8"] for r in rows if "fid8" in r]
    assert len(fids) == 2 and all(f > 0 for f in fids)
    state = json.loads(sorted((run / "checkpoints").glob("step-*/train_state.json"))[-1].read_text())
    assert state["best_fid"] == min(fids)
    assert (run / "checkpoints" / f"step-{state['best_step']:09d}").is_dir()  # best-FID checkpoint kept
    assert list((tmp_path / "cache" / "fid_refs").glob("ref-tf-32px-n16-*.npz"))  # reference cached

    out = tmp_path / "eval.json"
    proc = _py(["scripts/evaluate.py", f"run={run}", "num_samples=8", "batch_size=4", "ref=dataset",
                f"metrics.inception_weights={weights}", f"out={out}", f"write_ref={tmp_path / 'ref.npz'}"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["num_samples"] == 8 and result["mode"] == "tf" and result["generator"]["step"] == 4
    assert result["reference"]["kind"] == "dataset" and result["reference"]["n"] == 16
    assert result["fid8"] > 0
    assert "fid8" in proc.stdout
    # the saved reference file is accepted as ref=PATH and gives the same FID
    proc = _py(["scripts/evaluate.py", f"run={run}", "num_samples=8", "batch_size=8", f"ref={tmp_path / 'ref.npz'}",
                f"metrics.inception_weights={weights}", f"out={tmp_path / 'eval2.json'}"], tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "eval2.json").read_text())["fid8"] == pytest.approx(result["fid8"], rel=1e-9)


def test_training_without_inception_weights_warns_and_continues(tmp_path):
    run = tmp_path / "run"
    # no weights file, no cache, no network (a proxy that refuses): one warning, training goes on
    proc = _py(["scripts/train_gan.py", *TINY_RUN, "train.kimg=0.016", f"hydra.run.dir={run}",
                "metrics.fid.every_kimg=0.008", "metrics.fid.num_samples=8"], tmp_path,
               {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FID tracking is off" in proc.stderr and "metrics.inception_weights" in proc.stderr
    assert (run / "generator_ema.safetensors").is_file()


def test_evaluate_errors_name_the_problem(tmp_path, weights):
    proc = _py(["scripts/evaluate.py", f"run={tmp_path / 'nope'}", f"metrics.inception_weights={weights}"], tmp_path)
    assert proc.returncode != 0 and "generator_ema.safetensors" in proc.stderr


# --------------------------------------------------------------------------- in process, a small feature network

import numpy as np  # noqa: E402
import torch  # noqa: E402
from metrics_helpers import TinyExtractor  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from maxvit_gan.config import EvalMetricsConfig, EvaluateConfig  # noqa: E402
from maxvit_gan.evaluation import evaluate  # noqa: E402
from maxvit_gan.metrics import compute_dataset_stats, frechet_distance  # noqa: E402
from maxvit_gan.models import Generator, GeneratorConfig, save_generator  # noqa: E402


def _tiny_generator(num_classes=3, seed=1):
    cfg = GeneratorConfig(
        resolution=16, z_dim=16, num_classes=num_classes, channels=[32, 16], depths=[1, 1], window_sizes=[4, 4],
        grid_sizes=[2, 4], head_dim=16, num_latent_tokens=4, mlp_ratio=2.0, mbconv_expand=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    return Generator(cfg).eval().requires_grad_(False)


def _write_images(folder, n, seed, size=16):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture()
def sources(tmp_path):
    """One generator in every form a user may point evaluate at."""
    G = _tiny_generator()
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step-000000010"
    ckpt.mkdir(parents=True)
    save_generator(G, run / "generator_ema.safetensors", {"step": 12, "kimg": 0.2})
    other = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in G.state_dict().items()}
    save_file(other, str(ckpt / "ema.safetensors"))
    state = {"step": 10, "nimg": 160, "kimg": 0.16}
    (ckpt / "train_state.json").write_text(json.dumps({**state, "state_sha256": checkpoint._state_digest(state)}))
    G.save_pretrained(tmp_path / "export", metadata={"class_names": ["a", "b", "c"]})
    return {"run": run, "export": tmp_path / "export", "file": run / "generator_ema.safetensors",
            "ref": _write_images(tmp_path / "ref", 24, seed=0), "tmp": tmp_path}  # fmt: skip


def _eval(tmp, **kw):
    kw.setdefault("num_samples", 16)
    kw.setdefault("batch_size", 8)
    cfg = EvaluateConfig(**kw, metrics=EvalMetricsConfig(cache_dir=str(tmp / "cache")))
    return evaluate(cfg, "cpu", extractor=TinyExtractor())


def test_evaluate_takes_every_generator_source(sources, monkeypatch):
    tmp, ref = sources["tmp"], str(sources["ref"])
    monkeypatch.chdir(tmp)  # a Hub model's result goes to ./eval/
    by_run = _eval(tmp, run=str(sources["run"]), ref=ref)
    assert Path(by_run["json"]).parent == sources["run"] / "eval" and by_run["generator"]["step"] == 12
    assert {"fid16", "kid", "precision", "recall", "is"} <= by_run.keys()
    for source in (sources["file"], sources["export"]):
        res = _eval(tmp, run=str(source), ref=ref, out=str(tmp / "o.json"))
        assert res["fid16"] == pytest.approx(by_run["fid16"], rel=1e-9)
    latest = _eval(tmp, run=str(sources["run"]), checkpoint="latest", ref=ref)
    assert latest["generator"]["step"] == 10 and latest["fid16"] != pytest.approx(by_run["fid16"], rel=1e-6)
    for ck in ("checkpoints/step-000000010", str(sources["run"] / "checkpoints/step-000000010/ema.safetensors")):
        res = _eval(tmp, run=str(sources["run"]), checkpoint=ck, ref=ref, out=str(tmp / "o.json"))
        assert res["fid16"] == pytest.approx(latest["fid16"], rel=1e-9)
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "hf_hub_download", lambda repo_id, filename, **kw: str(sources["export"] / filename))
    res = _eval(tmp, run="someone/maxvit-gan-shapes", ref=ref)
    assert res["fid16"] == pytest.approx(by_run["fid16"], rel=1e-9)
    assert Path(res["json"]).parent.resolve() == (tmp / "eval").resolve() and "maxvit-gan-shapes" in Path(res["json"]).name


def test_evaluate_a_folder_of_images_against_another(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake, ref = _write_images(tmp_path / "fake", 20, seed=1), _write_images(tmp_path / "real", 24, seed=0)
    res = _eval(tmp_path, fake=str(fake), ref=str(ref), num_samples=None)
    assert res["num_samples"] == 20 and res["fake"]["resolution"] == 16 and "fid20" in res
    ext = TinyExtractor()  # the same number by hand
    from maxvit_gan.evaluation import images_dataset

    a = compute_dataset_stats(images_dataset(fake, None), ext, progress=False)
    b = compute_dataset_stats(images_dataset(ref, None), ext, progress=False)
    assert res["fid20"] == pytest.approx(frechet_distance(a.mu, a.sigma, b.mu, b.sigma), rel=1e-9)
    same = _eval(tmp_path, fake=str(ref), ref=str(ref), num_samples=None)
    assert same["fid24"] == pytest.approx(0, abs=1e-6) and same["precision"] == same["recall"] == 1.0
    # a zip of the same images scores the same; num_samples takes a fixed random subset
    import zipfile

    with zipfile.ZipFile(tmp_path / "fake.zip", "w") as zf:
        for p in sorted(fake.iterdir()):
            zf.write(p, p.name)
    assert _eval(tmp_path, fake=str(tmp_path / "fake.zip"), ref=str(ref), num_samples=None)["fid20"] == pytest.approx(res["fid20"], rel=1e-9)
    assert _eval(tmp_path, fake=str(fake), ref=str(ref), num_samples=12)["num_samples"] == 12
    # bigger images are center-cropped to resolution=
    big = _write_images(tmp_path / "big", 12, seed=2, size=40)
    assert _eval(tmp_path, fake=str(big), ref=str(ref), resolution=16, num_samples=None)["fake"]["resolution"] == 16


def test_evaluate_config_errors(tmp_path, sources):
    tmp, ref = sources["tmp"], str(sources["ref"])
    with pytest.raises(ValueError, match="^run= or fake=: give exactly one"):
        _eval(tmp, ref=ref)
    with pytest.raises(ValueError, match="^run= or fake=: give exactly one"):
        _eval(tmp, run=str(sources["run"]), fake=ref, ref=ref)
    with pytest.raises(ValueError, match="^ref=dataset: the training data is known only for a training run"):
        _eval(tmp, fake=ref, ref="dataset")
    with pytest.raises(ValueError, match="^mode: 'fast'"):
        _eval(tmp, run=str(sources["run"]), mode="fast")
    with pytest.raises(FileNotFoundError, match="^fake=.*nope: no such folder or zip"):
        _eval(tmp, fake=str(tmp / "nope"), ref=ref)
    with pytest.raises(FileNotFoundError, match="^ref=.*nope2: not 'dataset'"):
        _eval(tmp, run=str(sources["run"]), ref=str(tmp / "nope2"))
