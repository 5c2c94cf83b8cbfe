"""Sampling: seeds, grids, determinism, classes, truncation, interpolation, export, scripts/sample.py."""

import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from train_utils import ROOT, run_script, subprocess_env

from maxvit_gan import load_generator
from maxvit_gan.config import SampleConfig
from maxvit_gan.models import Generator, GeneratorConfig, save_generator
from maxvit_gan.sampling import (
    generate,
    generate_images,
    parse_classes,
    parse_seeds,
    run_sample,
    sample_grid,
    sample_interpolations,
    seed_latents,
    slerp,
    truncated_normal,
)

R = 16  # image side of the test generators


def _tiny(num_classes=0, seed=0):
    cfg = GeneratorConfig(
        resolution=R, z_dim=16, num_classes=num_classes, channels=[32, 16], depths=[1, 1], window_sizes=[4, 4],
        grid_sizes=[2, 4], head_dim=16, num_latent_tokens=4, mlp_ratio=2.0, mbconv_expand=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    return Generator(cfg).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def G():
    return _tiny()


@pytest.fixture(scope="module")
def Gc():
    return _tiny(num_classes=3, seed=1)


@pytest.fixture()
def run_dir(tmp_path, Gc):
    """A run-shaped folder: the EMA generator file and one checkpoint (weights only)."""
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000000010").mkdir(parents=True)
    save_generator(Gc, run / "generator_ema.safetensors", {"step": 10})
    perturbed = {
        k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in Gc.state_dict().items()
    }
    save_file(perturbed, str(run / "checkpoints" / "step-000000010" / "ema.safetensors"))
    return run


def _cell(img: Image.Image, r: int, c: int, pad: int = 0) -> np.ndarray:
    a = np.asarray(img)
    y, x = pad + r * (R + pad), pad + c * (R + pad)
    return a[y : y + R, x : x + R].transpose(2, 0, 1)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "spec, expected",
    [("0-3", [0, 1, 2, 3]), ("0,5,7", [0, 5, 7]), ("[1,2]", [1, 2]), ([4, 2], [4, 2]), (9, [9]),
     ("0-2,10", [0, 1, 2, 10]), (" 3 - 4 ", [3, 4]), (["0-1", 5], [0, 1, 5])],
)  # fmt: skip
def test_parse_seeds(spec, expected):
    assert parse_seeds(spec) == expected


@pytest.mark.parametrize("spec", ["abc", "5-2", "", "[]", "1.5", "-3", None, True, {"a": 1}])
def test_parse_seeds_errors_name_the_key(spec):
    with pytest.raises(ValueError, match="^seeds: "):
        parse_seeds(spec)


def test_parse_classes():
    assert parse_classes(None, 4) == [0, 1, 2, 3]
    assert parse_classes("[2,0]", 4) == [2, 0]
    assert parse_classes("circle,3", 4, ["circle", "square", "triangle", "cross"]) == [0, 3]
    assert parse_classes(None, 0) is None
    with pytest.raises(ValueError, match=r"^classes: \[4\] out of range: the generator has 4 classes"):
        parse_classes("1,4", 4)
    with pytest.raises(ValueError, match="^classes: the generator is unconditional"):
        parse_classes("1", 0)
    with pytest.raises(ValueError, match="^classes: cannot parse"):
        parse_classes("dog", 4, ["circle", "square", "triangle", "cross"])


# --------------------------------------------------------------------------- grids


