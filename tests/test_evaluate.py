"""FID in training and scripts/evaluate.py, end to end, and evaluate's sources and errors. The
feature network is a small fixed stand-in in mode tf (the FeatureExtractor wrapper around a
random conv, 64 features: a Frechet distance at Inception's 2048 costs seconds on a CPU); the
network's own code path (loading a weights file, its features, the same numbers as torch-fidelity
and clean-fid) is tests/test_metrics.py's."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from metrics_helpers import TinyExtractor
from PIL import Image
from safetensors.torch import save_file
from train_utils import fresh_trainer, run_config, run_script

from maxvit_gan import checkpoint, evaluation
from maxvit_gan.config import EvalMetricsConfig, EvaluateConfig
from maxvit_gan.evaluation import evaluate
from maxvit_gan.metrics import compute_dataset_stats, frechet_distance
from maxvit_gan.metrics.features import FeatureExtractor
from maxvit_gan.models import Generator, GeneratorConfig, save_generator
from maxvit_gan.rundir import RunDir
from maxvit_gan.training import scoring

TINY_RUN = ["data.shapes_num_images=16", "train.kimg=0.032"]


class _TinyInception(torch.nn.Module):
    """Inception's interface in mode tf (uint8 [B,3,H,W] -> features [B,dim], logits [B,1008])
    from a fixed random conv: milliseconds instead of seconds per image on a CPU."""

    def __init__(self, dim):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(dim, 3, 3, 3, generator=g) * 0.3)
        self.head = torch.nn.Parameter(torch.randn(1008, dim, generator=g) * dim**-0.5)

    def forward(self, images):
        x = (images.float() - 128) / 128
        feats = F.adaptive_avg_pool2d(F.relu(F.conv2d(x, self.w, stride=2)), 1).flatten(1)
        return feats, feats @ self.head.T


class _SmallFeatures(FeatureExtractor):
    dim = 64


@pytest.fixture
def inception(tmp_path, monkeypatch):
    """metrics.inception_weights=<a file>: training's scorer and evaluate build the tf extractor
    from it; here the builder they call records its arguments and returns the stand-in."""
    weights = tmp_path / "inception_tf.pth"
    weights.write_bytes(b"stand-in")
    asked = []

    def build(mode, weights_path=None, device="cpu"):
        asked.append((mode, str(weights_path)))
        net = _TinyInception(_SmallFeatures.dim)
        return _SmallFeatures(mode, net, network_id=f"{mode}/tiny-stand-in/{Path(weights_path).name}").to(device)

    for module in (scoring, evaluation):
        monkeypatch.setattr(module, "build_feature_extractor", build)
    monkeypatch.setenv("MAXVIT_GAN_CACHE", str(tmp_path / "cache"))
    return weights, asked


@pytest.mark.slow
def test_fid_tracking_in_training_then_evaluate(tmp_path, inception, capsys):
    weights, asked = inception
    run = tmp_path / "run"
    cfg = run_config(run, *TINY_RUN, "metrics.fid.every_kimg=0.016", "metrics.fid.num_samples=8", "metrics.fid.batch_size=8",
                     f"metrics.inception_weights={weights}")  # fmt: skip
    fresh_trainer(cfg).train()
    RunDir(run).write_config(cfg)  # as `maxvit-gan train` does: evaluate's ref=dataset reads it
    assert asked == [("tf", str(weights))]  # built once, from the weights given
    rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    fids = [r["fid8"] for r in rows if "fid8" in r]
    assert len(fids) == 2 and all(f > 0 for f in fids)
    state = json.loads(sorted((run / "checkpoints").glob("step-*/train_state.json"))[-1].read_text())
    assert state["best_fid"] == min(fids)
    assert (run / "checkpoints" / f"step-{state['best_step']:09d}").is_dir()  # best-FID checkpoint kept
    assert list((tmp_path / "cache" / "fid_refs").glob("ref-tf-32px-n16-*.npz"))  # reference cached

    out = tmp_path / "eval.json"
    code, stdout, err = run_script(capsys, "evaluate.py", f"run={run}", "num_samples=8", "batch_size=4", "ref=dataset",
                                   f"metrics.inception_weights={weights}", f"out={out}", f"write_ref={tmp_path / 'ref.npz'}")  # fmt: skip
    assert code == 0, err[-3000:]
    result = json.loads(out.read_text())
    assert result["num_samples"] == 8 and result["mode"] == "tf" and result["generator"]["step"] == 4
    assert result["reference"]["kind"] == "dataset" and result["reference"]["n"] == 16
    assert result["fid8"] > 0
    assert "fid8" in stdout
    # the saved reference file is accepted as ref=PATH and gives the same FID
    code, _, err = run_script(capsys, "evaluate.py", f"run={run}", "num_samples=8", "batch_size=8", f"ref={tmp_path / 'ref.npz'}",
                              f"metrics.inception_weights={weights}", f"out={tmp_path / 'eval2.json'}")  # fmt: skip
    assert code == 0, err[-3000:]
    assert json.loads((tmp_path / "eval2.json").read_text())["fid8"] == pytest.approx(result["fid8"], rel=1e-9)
    assert asked[1:] == [("tf", str(weights))] * 2


def test_training_without_inception_weights_warns_and_continues(tmp_path, monkeypatch):
    run = tmp_path / "run"
    # no weights file, no cache, no network (a proxy that refuses): one warning, training goes on
    for name, value in (("TORCH_HOME", tmp_path / "torch_home"), ("MAXVIT_GAN_CACHE", tmp_path / "cache"),
                        ("https_proxy", "http://127.0.0.1:9"), ("HTTPS_PROXY", "http://127.0.0.1:9")):  # fmt: skip
        monkeypatch.setenv(name, str(value))
    cfg = run_config(run, *TINY_RUN, "train.kimg=0.016", "metrics.fid.every_kimg=0.008", "metrics.fid.num_samples=8")
    with pytest.warns(UserWarning, match="FID tracking is off") as caught:
        fresh_trainer(cfg).train()
    assert any("FID tracking is off" in str(w.message) and "metrics.inception_weights" in str(w.message) for w in caught)
    assert (run / "generator_ema.safetensors").is_file()


def test_evaluate_errors_name_the_problem(tmp_path, inception, capsys):
    weights, _ = inception
    code, _, err = run_script(capsys, "evaluate.py", f"run={tmp_path / 'nope'}", f"metrics.inception_weights={weights}")
    assert code != 0 and "generator_ema.safetensors" in err


# --------------------------------------------------------------------------- in process, a small feature network


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
