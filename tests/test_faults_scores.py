"""Fault injection, subject: scores during training (FID). What belongs here: what the first FID
evaluation needs (the file of metrics.fid.ref, the folder of metrics.cache_dir, the cached
reference statistics), checked when the trainer is built, before step 0, not hours in; and what
a damaged cache entry does. The feature network is metrics_helpers.TinyExtractor (16 features,
no download)."""

from __future__ import annotations

import numpy as np
import pytest
from fault_utils import truncate
from metrics_helpers import TinyExtractor, TinyImages
from train_utils import fresh_trainer, run_cli, run_config

from maxvit_gan.metrics import load_reference, reference_stats_for_dataset, save_reference
from maxvit_gan.training import scoring

FID = ["metrics.fid.every_kimg=0.016", "metrics.fid.num_samples=8", "metrics.fid.batch_size=8"]


@pytest.fixture
def features(tmp_path, monkeypatch):
    """The trainer's scorer builds TinyExtractor(dim=16); the list records each build. The
    default cache folder is under tmp_path."""
    built = []

    def build(mode, weights=None, device="cpu"):
        built.append(mode)
        return TinyExtractor(dim=16)

    monkeypatch.setattr(scoring, "build_feature_extractor", build)
    monkeypatch.setenv("MAXVIT_GAN_CACHE", str(tmp_path / "cache"))
    return built


def _bad_ref(tmp_path, kind):
    path = tmp_path / "ref.npz"
    if kind == "truncated":
        save_reference(path, np.zeros(16), np.eye(16))
        truncate(path)
    elif kind == "other features":
        save_reference(path, np.zeros(10), np.eye(10))
    return path  # "missing": never written


@pytest.mark.parametrize(
    "kind, error, message",
    [
        ("missing", FileNotFoundError, r"metrics.fid.ref: .*ref.npz does not exist"),
        ("truncated", ValueError, r"metrics.fid.ref: .*ref.npz: not a readable .npz file"),
        ("other features", ValueError, r"metrics.fid.ref: .*ref.npz have 10-d features; the tf network gives 16-d"),
    ],
)
def test_a_bad_reference_file_is_an_error_before_step_0(tmp_path, features, kind, error, message):
    cfg = run_config(tmp_path / "run", *FID, f"metrics.fid.ref={_bad_ref(tmp_path, kind)}")
    with pytest.raises(error, match=message):
        fresh_trainer(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_missing_reference_file_is_one_error_line_from_the_command(tmp_path, features, capsys):
    code, out, err = run_cli(capsys, "train", "experiment=smoke", "train.log_with=none", *FID,
                             f"metrics.fid.ref={tmp_path / 'nope.npz'}", f"run_dir={tmp_path / 'run'}")  # fmt: skip
    lines = [s for s in (out + err).splitlines() if s.strip()]
    assert code == 2 and lines == [f"ERROR: metrics.fid.ref: {tmp_path / 'nope.npz'} does not exist (a .npz of reference statistics)"]


def test_an_unwritable_cache_folder_is_an_error_before_any_work(tmp_path, features):
    (tmp_path / "a_file").write_text("")  # a folder below a file cannot be made, even by root
    cfg = run_config(tmp_path / "run", *FID, f"metrics.cache_dir={tmp_path / 'a_file' / 'refs'}")
    with pytest.raises(OSError, match=r"metrics.cache_dir: .*a_file/refs is not writable .*set metrics.cache_dir="):
        fresh_trainer(cfg)
    assert features == []  # before the feature network is even built


def test_the_reference_is_computed_and_cached_before_step_0(tmp_path, features):
    t = fresh_trainer(run_config(tmp_path / "run", *FID))
    t.lock.release()
    assert features == ["tf"] and t.state["step"] == 0
    assert t.scorer.reference is not None and t.scorer.reference.mu.shape == (16,)
    assert len(list((tmp_path / "cache" / "fid_refs").glob("ref-tiny-32px-n*.npz"))) == 1


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "NaN"])
def test_a_damaged_cached_reference_is_computed_again_with_a_warning(tmp_path, damage):
    data, cache = TinyImages(n=9), tmp_path / "refs"
    first = reference_stats_for_dataset(data, TinyExtractor(), cache_dir=cache, batch_size=4, progress=False)
    [path] = cache.glob("ref-*.npz")
    if damage == "truncated":
        truncate(path)
    elif damage == "not a zip":
        path.write_bytes(b"\0" * 100)
    else:
        save_reference(path, first.mu * np.nan, first.sigma, first.n, first.meta)
    with pytest.warns(UserWarning, match=rf"cached reference statistics {path} are damaged \(.*\); computing them again"):
        again = reference_stats_for_dataset(data, TinyExtractor(), cache_dir=cache, batch_size=4, progress=False)
    assert again.meta["cache"] == "miss" and np.array_equal(again.mu, first.mu)
    assert np.array_equal(load_reference(path).sigma, first.sigma)  # written whole again
    hit = reference_stats_for_dataset(data, TinyExtractor(), cache_dir=cache, batch_size=4, progress=False)
    assert hit.meta["cache"] == "hit"
