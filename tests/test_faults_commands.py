"""Fault injection, subject: the commands other than train (evaluate, prepare, sample, export).
What belongs here: what a user hits when pointing them at the wrong thing or stopping them:
evaluate's output path and reference checked before the work (and the scores printed whatever
happens to the JSON), prepare stopped by SIGTERM or asked for an absurd resolution, a damaged
``config_resolved.yaml``, a mistyped local run path (never looked up on the Hub), a push to the
Hub that fails, ``checkpoint=latest`` racing the trainer's pruning. Every failure is one line,
before the expensive part. (Generator files themselves: test_faults_files.py; training data:
test_faults_data.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from metrics_helpers import TinyExtractor
from PIL import Image
from safetensors.torch import load_file
from train_utils import copy_run, run_cli

from maxvit_gan import checkpoint as ckpt
from maxvit_gan import evaluation
from maxvit_gan.config import EvalMetricsConfig, EvaluateConfig
from maxvit_gan.data import prepare as prepare_mod
from maxvit_gan.data.prepare import prepare_dataset
from maxvit_gan.loading import load_generator
from maxvit_gan.metrics import save_reference
from maxvit_gan.models import Generator, GeneratorConfig, save_generator


def _images(folder: Path, n: int, seed: int = 0, size: int = 16) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    """A tiny unconditional 16-px generator, self-describing (evaluate run=FILE)."""
    cfg = GeneratorConfig(
        resolution=16, z_dim=16, num_classes=0, channels=[32, 16], depths=[1, 1], window_sizes=[4, 4],
        grid_sizes=[2, 4], head_dim=16, num_latent_tokens=4, mlp_ratio=2.0, mbconv_expand=2,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gen") / "g.safetensors"
    save_generator(Generator(cfg).eval(), path, {"step": 7})
    return path


@pytest.fixture
def generated(monkeypatch):
    """Counts the images evaluate generates (the expensive part a check must come before)."""
    calls = []
    real = evaluation.compute_generator_stats

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "compute_generator_stats", counting)
    return calls


def _evaluate(tmp: Path, **kw):
    kw.setdefault("num_samples", 8)
    kw.setdefault("batch_size", 8)
    cfg = EvaluateConfig(**kw, metrics=EvalMetricsConfig(cache_dir=str(tmp / "cache")))
    return evaluation.evaluate(cfg, "cpu", extractor=TinyExtractor())


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_checks_its_output_path_before_the_work(tmp_path, generator_file, generated):
    (tmp_path / "afile").write_text("not a folder")
    ref = _images(tmp_path / "ref", 8)
    with pytest.raises(OSError, match=r"^out: cannot write .*afile/r\.json"):
        _evaluate(tmp_path, run=str(generator_file), ref=str(ref), out=str(tmp_path / "afile" / "r.json"))
    (tmp_path / "adir.json").mkdir()
    with pytest.raises(OSError, match=r"^out: .*adir\.json is a directory"):
        _evaluate(tmp_path, run=str(generator_file), ref=str(ref), out=str(tmp_path / "adir.json"))
    with pytest.raises(OSError, match=r"^write_ref: cannot write .*afile/w\.npz"):
        _evaluate(tmp_path, run=str(generator_file), ref=str(ref), write_ref=str(tmp_path / "afile" / "w.npz"))
    assert generated == []


def test_evaluate_prints_the_scores_when_the_result_cannot_be_written(tmp_path, generator_file, monkeypatch, capsys):
    """The folder of out= is replaced by a file while the fakes are generated (a disk that fills
    up, a cleanup job): the scores are printed, then one error line, exit 2."""
    monkeypatch.setattr(evaluation, "build_feature_extractor", lambda mode, weights, device: TinyExtractor())
    ref, out = _images(tmp_path / "ref", 8), tmp_path / "results" / "r.json"
    real = evaluation.compute_generator_stats

    def then_break_the_folder(*args, **kwargs):
        stats = real(*args, **kwargs)
        shutil.rmtree(out.parent)
        out.parent.write_text("now a file")
        return stats

    monkeypatch.setattr(evaluation, "compute_generator_stats", then_break_the_folder)
    code, stdout, err = run_cli(capsys, "evaluate", f"run={generator_file}", f"ref={ref}", "num_samples=8", "batch_size=8",
                                f"out={out}", f"metrics.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert code == 2
    assert "fid8 " in stdout and "kid " in stdout
    errors = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1 and "r.json" in errors[0] and "Traceback" not in err, err


def _bad_reference(path: Path, kind: str) -> Path:
    d = TinyExtractor().dim
    if kind == "nan":
        save_reference(path, np.full(d, np.nan), np.full((d, d), np.nan), 100)
    else:  # statistics of another feature network
        save_reference(path, np.zeros(8), np.eye(8), 100)
    return path


@pytest.mark.parametrize("kind,named", [("nan", r"holds NaN or infinite values"), ("dim", r"8-d features; .* gives 48-d")])
def test_a_bad_reference_npz_is_refused_before_generating(tmp_path, generator_file, generated, kind, named):
    ref = _bad_reference(tmp_path / "ref.npz", kind)
    with pytest.raises(ValueError, match=rf"^ref=.*ref\.npz.*{named}"):
        _evaluate(tmp_path, run=str(generator_file), ref=str(ref), out=str(tmp_path / "r.json"))
    assert generated == [] and not (tmp_path / "r.json").exists()


def test_a_wrong_dimension_reference_is_refused_before_reading_a_fake_folder(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(evaluation, "compute_dataset_stats", lambda *a, **k: seen.append(a) or pytest.fail("read the fakes"))
    ref = _bad_reference(tmp_path / "ref.npz", "dim")
    with pytest.raises(ValueError, match=r"^ref=.*ref\.npz.*8-d features"):
        _evaluate(tmp_path, fake=str(_images(tmp_path / "fake", 4)), ref=str(ref), num_samples=None)
    assert seen == []


# ----------------------------------------------------------------------------- prepare


def _terminate_main_at(k: int):
    """A stand-in for prepare's per-image work that sends SIGTERM to the main process at image k
    (as `timeout` or SLURM would, mid-write), from whichever process does the work."""
    main = os.getpid()

    def work(task):
        if task[0].endswith(f"{k:03d}.png"):
            os.kill(main, signal.SIGTERM)
        return _real_process_image(task)

    return work


_real_process_image = prepare_mod._process_image
_STAND_IN = {}


def _process_image_stand_in(task):  # module level: picklable for the worker pool (fork copies _STAND_IN)
    return _STAND_IN["work"](task)


@pytest.mark.parametrize("workers", [0, 2])
def test_prepare_stopped_by_sigterm_leaves_no_partial_zip(tmp_path, monkeypatch, workers):
    source = _images(tmp_path / "src", 12)
    dest = tmp_path / "out" / "data.zip"
    _STAND_IN["work"] = _terminate_main_at(3)
    monkeypatch.setattr(prepare_mod, "_process_image", _process_image_stand_in)
    with pytest.raises(prepare_mod.PrepareStopped, match="SIGTERM"):
        prepare_dataset(str(source), str(dest), 16, workers=workers, progress=False)
    assert sorted(p.name for p in dest.parent.iterdir()) == []  # neither dest nor .data.zip.tmp-PID
    assert signal.getsignal(signal.SIGTERM) is not None and signal.getsignal(signal.SIGTERM) != prepare_mod._raise_stop


def test_prepare_command_stopped_by_sigterm_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    source = _images(tmp_path / "src", 6)
    _STAND_IN["work"] = _terminate_main_at(2)
    monkeypatch.setattr(prepare_mod, "_process_image", _process_image_stand_in)
    code, _, err = run_cli(capsys, "prepare", f"source={source}", f"dest={tmp_path / 'd.zip'}", "resolution=16", "workers=0")
    assert code == 128 + signal.SIGTERM
    assert err.strip().startswith("ERROR: prepare: stopped by SIGTERM") and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.glob("*d.zip*")) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_prepare_removes_what_a_killed_run_left_at_start(tmp_path):
    source = _images(tmp_path / "src", 4)
    out = tmp_path / "out"
    out.mkdir()
    dead, alive = _dead_pid(), os.getppid()
    stale = out / f".data.zip.tmp-{dead}"
    stale.write_bytes(b"x" * 1000)
    live = out / f".data.zip.tmp-{alive}"  # another prepare still writing it: not ours to remove
    live.write_bytes(b"y")
    other = out / f".other.zip.tmp-{dead}"  # another dest: named in the warning, left alone
    other.write_bytes(b"z")
    with pytest.warns(UserWarning, match=r"removed .*\.data\.zip\.tmp-\d+ .*left by a process that is gone") as caught:
        prepare_dataset(str(source), str(out / "data.zip"), 16, workers=0, progress=False)
    assert not stale.exists() and live.exists() and other.exists() and (out / "data.zip").is_file()
    assert any(".other.zip.tmp-" in str(w.message) for w in caught)


@pytest.mark.parametrize("resolution", [100000, 4097])
def test_prepare_refuses_an_absurd_resolution_before_any_work(tmp_path, monkeypatch, capsys, resolution):
    monkeypatch.setattr(prepare_mod, "scan_image_folder", lambda *a: pytest.fail("scanned the source"))
    source = _images(tmp_path / "src", 2)
    code, _, err = run_cli(capsys, "prepare", f"source={source}", f"dest={tmp_path / 'd.zip'}", f"resolution={resolution}")
    assert code == 2 and err.startswith(f"ERROR: resolution: at most {prepare_mod.MAX_RESOLUTION}, got {resolution}"), err
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.glob("*d.zip*")) == []


# ----------------------------------------------------------------------------- sample / export: a damaged config


@pytest.fixture
def run(tmp_path, four_step_run) -> Path:
    return copy_run(four_step_run.path, tmp_path / "run")


DAMAGES = {
    "binary": b"\x00\xff\xfe garbage \x00",
    "invalid_yaml": b"data: {name: shapes, resolution: [32\nmodel: ]\n",
    "not_a_mapping": b"- just\n- a list\n",
    "bad_interpolation": b"data:\n  name: ${nowhere.to.be.found}\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_sample_and_export_work_without_a_damaged_config(run, tmp_path, capsys, damage):
    (run / "config_resolved.yaml").write_bytes(DAMAGES[damage])
    with pytest.warns(UserWarning, match=r"config_resolved\.yaml is damaged .*class names unknown"):
        code, stdout, err = run_cli(capsys, "sample", f"run={run}", "seeds=0-3", f"out={tmp_path / 'g.png'}")
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size == (64, 64) and "row 0: class 0" in stdout
    with pytest.warns(UserWarning, match=r"config_resolved\.yaml is damaged .*no training_config\.yaml"):
        code, stdout, err = run_cli(capsys, "export", f"run={run}", f"out={tmp_path / 'exp'}", "seeds=0-3")
    assert code == 0, err
    assert (tmp_path / "exp" / "model.safetensors").is_file() and not (tmp_path / "exp" / "training_config.yaml").exists()


def test_evaluate_with_a_damaged_config_names_it_when_it_needs_it(run, tmp_path):
    (run / "config_resolved.yaml").write_bytes(DAMAGES["invalid_yaml"])
    with pytest.raises(ValueError, match=r"^ref=dataset: .*config_resolved\.yaml"):
        _evaluate(tmp_path, run=str(run), ref="dataset")


# ----------------------------------------------------------------------------- a mistyped local path, the Hub


@pytest.fixture
def no_hub(monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    asked = []

    def download(repo_id, filename, **kw):
        asked.append(repo_id)
        raise OSError("offline")

    monkeypatch.setattr(hub, "hf_hub_download", download)
    return asked


@pytest.mark.parametrize("value", ["outputs/my-run", "runs/shapes32", "multirun/x", "exports/shapes", "me/run.safetensors"])
def test_a_mistyped_local_run_path_is_not_looked_up_on_the_hub(tmp_path, monkeypatch, no_hub, value):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    with pytest.raises(FileNotFoundError, match=rf"^run: no such directory or file: {value} "):
        load_generator(value)
    assert no_hub == []


class _OfflineApi:
    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, **kw):
        class ConnectError(Exception):  # what huggingface_hub's HTTP client raises offline (not an OSError)
            pass

        raise ConnectError("[Errno 111] Connection refused\n" + "\n".join(f"  frame {i}" for i in range(70)))


def test_export_push_to_hub_offline_is_one_line(run, tmp_path, monkeypatch, capsys):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "HfApi", _OfflineApi)
    out = tmp_path / "exp"
    code, _, err = run_cli(capsys, "export", f"run={run}", f"out={out}", "push_to_hub=me/shapes", "seeds=0-3")
    assert code == 2, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("ERROR: push_to_hub: could not upload to me/shapes")
    assert "Connection refused" in err and str(out) in err and (out / "model.safetensors").is_file()


# ----------------------------------------------------------------------------- checkpoint=latest while training prunes


def _ema(path: Path) -> dict:
    return load_file(str(path / ckpt.EMA_FILE))


def test_latest_falls_back_when_the_newest_checkpoint_is_pruned_while_read(run, monkeypatch):
    step2, step4 = ckpt.list_checkpoints(run / "checkpoints")
    want = _ema(step2)
    real = ckpt.list_checkpoints

    def listed_then_pruned(root):
        found = real(root)
        if step4.exists():
            shutil.rmtree(step4)  # a newer checkpoint's pruning (or a crash) takes it between listing and reading
        return found

    monkeypatch.setattr(ckpt, "list_checkpoints", listed_then_pruned)
    G = load_generator(run, "latest")
    assert G.metadata["step"] == 2 and G.metadata["checkpoint"] == step2.name
    assert all(torch.equal(v, want[k]) for k, v in G.state_dict().items() if k in want)


def test_latest_with_keep_one_reads_the_checkpoint_that_replaced_the_pruned_one(run, monkeypatch):
    """keep_checkpoints=1: the list holds step-2 only; the trainer then renames step-4 into place
    and prunes step-2 before it is read: the list is read again and step-4 loaded."""
    step2, step4 = ckpt.list_checkpoints(run / "checkpoints")
    want = _ema(step4)
    hidden = step4.with_name(ckpt.partial_checkpoint_name(4, "tmp"))
    step4.rename(hidden)
    real = ckpt.list_checkpoints
    calls = []

    def trainer_moves_on(root):
        found = real(root)
        calls.append([p.name for p in found])
        if hidden.exists():
            hidden.rename(step4)
            shutil.rmtree(step2)
        return found

    monkeypatch.setattr(ckpt, "list_checkpoints", trainer_moves_on)
    G = load_generator(run, "latest")
    assert calls[0] == [step2.name] and G.metadata["step"] == 4
    assert all(torch.equal(v, want[k]) for k, v in G.state_dict().items() if k in want)


def test_latest_skips_a_newest_checkpoint_with_a_damaged_ema_file(run):
    step2, step4 = ckpt.list_checkpoints(run / "checkpoints")
    (step4 / ckpt.EMA_FILE).write_bytes((step4 / ckpt.EMA_FILE).read_bytes()[:100])
    with pytest.warns(UserWarning, match=rf"checkpoint=latest: skipping {step4.name}: .*ema\.safetensors"):
        G = load_generator(run, "latest")
    assert G.metadata["step"] == 2


def test_best_without_a_tracked_score_says_so_in_one_line(run):
    with pytest.raises(ValueError, match=r"checkpoint=best: .* has tracked no score .*use checkpoint=latest"):
        load_generator(run, "best")
    with pytest.raises(ValueError, match="'best' needs run=<run directory>"):
        load_generator(None, "best")
