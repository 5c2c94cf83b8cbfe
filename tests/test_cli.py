"""The command line: one-line errors, --help, and the traps of issue #14, each next to its fix."""

import re
import subprocess
import sys

import pytest
import tomllib
from PIL import Image
from train_utils import ACCELERATE_LAUNCH, ROOT, TWO_PROCESSES, run_cli, subprocess_env

from maxvit_gan.cli import main
from maxvit_gan.cli.common import UsageError, fix_overrides
from maxvit_gan.models import Generator, GeneratorConfig, save_generator
from maxvit_gan.training.accelerator import launcher_precision_note

_cli = run_cli


@pytest.fixture()
def run(tmp_path):
    """A run-shaped folder with a small conditional generator."""
    cfg = GeneratorConfig(
        resolution=16, z_dim=16, num_classes=3, channels=[32, 16], depths=[1, 1], window_sizes=[4, 4],
        grid_sizes=[2, 4], head_dim=16, num_latent_tokens=4, mlp_ratio=2.0, mbconv_expand=2,
    )  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    save_generator(Generator(cfg).eval(), run / "generator_ema.safetensors", {"step": 3})
    return run


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # nothing lands in the checkout
    monkeypatch.delenv("MAXVIT_GAN_DEBUG", raising=False)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "train.kimgg=1"], "ERROR: train.kimgg: Key 'kimgg' not in 'TrainConfig'"),
        (["train", "model=xl"], "Could not find 'model/xl' Available options in 'model': b hit_b l s tiny"),
        (["sample", "run=missing_run"], "ERROR: run: no such directory or file: missing_run"),
        (["sample", "run=missing_run", "seeds=x-y"], "ERROR: seeds: cannot parse 'x-y'"),
        (["evaluate"], "ERROR: run= or fake=: give exactly one"),
        (["evaluate", "run=x", "metrics.mode=clean"], "ERROR: metrics.mode: evaluate's feature mode is the top-level key"),
        (["prepare", "source=a", "dest=b.zip", "resolution=abc"], "ERROR: resolution: Value 'abc'"),
        (["prepare", "dest=b.zip", "resolution=8"], "ERROR: source: required, give source=..."),
        (["export"], "ERROR: run: required"),
        (["nosuch"], "ERROR: unknown command 'nosuch'"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(capsys, argv, message):
    code, out, err = _cli(capsys, *argv)
    assert code == 2 and err.startswith("ERROR: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_debug_env_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("MAXVIT_GAN_DEBUG", "1")
    code, _, err = _cli(capsys, "sample", "run=missing_run")
    assert code == 1 and "Traceback" in err and "FileNotFoundError: run: no such directory" in err
    with pytest.raises(UsageError, match="configure the launcher"):
        main(["train", "accelerate=single_gpu"])


def test_offline_weights_message_is_the_first_thing_printed(tmp_path, run):
    env = subprocess_env(TORCH_HOME=str(tmp_path / "th"), https_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-m", "maxvit_gan", "evaluate", f"run={run}", "num_samples=8"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("ERROR: Inception weights for metrics mode 'tf' are not available"), proc.stderr
    assert "Two ways out" in proc.stderr and "metrics.inception_weights=PATH" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 5 and not proc.stdout


# --------------------------------------------------------------------------- --help and the launcher's configs


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "prepare", "export"])
def test_help_lists_only_what_the_command_takes(capsys, command):
    code, out, _ = _cli(capsys, command, "--help")
    assert code == 0 and f"maxvit-gan {command}" in out or out.strip(), out
    assert "accelerate:" not in out and "_schema" not in out and "powered by Hydra" not in out
    config = out.split("== Config")[1]
    if command == "train":
        assert "model: b, hit_b, l, s, tiny" in out and "data: folder, shapes, zip" in out and "experiment: " in out
        assert "train.log_with=tensorboard" in config and "overrides=" not in config
    else:
        assert "== Groups" not in out and "model." not in config
    if command == "evaluate":
        assert "fake=null" in config and "metrics.precision_recall=true" in config
        assert "metrics.mode=" not in config and "every_kimg" not in config  # one mode key; no training-only keys
        assert "metrics.fid=true" in config and "metrics.swd=false" in config  # evaluate's switches (FID on, SWD off)


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "prepare", "export"])
def test_help_describes_every_key_from_its_dataclass_comment(capsys, monkeypatch, command):
    """`--help` is not a YAML dump: every key is `key=default` and a description, the trailing
    comment of its dataclass field (the one source), grouped by section."""
    monkeypatch.setenv("COLUMNS", "140")  # the help wraps to the terminal; an xdist worker's may be 80 wide
    from maxvit_gan.cli.schema import all_keys, description, schema_of
    from maxvit_gan.config import TrainConfig
    from maxvit_gan.models.config import GeneratorConfig

    code, out, _ = _cli(capsys, command, "--help")
    assert code == 0
    config = out.split("== Config")[1]
    lines = config.splitlines()
    keys = [m.group(1) for ln in lines if (m := re.match(r"^  ([\w.]+)=", ln))]
    expected = [k for k in all_keys(schema_of(command)) if k != "overrides"]
    assert sorted(keys) == sorted(expected)
    undescribed = []
    for i, ln in enumerate(lines):
        m = re.match(r"^  ([\w.]+)=(\S*)\s*(.*)$", ln)
        if m and not (m.group(3) or (i + 1 < len(lines) and lines[i + 1].startswith(" " * 10))):
            undescribed.append(m.group(1))
    assert not undescribed, undescribed
    assert not re.search(r"^\w+:\n  \w+: ", config, re.M)  # no YAML nesting
    if command == "train":
        assert re.search(r"^  train\.kimg=\S+ +" + re.escape(description(TrainConfig, "kimg")), config, re.M)
        assert description(GeneratorConfig, "z_dim") in config  # model.generator.* take GeneratorConfig's comments
        assert "\ntrain.*: " in config and "\nmodel.generator.*: " in config  # sections, titled by their field's comment
        _, smoke, _ = _cli(capsys, command, "experiment=smoke", "--help")  # the defaults as composed
        assert re.search(r"^  train\.kimg=0\.064 ", smoke, re.M), smoke