def test_grid_size_and_tiling(G):
    seeds = list(range(10))
    res = sample_grid(G, seeds, batch_size=4)
    assert (res.rows, res.cols) == (3, 4)  # square-ish: cols = ceil(sqrt(10))
    assert res.image.size == (4 * R, 3 * R)
    assert res.images.shape == (10, 3, R, R) and res.images.dtype == torch.uint8
    for i in range(10):  # row-major tiling of the per-seed images
        assert np.array_equal(_cell(res.image, i // 4, i % 4), res.images[i].numpy()), i
    assert (_cell(res.image, 2, 2) == 255).all() and (_cell(res.image, 2, 3) == 255).all()  # blank cells
    assert not np.array_equal(_cell(res.image, 0, 0), _cell(res.image, 0, 1))

    res = sample_grid(G, seeds, rows=2, pad=3)
    assert (res.rows, res.cols) == (2, 5)
    assert res.image.size == (5 * R + 6 * 3, 2 * R + 3 * 3)
    assert np.array_equal(_cell(res.image, 1, 2, pad=3), res.images[7].numpy())
    assert (np.asarray(res.image)[:3] == 255).all()  # padding is white


def test_png_is_byte_identical_across_calls(tmp_path, run_dir):
    cfg = SampleConfig(run=str(run_dir), seeds="0-11", truncation=0.8, out=str(tmp_path / "a.png"))
    run_sample(cfg)
    run_sample(replace(cfg, out=str(tmp_path / "b.png")))
    run_sample(replace(cfg, out=str(tmp_path / "c.png"), seeds="1-12"))
    a, b, c = ((tmp_path / f"{n}.png").read_bytes() for n in "abc")
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    assert a != c
    assert Image.open(tmp_path / "a.png").size == (4 * R, 3 * R)


def test_seed_latent_depends_on_the_seed_only(G):
    alone = seed_latents([7], 16)
    for batch in ([7, 1, 2], [3, 7], list(range(20))):
        z = seed_latents(batch, 16)
        assert torch.equal(z[batch.index(7)], alone[0])
    assert torch.equal(alone[0], torch.randn(16, generator=torch.Generator().manual_seed(7)))
    zt = seed_latents([7, 8], 16, truncation=0.5)
    assert torch.equal(zt[0], seed_latents([7], 16, truncation=0.5)[0])
    # images: a seed gives the same image whatever else is drawn with it and in which order ...
    a = generate_images(G, [5, 3, 9], batch_size=1)
    b = generate_images(G, [9, 5], batch_size=1)
    assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0])
    # ... and whatever the batch size (batched CPU kernels may round differently: <= 1 level)
    one = generate_images(G, list(range(12)), batch_size=1)
    for bs in (5, 12):
        d = (one.int() - generate_images(G, list(range(12)), batch_size=bs).int()).abs()
        assert d.max() <= 1 and (d == 0).float().mean() > 0.99


def test_conditional_rows_carry_their_class(Gc, monkeypatch):
    calls = []
    forward = Gc.forward

    def spy(z, labels=None, **kw):
        calls.append(labels.clone())
        return forward(z, labels, **kw)

    monkeypatch.setattr(Gc, "forward", spy)
    res = sample_grid(Gc, list(range(12)), classes=[2, 0], rows=3, batch_size=5)
    monkeypatch.undo()
    assert (res.rows, res.cols) == (3, 4)
    assert res.labels == [2] * 4 + [0] * 4 + [2] * 4
    assert torch.cat(calls).tolist() == res.labels  # what the generator really received
    z = seed_latents(list(range(12)), Gc.z_dim)
    for r, cls in enumerate([2, 0, 2]):
        direct = generate(Gc, z[4 * r : 4 * r + 4], [cls] * 4, batch_size=4)
        other = generate(Gc, z[4 * r : 4 * r + 4], [1] * 4, batch_size=4)
        for k in range(4):
            cell = _cell(res.image, r, k)
            assert np.abs(cell.astype(int) - direct[k].numpy()).max() <= 1
            assert np.abs(cell.astype(int) - other[k].numpy()).mean() > 2  # the class matters
    default = sample_grid(Gc, list(range(8)), rows=4)  # default: all classes, one per row, cycling
    assert default.labels == [0, 0, 1, 1, 2, 2, 0, 0]


@pytest.mark.parametrize("mode", ["truncnorm", "mean"])
def test_truncation_zero_collapses_variety(G, Gc, mode):
    seeds = list(range(8))
    varied = generate_images(G, seeds)
    assert varied.float().std(0).mean() > 5
    same = generate_images(G, seeds, truncation=0.0, truncation_mode=mode)
    assert (same == same[0]).all()
    labels = [0, 1, 2, 0, 1, 2, 0, 1]
    cond = generate_images(Gc, seeds, labels, truncation=0.0, truncation_mode=mode)
    for c in range(3):  # one image per class, and the classes still differ
        idx = [i for i, lab in enumerate(labels) if lab == c]
        assert (cond[idx] == cond[idx[0]]).all()
    assert not torch.equal(cond[0], cond[1])


