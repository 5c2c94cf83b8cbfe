"""Sharing: maxvit-gan export keeps what the run knows, writes a model card, pushes to the Hub (mocked)."""

import json
import sys

import pytest
from PIL import Image
from train_utils import copy_run, run_cli

from maxvit_gan.models import Generator
from maxvit_gan.rundir import RunDir


@pytest.fixture()
def run(tmp_path, smoke_run):
    """A finished run as the trainer leaves it (a copy of conftest.smoke_run, step 12 at kimg 0.096,
    without its checkpoints: export reads the EMA generator file), with an FID row in metrics.jsonl
    after step 10's tick row, as FID tracking writes it (step 12's tick row stays the last), and an
    evaluation as `maxvit-gan evaluate` writes it."""
    run = RunDir(copy_run(smoke_run.path, tmp_path / "run", checkpoints=False))
    lines = run.metrics_file.read_text().splitlines(keepends=True)
    assert [json.loads(s)["step"] for s in lines[-2:]] == [10, 12]
    fid = json.dumps({"kimg": 0.08, "step": 10, "fid10k": 123.4, "kid10k": 0.05}) + "\n"
    run.metrics_file.write_text("".join([*lines[:-1], fid, lines[-1]]))
    run.eval_dir.mkdir()
    (run.eval_dir / "fid50k-dataset-tf-step12.json").write_text(json.dumps(
        {"fid50k": 12.345, "kid": 0.01, "precision": 0.7, "recall": 0.4, "num_samples": 50000, "mode": "tf",
         "reference": {"kind": "dataset", "n": 256}, "generator": {"step": 12}}))  # fmt: skip
    return run


_cli = run_cli


def test_export_keeps_what_the_run_knows(run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "shapes32"
    code, stdout, err = _cli(capsys, "export", f"run={run.path}", f"out={out}", "seeds=0-7")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "README.md", "samples.png", "training_config.yaml"}
    meta = json.loads((out / "config.json").read_text())["metadata"]
    assert meta["class_names"] == ["circle", "square", "triangle", "cross"] and meta["step"] == 12 and meta["kimg"] == 0.096
    assert meta["metrics"]["training"]["fid10k"] == 123.4 and meta["metrics"]["evaluations"][0]["fid50k"] == 12.345
    assert meta["data"]["name"] == "shapes" and meta["license"] == "apache-2.0"
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: maxvit-gan\nlicense: apache-2.0\n")
    for text in ("![samples](samples.png)", "one class per row: circle, square, triangle, cross",
                 "| fid50k | 12.35 | `tf` features, 50000 samples vs dataset (256 images), step 12 |", "| precision | 0.7 |",
                 "| fid10k (tracked in training) | 123.4 | at kimg 0.08", "`shapes`: maxvit-gan's procedural dataset",
                 "training step 12 (0.096 kimg)", "```yaml", "preset: tiny"):  # fmt: skip
        assert text in card, text
    assert Image.open(out / "samples.png").size == (2 * 32, 4 * 32)  # 8 seeds, one class per row
    G = Generator.from_pretrained(out)
    assert G.metadata["class_names"][1] == "square" and G.metadata["step"] == 12
    code, stdout, err = _cli(capsys, "sample", f"run={out}", "seeds=0-3", f"out={tmp_path / 'g.png'}")
    assert code == 0 and "row 1: class 1 (square)" in stdout, err
    # exporting again into the same folder is fine; into a folder of other files is not
    assert _cli(capsys, "export", f"run={run.path}", f"out={out}", "seeds=0-3")[0] == 0
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, _, err = _cli(capsys, "export", f"run={run.path}", f"out={tmp_path / 'busy'}")
    assert code == 2 and "ERROR: out: " in err and "is not an export folder" in err


class _FakeApi:
    calls = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        self.calls.append(("create_repo", repo_id, private, exist_ok))
        return type("Repo", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, repo_type, **kw):
        files = sorted(p.name for p in __import__("pathlib").Path(folder_path).iterdir())
        self.calls.append(("upload_folder", repo_id, repo_type, files, kw))
        return f"https://huggingface.co/{repo_id}/commit/abc"


def test_push_to_hub_from_the_command_line(run, tmp_path, capsys, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub, "HfApi", _FakeApi)
    _FakeApi.calls = []
    code, stdout, err = _cli(capsys, "export", f"run={run.path}", "push_to_hub=me/maxvit-gan-shapes", "private=true",
                             "seeds=0-3", "commit_message=first model")  # fmt: skip
    assert code == 0, err
    assert _FakeApi.calls[0] == ("create_repo", "me/maxvit-gan-shapes", True, True)
    _, repo, kind, files, kw = _FakeApi.calls[1]
    assert (repo, kind, kw) == ("me/maxvit-gan-shapes", "model", {"commit_message": "first model"})
    assert files == ["README.md", "config.json", "model.safetensors", "samples.png", "training_config.yaml"]
    assert f"wrote {run.path / 'export'}" in stdout and "pushed to https://huggingface.co/me/maxvit-gan-shapes/commit/abc" in stdout
    # a folder that is not a run: pushed from a temporary folder, nothing left behind
    _FakeApi.calls = []
    code, stdout, err = _cli(capsys, "export", f"run={run.path / 'export'}", "push_to_hub=me/again", "seeds=0-3")
    assert code == 0 and "wrote" not in stdout and _FakeApi.calls[1][3][-1] == "samples.png", err
    assert not list(tmp_path.glob("maxvit_gan_export_*"))
    code, _, err = _cli(capsys, "export", f"run={run.path}", "push_to_hub=no-slash")
    assert code == 2 and "ERROR: push_to_hub: expected USER/NAME" in err


def test_push_without_huggingface_hub_says_how_to_get_it(run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    code, _, err = _cli(capsys, "export", f"run={run.path}", "push_to_hub=me/x", "seeds=0-3")
    assert code == 2 and err.startswith("ERROR: pushing to the Hub needs huggingface_hub: pip install huggingface_hub")


def test_an_export_carries_no_local_path(run, tmp_path, capsys):
    """The card, training_config.yaml and config.json of an export name files, not this machine's
    folders (run_dir, data.path, a FID reference, the cache folder were pasted as absolute paths)."""
    from omegaconf import OmegaConf

    config = run.read_config()
    local = str(tmp_path)
    trained_in = config["run_dir"]
    assert trained_in.startswith("/")  # the trainer records it absolute
    config["data"]["path"] = f"{local}/data/my32.zip"
    config["metrics"]["cache_dir"] = "~/.cache/maxvit_gan"
    config["overrides"] = ["data=zip", f"data.path={local}/data/my32.zip"]  # the command line, as recorded
    OmegaConf.save(OmegaConf.create(config), run.config_file)
    out = tmp_path / "shared"
    code, _, err = _cli(capsys, "export", f"run={run.path}", f"out={out}", "seeds=0-3")
    assert code == 0, err
    for name in ("README.md", "training_config.yaml", "config.json"):
        text = (out / name).read_text()
        assert local not in text and trained_in not in text and "~/" not in text, name
    assert "about [-1, 1]: not clipped" in (out / "README.md").read_text()  # the samples slightly exceed it
    shared = OmegaConf.to_container(OmegaConf.load(out / "training_config.yaml"))
    assert shared["data"]["path"] == "my32.zip" and shared["run_dir"] == "run"
    assert shared["overrides"] == ["data=zip", "data.path=my32.zip"]
    assert shared["model"] == config["model"]  # everything else as trained
    assert json.loads((out / "config.json").read_text())["metadata"]["data"]["path"] == "my32.zip"