def test_launcher_configs_are_not_hydra_groups(capsys):
    code, _, err = _cli(capsys, "train", "accelerate=multi_gpu")
    assert code == 2 and "accelerate launch --config_file launchers/multi_gpu.yaml" in err
    assert (ROOT / "launchers" / "multi_gpu.yaml").is_file()


def test_launcher_precision_is_not_ignored_silently(monkeypatch):
    note = launcher_precision_note("no", {"ACCELERATE_MIXED_PRECISION": "bf16"})
    assert "'bf16'" in note and "train.mixed_precision='no' decides" in note and "train.mixed_precision=bf16" in note
    assert launcher_precision_note("bf16", {"ACCELERATE_MIXED_PRECISION": "bf16"}) is None
    assert launcher_precision_note("bf16", {"ACCELERATE_MIXED_PRECISION": "no"}) is None
    assert launcher_precision_note("no", {}) is None
    for path in (ROOT / "launchers").glob("*.yaml"):  # the shipped launcher configs ask for nothing
        assert re.search(r"^mixed_precision: 'no'", path.read_text(), re.M), path.name
    from train_utils import reset_accelerate, run_config

    from maxvit_gan.training.accelerator import build_accelerator

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")
    reset_accelerate()
    with pytest.warns(UserWarning, match="mixed precision 'fp16'.*train.mixed_precision='no' decides"):
        acc = build_accelerator(run_config("unused"))
    assert acc.mixed_precision == "no"
    reset_accelerate()


# --------------------------------------------------------------------------- overrides