def test_truncation_modes(G):
    seeds = list(range(16))
    full = generate_images(G, seeds)
    assert torch.equal(generate_images(G, seeds, truncation=1.0, truncation_mode="mean"), full)
    spread = [
        generate_images(G, seeds, truncation=p, truncation_mode="mean").float().std(0).mean()
        for p in (1, 0.5, 0.1)
    ]
    assert spread[0] > spread[1] > spread[2]  # mean mode: psi shrinks variety smoothly
    z = seed_latents(seeds, 16, truncation=0.5, truncation_mode="truncnorm")
    assert z.abs().max() <= 0.5 and z.abs().max() > 0.4
    raw = seed_latents(seeds, 16)
    assert torch.equal(seed_latents(seeds, 16, truncation=0.5), raw)  # mean mode: psi is applied inside G
    wide = seed_latents(seeds, 16, truncation=2.5, truncation_mode="truncnorm")  # components inside the band are kept
    keep = raw.abs() <= 2.5
    assert torch.equal(wide[keep], raw[keep]) and (wide.abs() <= 2.5).all()
    tiny = truncated_normal(4096, 1e-4, torch.Generator().manual_seed(0))  # bounded time for tiny psi
    assert tiny.abs().max() <= 1e-4 and tiny.std() > 3e-5
    with pytest.raises(ValueError, match="^truncation_mode: unknown 'wrong'"):
        generate_images(G, seeds, truncation=0.5, truncation_mode="wrong")
    with pytest.raises(ValueError, match="^truncation: must be"):
        generate_images(G, seeds, truncation=-1.0)


def test_truncation_mode_has_one_default(G, tmp_path, run_dir):
    """The Python functions, the sample command and the docs agree: mean."""
    import inspect

    from maxvit_gan.sampling import DEFAULT_TRUNCATION_MODE

    assert DEFAULT_TRUNCATION_MODE == SampleConfig().truncation_mode == "mean"
    for fn in (generate_images, sample_grid, sample_interpolations, seed_latents):
        assert inspect.signature(fn).parameters["truncation_mode"].default == DEFAULT_TRUNCATION_MODE, fn.__name__
    doc = (ROOT / "docs" / "sampling.md").read_text()
    assert "| `truncation_mode` | `mean` |" in doc
    # the command's default image is the library's default image
    run_sample(SampleConfig(run=str(run_dir), seeds="0-3", truncation=0.5, out=str(tmp_path / "cli.png")))
    lib = sample_grid(load_generator(run_dir), [0, 1, 2, 3], truncation=0.5)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "cli.png")), np.asarray(lib.image))


def test_slerp_and_interpolation_strips(Gc):
    a, b = torch.randn(16), torch.randn(16)
    t = torch.linspace(0, 1, 5)
    path = slerp(a, b, t)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    cos = torch.nn.functional.cosine_similarity
    angles = [torch.arccos(cos(path[i], path[i + 1], dim=0).clamp(-1, 1)) for i in range(4)]
    assert max(angles) - min(angles) < 1e-3  # constant angular speed
    res = sample_interpolations(Gc, [4, 9, 2], steps=5, classes=[1])
    assert (res.rows, res.cols) == (2, 5) and res.labels == [1, 1]
    assert res.image.size == (5 * R, 2 * R) and res.images.shape == (10, 3, R, R)
    ends = generate_images(Gc, [4, 9, 2], [1, 1, 1], batch_size=5)
    for j, (s0, s1) in enumerate([(0, 1), (1, 2)]):
        assert (res.images[5 * j].int() - ends[s0].int()).abs().max() <= 1
        assert (res.images[5 * j + 4].int() - ends[s1].int()).abs().max() <= 1
    assert not torch.equal(res.images[1], res.images[0])
    with pytest.raises(ValueError, match="^seeds: interpolation needs at least 2 seeds"):
        sample_interpolations(Gc, [3])


# --------------------------------------------------------------------------- loading, export


def test_checkpoint_weights_are_used(run_dir, Gc):
    run_g = load_generator(str(run_dir))
    ck_g = load_generator(str(run_dir), "checkpoints/step-000000010")
    latest = load_generator(str(run_dir), "latest")
    by_file = load_generator(
        str(run_dir), str(run_dir / "checkpoints/step-000000010/ema.safetensors")
    )
    seeds, labels = [0, 1], [0, 2]
    ref = generate_images(run_g, seeds, labels)
    assert torch.equal(ref, generate_images(Gc, seeds, labels))
    ck = generate_images(ck_g, seeds, labels)
    assert not torch.equal(ck, ref)
    assert torch.equal(ck, generate_images(latest, seeds, labels))
    assert torch.equal(ck, generate_images(by_file, seeds, labels))
    # a self-describing file needs no run
    assert torch.equal(
        ref,
        generate_images(
            load_generator(None, str(run_dir / "generator_ema.safetensors")), seeds, labels
        ),
    )


