"""Fault injection, subject: the command line as typed. What belongs here: an override Hydra would
drop silently or misread (a `+`/`++` key that is not in the schema, a value its lexer cannot
read: `~`, non-ASCII characters), a run directory that cannot be created (a file, under a file,
read-only). Each is one `ERROR:` line and exit status 2 before anything is written.
(Values out of range: test_faults_config.py; `--help`: test_cli.py.)"""

from __future__ import annotations

import pytest
from train_utils import SMOKE, run_cli

from maxvit_gan.cli.common import fix_overrides
from maxvit_gan.config import compose

# a run that would be short if it started: the test fails on it, not on a timeout
SHORT = [*SMOKE, "train.kimg=0.008", "train.tick_kimg=0.008", "train.grid_kimg=1"]


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # nothing lands in the checkout
    monkeypatch.delenv("MAXVIT_GAN_DEBUG", raising=False)
    return work


def _one_error_line(code, err, *parts):
    assert code == 2, err
    assert err.startswith("ERROR: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


# ----------------------------------------------------------------------------- + and ++ keys


@pytest.mark.parametrize("prefix", ["+", "++"])
def test_an_added_key_that_is_not_in_the_schema_is_refused(capsys, tmp_path, prefix):
    code, _, err = run_cli(capsys, "train", *SHORT, f"{prefix}train.kimgg=5", f"run_dir={tmp_path / 'run'}")
    _one_error_line(code, err, f"{prefix}train.kimgg=5", "train.kimgg", "did you mean train.kimg")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "command,args,named",
    [
        ("train", ["+foo=1"], "foo"),
        ("train", ["+model.generator.channel=[8]"], "model.generator.channels"),
        ("sample", ["run=x", "++seedz=1"], "seeds"),
        ("evaluate", ["run=x", "metrics.fid=false", "+metrics.kidd=false"], "metrics.kid"),
    ],
)
def test_added_keys_are_checked_for_every_command(capsys, tmp_path, command, args, named):
    extra = [*SHORT, f"run_dir={tmp_path / 'run'}"] if command == "train" else []
    code, _, err = run_cli(capsys, command, *extra, *args)
    _one_error_line(code, err, args[-1].split("=")[0].lstrip("+"), named)


def test_open_dicts_and_existing_keys_still_take_plus_overrides():
    """`+train.tracker_kwargs.wandb.entity=me` is documented (README, Trackers); `++` on a key
    that exists sets it."""
    from maxvit_gan.cli.common import check_composes

    overrides = fix_overrides(["+train.tracker_kwargs.wandb.entity=me", "++train.kimg=5"], "train")
    check_composes("train", overrides)  # no error
    cfg = compose("train", overrides)
    assert cfg.train.tracker_kwargs == {"wandb": {"entity": "me"}} and cfg.train.kimg == 5


# ----------------------------------------------------------------------------- the run directory


@pytest.mark.parametrize("where", ["a_file", "under_a_file", "read_only", "hydra.run.dir"])
def test_a_run_dir_that_cannot_be_created_is_one_line(capsys, tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    run, key, named = {
        "a_file": (blocker, "run_dir", f"{blocker} is a file, not a directory"),
        "under_a_file": (blocker / "run", "run_dir", f"cannot create {blocker / 'run'}: {blocker} is a file"),
        "read_only": (locked / "run", "run_dir", f"cannot create {locked / 'run'}: {locked} is not writable"),
        "hydra.run.dir": (blocker / "run", "hydra.run.dir", f"{blocker} is a file"),
    }[where]
    if where == "read_only":
        import os

        real_access = os.access  # root writes anywhere: play a user without write permission on `locked`
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p) == str(locked) else real_access(p, mode, **k))
    code, _, err = run_cli(capsys, "train", *SHORT, f"{key}={run}")
    _one_error_line(code, err, "ERROR: run_dir: ", named)
    assert blocker.read_text() == "not a directory" and not list(locked.iterdir())


def test_home_and_non_ascii_characters_in_run_dir_work(capsys, tmp_path, monkeypatch, _cwd):
    """`run_dir=~/runs/été`: the home directory (as a shell would expand it; bash does not in
    `data.path=~/x`), and a name Hydra's lexer refuses unquoted."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fix_overrides(["run_dir=~/runs/été", "out=~", "data.path='~/d'", "x=a~b"], "train") == [
        f"hydra.run.dir='{tmp_path}/home/runs/été'", f"out={tmp_path}/home", f"data.path='{tmp_path}/home/d'", "x='a~b'",
    ]  # fmt: skip
    code, _, err = run_cli(capsys, "train", *SHORT, "run_dir=~/runs/été")
    assert code == 0, err
    assert (tmp_path / "home" / "runs" / "été" / "generator_ema.safetensors").is_file()
    assert not list(_cwd.iterdir())  # no folder named '~' in the working directory


@pytest.mark.parametrize(
    "argv,parts",
    [
        (["sample", "run=x", "classes=[étoile,cœur]"], ["classes=[étoile,cœur]: Hydra cannot read this value", "quote each item", "'classes=[\"étoile\",\"cœur\"]'"]),
        (["train", "run_dir=my", "runs"], ["runs: not key=value", "'run_dir=outputs/my run'"]),
    ],
)
def test_values_hydra_cannot_read_say_how_to_quote(capsys, argv, parts):
    code, _, err = run_cli(capsys, *argv)
    _one_error_line(code, err, *parts)
    assert "https://hydra.cc" not in err and "LexerNoViableAlt" not in err
