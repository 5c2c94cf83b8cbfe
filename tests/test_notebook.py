"""notebooks/quickstart.ipynb runs top to bottom on the CPU, and is stored without outputs."""

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code), "clear the notebook's outputs"


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend draws the figures
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except Exception as err:  # nbclient's CellExecutionError carries the cell and its traceback
        pytest.fail(f"the notebook failed ({sys.executable}):\n{str(err)[-4000:]}")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "data" in o and "image/png" in o["data"]]
    assert len(figures) >= 4  # grid, truncation, losses, attention
    text = "".join(o.get("text", "") for o in outputs)
    assert "reloaded generator draws identical images: True" in text
    run = tmp_path / "run"
    for name in (
        "generator_ema.safetensors",
        "metrics.jsonl",
        "config_resolved.yaml",
        "export/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3  # one line per step
