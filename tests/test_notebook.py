"""notebooks/quickstart.ipynb runs top to bottom on the CPU, and is committed executed, with its pictures.

Refresh the committed outputs after changing the notebook (or what it shows):

    OMP_NUM_THREADS=1 python tests/test_notebook.py      # executes it in a temporary directory, writes it back
"""

import os
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from train_utils import ROOT, subprocess_env

NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
MIN_FIGURES = 4  # grid, truncation, losses, attention


def execute(nb, cwd: Path):
    """Run ``nb`` in place in a fresh kernel with ``cwd`` as its working directory (no timings recorded:
    the committed file changes only when what it shows changes)."""
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def _outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def _figures(nb):
    return [o for o in _outputs(nb) if "data" in o and "image/png" in o["data"]]


def test_notebook_is_committed_executed_with_its_pictures():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run it top to bottom: python tests/test_notebook.py"
    assert all(c.outputs for c in code), "every code cell shows something"
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert len(_figures(nb)) >= MIN_FIGURES
    text = "".join(o.get("text", "") for o in _outputs(nb))
    assert "reloaded generator draws identical images: True" in text
    assert "\r" not in text and "/tmp" not in text  # no progress-bar redraws, no machine-specific paths
    assert not any("execution" in c.metadata for c in code)  # no timestamps


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    env = subprocess_env(QUICKSTART_RUN_DIR=str(tmp_path / "run"))  # the kernel's environment is this process's
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend draws the figures
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # run what the source says, not what was committed
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    try:
        execute(nb, tmp_path)
    except Exception as err:  # nbclient's CellExecutionError carries the cell and its traceback
        pytest.fail(f"the notebook failed ({sys.executable}):\n{str(err)[-4000:]}")
    assert not [o for o in _outputs(nb) if o.output_type == "error"]
    assert len(_figures(nb)) >= MIN_FIGURES
    text = "".join(o.get("text", "") for o in _outputs(nb))
    assert "reloaded generator draws identical images: True" in text
    run = tmp_path / "run"
    for name in (
        "generator_ema.safetensors",
        "metrics.jsonl",
        "config_resolved.yaml",
        "train.log",
        "export/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3  # one line per step


if __name__ == "__main__":  # refresh the committed outputs
    os.environ.pop("QUICKSTART_RUN_DIR", None)
    os.environ["PYTHONPATH"] = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.pop("MPLBACKEND", None)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    with tempfile.TemporaryDirectory() as tmp:  # RUN_DIR = outputs/quickstart, relative: no machine paths in the file
        execute(nb, Path(tmp))
    nbformat.write(nb, NOTEBOOK)
    print(f"wrote {NOTEBOOK}: {len(_figures(nb))} figures")