def test_comma_values_need_no_quotes(capsys, run, tmp_path):
    assert fix_overrides(["seeds=0-3,10", "loss.diffaug=color,cutout"], "sample") == [
        "seeds='0-3,10'",
        "loss.diffaug='color,cutout'",
    ]
    kept = ["hydra.searchpath=[file:///a,file:///b]", "classes=[0,2]", "seeds='1,2'", "x=${y}"]
    assert fix_overrides(kept, "sample") == kept
    assert fix_overrides(["-m", "seed=1,2"], "train") == ["-m", "seed=1,2"]  # a real sweep stays one
    code, out, err = _cli(capsys, "sample", f"run={run}", "seeds=0-3,10", f"out={tmp_path / 'g.png'}")
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size == (3 * 16, 2 * 16)  # 5 seeds: 2 rows of 3


def test_run_dir_sets_the_run_directory(capsys, tmp_path):
    assert fix_overrides(["run_dir=outputs/a", "seed=1"], "train") == ["hydra.run.dir=outputs/a", "seed=1"]
    assert fix_overrides(["run_dir=x"], "sample") == ["run_dir=x"]  # only train has it
    with pytest.raises(UsageError, match="run_dir= and hydra.run.dir= both given"):
        fix_overrides(["run_dir=a", "hydra.run.dir=b"], "train")
    # a run_dir written in a config file cannot silently lose against Hydra's directory
    conf = tmp_path / "my_conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "elsewhere.yaml").write_text("# @package _global_\ndefaults:\n  - smoke\n  - _self_\nrun_dir: /somewhere/else\n")
    code, _, err = _cli(capsys, "train", f"hydra.searchpath=[file://{conf.parent}]", "experiment=elsewhere",
                        f"run_dir={tmp_path / 'a'}")  # fmt: skip
    assert code == 2 and "ERROR: run_dir: /somewhere/else is set in a config file" in err, err


# --------------------------------------------------------------------------- what training prints


@pytest.mark.slow
def test_training_output_fits_a_log_file(smoke_run):
    """Under SLURM or nohup (no terminal): no progress-bar fragments, no Accelerate INFO lines,
    the tick lines in <run>/train.log, and resume=auto says what it did. conftest.smoke_run: the
    script under `accelerate launch` with resume=auto on an empty run directory, then `python -m
    maxvit_gan train ... resume=auto`, both with their output captured."""
    run, first, second = smoke_run.path, smoke_run.first, smoke_run.resumed
    assert f"resume=auto: no checkpoint in {run / 'checkpoints'} yet; starting from scratch" in first.stdout
    assert "Resuming at kimg 0.064" in second.stdout and "resume=auto: no checkpoint" not in second.stdout
    for proc in (first, second):
        both = proc.stdout + proc.stderr
        assert "\r" not in both  # no tqdm redraws
        assert "accelerate" not in proc.stderr.lower() and "Saving current state" not in both
        assert "scheduler" not in both.lower() and "dataloader" not in both.lower()
    log = (run / "train.log").read_text()
    ticks = [ln for ln in log.splitlines() if "sec/kimg" in ln]
    assert len(ticks) == 6 and "kimg    0.096" in ticks[-1]
    assert "Starting at kimg 0.000" in log and "Resuming at kimg 0.064" in log
    assert not list(run.glob("*_gan.log"))


