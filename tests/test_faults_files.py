"""Fault injection, subject: generator files, untrusted input to sampling and evaluation. What
belongs here: a config.json or .safetensors metadata that asks for a huge model, truncated or
damaged weights, weights that do not fit their config, a seed range too large to hold in memory.
Every failure is one line, fast, and allocates nothing big. (Training data: test_faults_data.py;
training checkpoints: test_faults_checkpoints.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fault_utils import deadline
from train_utils import run_script

from maxvit_gan.config import SampleConfig
from maxvit_gan.loading import load_generator
from maxvit_gan.models import Generator, GeneratorConfig, save_generator
from maxvit_gan.sampling import run_sample
from maxvit_gan.sampling.parse import MAX_SEEDS, parse_seeds


@pytest.fixture(scope="module")
def G():
    cfg = GeneratorConfig(
        resolution=16, z_dim=16, num_classes=0, channels=[32, 16], depths=[1, 1], window_sizes=[4, 4],
        grid_sizes=[2, 4], head_dim=16, num_latent_tokens=4, mlp_ratio=2.0, mbconv_expand=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return Generator(cfg).eval().requires_grad_(False)


@pytest.fixture
def exported(tmp_path, G):
    return G.save_pretrained(tmp_path / "export")


def _edit_config(folder: Path, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["generator_config"].update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "changes,named",
    [
        ({"num_classes": 10**9}, r"num_classes=1000000000 is larger than any tensor dimension in the weights"),
        ({"channels": [2**20, 2**20]}, r"channels\[0\]=1048576 is larger than any tensor dimension"),
        ({"z_dim": 2**31}, r"z_dim=2147483648 is larger than any tensor dimension"),
        ({"depths": [10**6, 10**6]}, r"depths=\[1000000, 1000000\] ask for more blocks than the weights hold tensors"),
        ({"channels": list(range(8, 8000))}, r"channels=.*not a list of at most 16 stages"),
        ({"mlp_ratio": 1e9}, r"mlp_ratio=1000000000.0: not in \(0, 64\]"),
        ({"z_dim": 32}, r"the weights do not fit their generator config .*tensors differ"),
        ({"depths": "many"}, r"not a list of at most 16 stages|not a non-negative integer|invalid generator config"),
    ],
)
def test_a_config_json_asking_for_a_huge_model_fails_fast_without_allocating(exported, changes, named):
    _edit_config(exported, **changes)
    with deadline(20), pytest.raises(ValueError, match=named) as err:
        Generator.from_pretrained(exported)
    assert "\n" not in str(err.value) and str(exported) in str(err.value)


def test_a_self_describing_file_with_a_forged_config_is_refused(tmp_path, G):
    path = tmp_path / "g.safetensors"
    save_generator(G, path)
    from safetensors.torch import load_file, save_file

    cfg = dict(G.config.to_dict(), num_classes=10**9)
    save_file(load_file(str(path)), str(path), metadata={"generator_config": json.dumps(cfg)})
    with deadline(20), pytest.raises(ValueError, match="num_classes=1000000000"):
        load_generator(path)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.97])
def test_a_truncated_generator_file_is_one_line(tmp_path, G, keep):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "generator_ema.safetensors"
    save_generator(G, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"not a readable safetensors file \(truncated or damaged\?\)") as err:
        run_sample(SampleConfig(run=str(run), seeds="0-3", out=str(tmp_path / "g.png")))
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_sample_script_on_a_truncated_file_prints_one_error_line(tmp_path, G, monkeypatch, capsys):
    path = tmp_path / "g.safetensors"
    save_generator(G, path)
    path.write_bytes(path.read_bytes()[:1000])
    monkeypatch.chdir(tmp_path)
    code, _, err = run_script(capsys, "sample.py", f"run={path}", "seeds=0-3", f"out={tmp_path / 'o.png'}")
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"{path}: not a readable safetensors file" in errors[0], err


def test_weights_only_checkpoint_that_is_truncated_is_one_line(tmp_path, G):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000000001").mkdir(parents=True)
    save_generator(G, run / "generator_ema.safetensors")
    (run / "checkpoints" / "step-000000001" / "ema.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_generator(run, checkpoint="latest")


@pytest.mark.parametrize("spec", ["0-100000000", f"0-{MAX_SEEDS}", "0,1,2-100000000", "5-1000000000000"])
def test_too_many_seeds_is_a_clear_error_before_any_list_is_built(spec):
    with deadline(5), pytest.raises(ValueError, match=rf"seeds: .*at most {MAX_SEEDS} per call"):
        parse_seeds(spec)
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS


def test_a_long_explicit_seed_list_is_capped_too():
    with pytest.raises(ValueError, match=rf"at most {MAX_SEEDS} per call"):
        parse_seeds(list(range(MAX_SEEDS + 1)))