def test_bad_inputs_give_clear_errors(tmp_path, run_dir, G):
    def run(**kw):
        kw.setdefault("out", str(tmp_path / "x.png"))
        return run_sample(SampleConfig(**kw))

    with pytest.raises(FileNotFoundError, match="^run: no such directory or file: .*missing"):
        run(run=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="^run: .*empty holds no generator weights"):
        run(run=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="^run: required"):
        run()
    with pytest.raises(FileNotFoundError, match="^checkpoint: no such directory or file: step-9"):
        run(run=str(run_dir), checkpoint="step-9")
    (run_dir / "checkpoints" / "step-000000020").mkdir()  # an empty newer one: skipped with a warning
    with pytest.warns(UserWarning, match="checkpoint=latest: skipping step-000000020: .* has no ema.safetensors"):
        run(run=str(run_dir), checkpoint="latest", out=str(tmp_path / "latest.png"))
    (run_dir / "checkpoints" / "step-000000010" / "ema.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="^checkpoint=latest: step-000000020 cannot be read .*has no ema.safetensors"):
        run(run=str(run_dir), checkpoint="latest")
    wrong = tmp_path / "wrong.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(wrong))  # another architecture
    with pytest.raises(ValueError, match="^checkpoint: the weights in .* do not fit the generator"):
        run(run=str(run_dir), checkpoint=str(wrong))
    with pytest.raises(ValueError, match="^seeds: cannot parse 'x-y'"):
        run(run=str(run_dir), seeds="x-y")
    with pytest.raises(
        ValueError, match=r"^classes: \[3\] out of range: the generator has 3 classes \(0..2\)"
    ):
        run(run=str(run_dir), classes=3)
    with pytest.raises(ValueError, match="^out: cannot write"):
        run(run=str(run_dir), out=str(tmp_path / "grid.nosuchformat"))
    with pytest.raises(ValueError, match="^truncation_mode: unknown"):
        run(run=str(run_dir), truncation=0.5, truncation_mode="avg")
    assert not (tmp_path / "x.png").exists()


def test_outdir_writes_one_png_per_seed(tmp_path, run_dir):
    paths = run_sample(SampleConfig(run=str(run_dir), seeds="[3,4,5,6]", rows=2, outdir=str(tmp_path / "o")))
    assert [p.name for p in paths] == ["seed0003-class000.png", "seed0004-class000.png",
                                       "seed0005-class001.png", "seed0006-class001.png"]  # fmt: skip
    grid = sample_grid(load_generator(run_dir), [3, 4, 5, 6], rows=2).images
    assert np.array_equal(np.asarray(Image.open(paths[2])).transpose(2, 0, 1), grid[2].numpy())
    strips = run_sample(
        SampleConfig(run=str(run_dir), seeds="0-2", interpolate=True, steps=4, outdir=str(tmp_path / "i"))
    )
    assert [p.name for p in strips] == [
        "interp-seed0000-seed0001-class000.png",
        "interp-seed0001-seed0002-class001.png",
    ]
    assert Image.open(strips[0]).size == (4 * R, R)


_FRESH = """
import sys, numpy as np, torch
torch.set_num_threads(1)
from maxvit_gan import Generator
from maxvit_gan.sampling import generate_images
G = Generator.from_pretrained(sys.argv[1])
np.save(sys.argv[2], generate_images(G, list(range(6)), [0, 1, 2, 0, 1, 2], truncation=0.7, batch_size=6).numpy())
"""


def test_export_then_load_in_a_fresh_process(tmp_path, Gc):
    export = tmp_path / "export"
    Gc.save_pretrained(export, metadata={"class_names": ["a", "b", "c"], "step": 10})
    assert {p.name for p in export.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    config = json.loads((export / "config.json").read_text())
    assert config["model_type"] == "maxvit-gan-generator" and config["generator_config"]["num_classes"] == 3
    assert config["metadata"]["class_names"] == ["a", "b", "c"]
    ours = generate_images(Gc, list(range(6)), [0, 1, 2, 0, 1, 2], truncation=0.7, batch_size=6).numpy()
    out = tmp_path / "fresh.npy"
    proc = subprocess.run([sys.executable, "-c", _FRESH, str(export), str(out)], env=subprocess_env(), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.array_equal(np.load(out), ours)
    # the weights file alone is self-describing too; sample.py reads the folder and its class names
    assert torch.equal(
        load_generator(export / "model.safetensors").state_dict()["input.weight"],
        Gc.state_dict()["input.weight"],
    )
    run_sample(SampleConfig(run=str(export), seeds="0-3", classes="[c]", out=str(tmp_path / "g.png")))
    assert Image.open(tmp_path / "g.png").size == (2 * R, 2 * R)


def test_from_pretrained_hub_repo_id_without_network(tmp_path, Gc, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    export = Gc.save_pretrained(tmp_path / "snapshot")
    asked = []

    def fake_download(repo_id, filename, **kw):
        asked.append((repo_id, filename, kw))
        return str(export / filename)

    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    G = Generator.from_pretrained("someone/maxvit-gan-shapes", revision="v1")
    assert [a[1] for a in asked] == ["config.json", "model.safetensors"] and asked[0][2] == {"revision": "v1"}
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), Gc.state_dict().values()))
    # sample.py takes the repo id as run= (and uses the class names stored with the model)
    Gc.save_pretrained(export, metadata={"class_names": ["a", "b", "c"]})
    run_sample(SampleConfig(run="someone/maxvit-gan-shapes", seeds="0-3", classes="[c]", out=str(tmp_path / "h.png")))
    assert Image.open(tmp_path / "h.png").size == (2 * R, 2 * R)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if the optional package were missing
    with pytest.raises(FileNotFoundError, match=r"no such file or directory .*pip install huggingface_hub\)$"):
        Generator.from_pretrained("someone/other")
    with pytest.raises(FileNotFoundError, match=r"pip install huggingface_hub"):
        load_generator("someone/other")


def test_metadata_survives_load_and_save(tmp_path, run_dir):
    """A run's generator loaded and saved again keeps its step, kimg and class names."""
    G = load_generator(run_dir)
    assert G.metadata["step"] == 10 and G.metadata.get("class_names") is None  # the fixture run has no config
    G.save_pretrained(tmp_path / "a", metadata={"class_names": ["x", "y", "z"], "kimg": 0.5})
    again = Generator.from_pretrained(tmp_path / "a")
    assert again.metadata == {"step": 10, "class_names": ["x", "y", "z"], "kimg": 0.5}
    again.save_pretrained(tmp_path / "b")
    assert json.loads((tmp_path / "b" / "config.json").read_text())["metadata"] == again.metadata


# --------------------------------------------------------------------------- the script


def test_script_on_a_smoke_run(tmp_path, smoke_run, monkeypatch, capsys):
    """scripts/sample.py (in this process) on conftest.smoke_run, from an empty working directory."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "grid.png"
    code, stdout, err = run_script(capsys, "sample.py", f"run={smoke_run.path}", "seeds=0-15", "truncation=0.7", f"out={out}")
    assert code == 0, err[-3000:]
    assert "row 1: class 1 (square)" in stdout and f"wrote {out}" in stdout
    assert Image.open(out).size == (4 * 32, 4 * 32)  # the smoke run is 32 px
    assert not (tmp_path / "outputs").exists()  # no Hydra output folder
    # the same as the library call, byte for byte; a checkpoint of the run loads too
    run_sample(SampleConfig(run=str(smoke_run.path), seeds="0-15", truncation=0.7, out=str(tmp_path / "lib.png")))
    assert (tmp_path / "lib.png").read_bytes() == out.read_bytes()
    paths = run_sample(
        SampleConfig(run=str(smoke_run.path), checkpoint="latest", seeds="0-1", outdir=str(tmp_path / "o"))
    )
    assert len(paths) == 2


def test_script_error_is_one_clear_line(tmp_path, run_dir, monkeypatch, capsys):
    """The script's error path, in-process (Hydra runs the same way; saves a subprocess start)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code, _, err = run_script(capsys, "sample.py", f"run={run_dir}", "classes=7")
    assert code == 2
    assert "ERROR: classes: [7] out of range: the generator has 3 classes" in err and "Traceback" not in err
    assert not list(cwd.iterdir())  # nothing written, no Hydra output folder


def test_sample_reproduces_the_grid_saved_during_training(tmp_path, smoke_run):
    """One grid sampler: `maxvit-gan sample` of the final checkpoint, seeds 0..15 in 4 rows, is the
    last training grid byte for byte (smoke: grid_rows = grid_cols = 4)."""
    grids = sorted((smoke_run.path / "samples").glob("fakes*.png"))
    run = str(smoke_run.path)
    run_sample(SampleConfig(run=run, checkpoint="latest", seeds="0-15", rows=4, out=str(tmp_path / "s.png")))
    assert (tmp_path / "s.png").read_bytes() == grids[-1].read_bytes()
    run_sample(SampleConfig(run=run, seeds="0-15", rows=4, truncation=0.5, out=str(tmp_path / "t.png")))
    assert (tmp_path / "t.png").read_bytes() != grids[-1].read_bytes()  # the comparison can fail