@pytest.mark.slow
def test_accelerate_launch_of_the_module_with_two_processes(tmp_path):
    """`accelerate launch -m maxvit_gan train` forms one process group and one run directory; the
    launcher's mixed precision, overridden by the config, is said once."""
    run = tmp_path / "run"
    env = subprocess_env(two_procs=True)
    launcher = list(TWO_PROCESSES)
    launcher[launcher.index("--mixed_precision") + 1] = "bf16"  # the launcher asks for bf16, the config says no
    cmd = [*ACCELERATE_LAUNCH, *launcher, "-m", "maxvit_gan", "train", "experiment=smoke", "data.shapes_num_images=32", "train.kimg=0.016",
           "train.tick_kimg=0.016", "train.grid_kimg=1", f"run_dir={run}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("Starting at kimg 0.000 (step 0); 2 process(es)") == 1, proc.stdout
    assert proc.stderr.count("the launcher asked for mixed precision 'bf16'") == 1
    assert (run / "generator_ema.safetensors").is_file() and list((run / "tensorboard").glob("events.out.*"))


def test_readme_tells_about_accelerate_config():
    readme = (ROOT / "README.md").read_text()
    assert "accelerate config" in readme and "maxvit-gan train" in readme


# --------------------------------------------------------------------------- dependencies


DISTRIBUTIONS = {  # import name -> distribution name
    "PIL": "pillow", "cleanfid": "clean-fid", "torch_fidelity": "torch-fidelity", "hydra": "hydra-core",
    "yaml": "pyyaml", "huggingface_hub": "huggingface-hub", "torch": "torch", "torchvision": "torchvision",
}  # fmt: skip


def _requirement_names(reqs):
    return {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def _third_party_imports(paths):
    import ast

    names = set()
    for path in paths:
        text = path.read_text()
        if path.suffix == ".ipynb":
            import json

            text = "\n".join(
                "".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code"
            ).replace("%matplotlib inline", "")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        names |= {m.split(".")[0] for m in re.findall(r"importorskip\(\"([\w.]+)\"", text)}
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | {p.stem for p in (ROOT / "benchmarks").glob("*.py")} | {"maxvit_gan"}
    return {n for n in names if n not in sys.stdlib_module_names and n not in local}


def test_dependencies_are_declared_where_they_are_used():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = project["dependencies"]
    extras = project["optional-dependencies"]
    assert not [r for r in core if "<" in r], "no upper pins without a known break"
    core_names, dev_names = _requirement_names(core), _requirement_names(extras["dev"])
    for unused in ("torchvision", "torchmetrics", "scipy", "matplotlib", "tensorboard", "pyyaml"):
        assert unused not in core_names, unused
    used = {DISTRIBUTIONS.get(n, n).lower().replace("_", "-") for n in _third_party_imports((ROOT / "maxvit_gan").rglob("*.py"))}
    optional = {"huggingface-hub"}  # imported only when a Hub id or a push asks for it
    assert used - optional <= core_names, used - optional - core_names
    assert "pyyaml" not in used  # not imported: Hydra/OmegaConf bring it
    tests = [*(ROOT / "tests").glob("*.py"), ROOT / "notebooks" / "quickstart.ipynb"]
    needed = {DISTRIBUTIONS.get(n, n).lower().replace("_", "-") for n in _third_party_imports(tests)}
    needed |= {"tensorboard", "ipykernel"}  # the default tracker in the smoke runs; the notebook's kernel
    assert needed <= core_names | dev_names, needed - core_names - dev_names
    assert set(extras) >= {"dev", "hub", "tensorboard"}
    setup = (ROOT / "scripts" / "setup_env.sh").read_text()
    assert 'pip install -q -e ".[dev]"' in setup


def test_readme_commands_name_files_that_exist():
    """Every file a README command names is in a fresh clone, and every command is one the tool has."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks
    code = "\n".join(blocks)
    paths = set(re.findall(r"(?<![\w/.])((?:scripts|conf|notebooks|docs|maxvit_gan)/[\w./-]+\.(?:py|sh|yaml|ipynb|md))", code))
    assert "scripts/train_gan.py" in paths
    assert not [p for p in paths if not (ROOT / p).exists()], [p for p in paths if not (ROOT / p).exists()]
    from maxvit_gan.cli import COMMANDS

    used = set(re.findall(r"maxvit-gan (\w+)", code)) | set(re.findall(r"-m maxvit_gan (\w+)", code))
    assert used - {"<command>"} <= set(COMMANDS), used - set(COMMANDS)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in re.findall(r'pip install (?:-e )?"\.\[([\w,]+)\]"', readme):
        assert set(extra.split(",")) <= set(extras), extra
