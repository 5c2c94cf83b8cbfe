"""FID in training and scripts/evaluate.py, end to end with the real Inception architecture
(random weights from a local file: no download)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maxvit_gan.metrics.stand_ins import save_random_inception_weights

ROOT = Path(__file__).resolve().parents[1]
TINY_RUN = ["experiment=smoke", "data.shapes_num_images=16", "train.kimg=0.032", "train.log_tensorboard=false"]


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
    assert result["num_samples"] == 8 and result["mode"] == "tf" and result["generator"]["step"] == "4"
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
