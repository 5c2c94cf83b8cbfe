"""The package's shape: imports flow one way, one module owns the run directory, scripts stay thin."""

import ast
from pathlib import Path

from train_utils import ROOT, subprocess_env

from maxvit_gan import checkpoint, rundir

PKG = ROOT / "maxvit_gan"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, name: str, modules: dict) -> set[str]:
    """Every maxvit_gan module ``path`` imports, at module level or inside functions."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t.split(".")[0] == "maxvit_gan"}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def test_import_graph_has_no_cycle():
    # the root package is a facade over everything (lazy attributes), so it is not a node;
    # no module may import it (that was models/pretrained.py -> maxvit_gan for __version__)
    graph = _graph()
    assert not [m for m, deps in graph.items() if m != "maxvit_gan" and "maxvit_gan" in deps]
    graph = {m: {d for d in deps if d != "maxvit_gan"} for m, deps in graph.items() if m != "maxvit_gan"}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == node or dep.startswith(node + "."):  # a package importing its own submodules
                continue
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, f"import cycles: {cycles}"


def test_layers_import_downwards_only():
    """nn and models know nothing of training, data, metrics, sampling, the run directory,
    Accelerate or Hydra; data does not load the models."""
    low = {"maxvit_gan.nn": ("nn",), "maxvit_gan.models": ("nn", "models", "_version", "files")}
    for name, path in _modules().items():
        for prefix, allowed in low.items():
            if name == prefix or name.startswith(prefix + "."):
                text = path.read_text()
                assert "accelerate" not in text and "hydra" not in text, name
                bad = {d for d in _imports(path, name, _modules()) if d.split(".")[1] not in allowed}
                assert not bad, f"{name} imports {bad}"


def test_data_and_metrics_import_without_models(tmp_path):
    import subprocess
    import sys

    code = "import sys, maxvit_gan.data, maxvit_gan.metrics; print(sorted(m for m in sys.modules if m.startswith('maxvit_gan.models')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_no_script_edits_sys_path():
    for script in (ROOT / "scripts").glob("*.py"):
        assert "sys.path" not in script.read_text(), script.name


def _string_constants(path: Path) -> list[str]:
    """String literals of a file, docstrings excluded (prose may name files)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_run_directory_and_checkpoint_names_live_in_one_module_each():
    """The run directory's names are spelled in rundir.py only, a checkpoint's in checkpoint.py only."""
    files = [rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.GENERATOR_FILE, checkpoint.TRAIN_STATE_FILE, rundir.REALS_GRID]
    folders = [rundir.CHECKPOINTS_DIR, rundir.SAMPLES_DIR, rundir.TENSORBOARD_DIR]
    offenders = []
    sources = [*PKG.rglob("*.py"), *(ROOT / "scripts").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    for path in sources:
        if path in (PKG / "rundir.py", PKG / "checkpoint.py"):
            continue
        for s in _string_constants(path):
            if (
                any(f in s for f in files)
                or s.rstrip("/") in folders
                or s.startswith(("step-", f"/{rundir.CHECKPOINTS_DIR}"))
                or s.endswith(checkpoint.EMA_FILE)
            ):
                if path.name == "features.py" and s == "checkpoints":  # torch hub's cache folder, not ours
                    continue
                if path.name in ("config.py", "trackers.py") and "tensorboard" in s:  # the tracker's name (train.log_with)
                    continue
                offenders.append(f"{path.relative_to(ROOT)}: {s!r}")
    assert not offenders, offenders


def test_checkpoint_names_are_not_in_rundir():
    text = (PKG / "rundir.py").read_text()
    assert checkpoint.TRAIN_STATE_FILE not in text and f'"{checkpoint.EMA_FILE}"' not in text and '"step-' not in text


def test_readme_names_tests_that_exist():
    """The README's Reliability table names test files and tests (`file.py::test`, then `::test` for
    the same file): each exists, so moving or renaming a test means updating the table."""
    import re

    readme = (ROOT / "README.md").read_text()
    refs, current = [], None
    for file, name in re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)", readme):
        current = file or current
        refs.append((current, name))
    assert len(refs) > 30 and all(file for file, _ in refs), refs[:3]
    missing = []
    for file, name in refs:
        tree = ast.parse((ROOT / "tests" / file).read_text())
        if name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append(f"{file}::{name}")
    assert not missing, missing
