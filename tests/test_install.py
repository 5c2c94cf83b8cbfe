"""The package as a user installs it: built as a wheel, installed into a fresh virtual environment,
run from a directory outside the checkout (console command, packaged configs, a user's own config
directory, `accelerate launch -m maxvit_gan train`, sampling).

Offline, as CI is: the wheel is built without build isolation and installed without its
dependencies into a venv that reuses this interpreter's installed packages through a .pth file
(nested .pth files are not processed, so an editable install of the checkout stays invisible)."""

import ast
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from train_utils import ROOT, subprocess_env

SHIPPED = ("pyproject.toml", "README.md", "LICENSE", "maxvit_gan")


def _run(cmd, cwd, env, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\nexit {proc.returncode}\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"  # a copy: building in place would leave build/ and *.egg-info in the checkout
    src.mkdir()
    for name in SHIPPED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in subprocess_env().items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # not the checkout's code
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(tmp / "dist"), str(src)], tmp, env)  # fmt: skip
    wheel = next((tmp / "dist").glob("maxvit_gan-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "_maxvit_gan_test_deps.pth").write_text("\n".join(deps) + "\n")
    python = venv / "bin" / "python"
    # --ignore-installed: never touch (uninstall) a maxvit-gan that the reused packages may hold
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)], tmp, env)
    work = tmp / "work"
    work.mkdir()
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return python, work, env


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(venv):
    python, work, env = venv
    where = _run([str(python), "-c", "import sys, maxvit_gan; print(maxvit_gan.__file__); print(sys.path)"], work, env)
    path, entries = where.stdout.splitlines()[0], ast.literal_eval(where.stdout.splitlines()[1])
    # the wheel, not the checkout: no path entry inside the checkout, except its venv's packages
    # (borrowed for torch & co.; the checkout's own .venv may live under ROOT, as in CI)
    inside = [e for e in entries if e and Path(e).resolve().is_relative_to(ROOT) and not Path(e).resolve().is_relative_to(ROOT / ".venv")]
    assert str(python.parents[1]) in path and not Path(path).resolve().is_relative_to(ROOT) and not inside, where.stdout
    cli = str(python.parent / "maxvit-gan")
    usage = _run([cli, "--help"], work, env).stdout
    assert all(c in usage for c in ("train", "sample", "evaluate", "prepare", "export"))
    assert "experiment: auto, imagenet" in _run([cli, "train", "--help"], work, env).stdout  # the packaged configs

    # a user's own config directory next to the packaged ones
    mine = work / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "tiny_run.yaml").write_text(
        "# @package _global_\ndefaults:\n  - smoke\n  - _self_\nexperiment: tiny_run\n"
        "data:\n  shapes_num_images: 32\ntrain:\n  kimg: 0.016\n  tick_kimg: 0.008\n  grid_kimg: 1\n"
        "  checkpoint_kimg: 0.016\n"
    )
    launch = [str(python), "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    _run([*launch, "-m", "maxvit_gan", "train", f"hydra.searchpath=[file://{work / 'my_conf'}]",
          "experiment=tiny_run", "train.log_with=none", "run_dir=runs/a"], work, env)  # fmt: skip
    run = work / "runs" / "a"
    assert (run / "generator_ema.safetensors").is_file()
    assert "experiment: tiny_run" in (run / "config_resolved.yaml").read_text()

    out = _run([cli, "sample", "run=runs/a", "seeds=0-3,10", "out=grid.png"], work, env).stdout
    assert "wrote grid.png" in out and (work / "grid.png").is_file()
    assert not (work / "outputs").exists()
