"""SWD (ProGAN's sliced Wasserstein distance of Laplacian-pyramid patches): against an independent numpy
implementation, its properties, 2 processes = 1 process, and ``evaluate`` with SWD alone (no Inception)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from metrics_helpers import TinyGenerator, TinyImages

from maxvit_gan.data import ShapesDataset
from maxvit_gan.metrics import GeneratorSWD, image_descriptors, swd, swd_distance, swd_reference
from maxvit_gan.metrics.swd import (
    generator_descriptors,
    patch_centres,
    reference_split,
    sliced_wasserstein,
    swd_directions,
    swd_resolutions,
)

# --------------------------------------------------------------------------- an independent numpy implementation

_K1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # the binomial filter, applied separably here


def _mirror(i, n):
    """scipy/cv2 'mirror' (reflect-101) index for any integer i."""
    i = np.abs(i)
    return np.where(i >= n, 2 * (n - 1) - i, i)


def _blur_np(x, gain=1.0):
    """Separable 5-tap binomial with mirror borders on the last two axes, in float64."""
    n = x.shape[-1]
    taps = np.arange(-2, 3)
    idx = _mirror(np.arange(n)[:, None] + taps[None, :], n)  # [n, 5]
    x = np.einsum("...ik,k->...i", x[..., idx], _K1 * gain)  # along the columns
    x = np.einsum("...ikj,k->...ij", x[..., idx, :], _K1 * gain)  # along the rows
    return x


def _reference_swd(images_a, images_b, seed, patches):
    """ProGAN's SWD per level (x1e3) written from the paper's description, loops and numpy only."""
    res = swd_resolutions(images_a.shape[-1])
    dirs = swd_directions(seed, len(res)).double().numpy()

    def descriptors(images):
        gauss = [images.astype(np.float64)]
        for _ in res[1:]:
            gauss.append(_blur_np(gauss[-1])[..., ::2, ::2])
        lap = []
        for g, g_next in zip(gauss[:-1], gauss[1:]):
            up = np.zeros_like(g)
            up[..., ::2, ::2] = g_next
            lap.append(g - _blur_np(up, gain=2.0))  # 4 x the 2-D filter = 2 x each 1-D pass
        lap.append(gauss[-1])
        per_level = []
        for k, level in enumerate(lap):
            rows = []
            for i in range(len(images)):
                centres = patch_centres(seed, i, res, patches).numpy()
                for p in range(patches):
                    y, x = centres[k, 0, p], centres[k, 1, p]
                    rows.append(level[i, :, y - 3 : y + 4, x - 3 : x + 4].reshape(-1))
            d = np.stack(rows).reshape(-1, 3, 49)
            d = (d - d.mean(axis=(0, 2), keepdims=True)) / d.std(axis=(0, 2), keepdims=True)
            per_level.append(d.reshape(len(rows), -1))
        return per_level

    out = []
    for k, (a, b) in enumerate(zip(descriptors(images_a), descriptors(images_b))):
        pa, pb = np.sort(a @ dirs[k].T, axis=0), np.sort(b @ dirs[k].T, axis=0)
        out.append(np.abs(pa - pb).mean() * 1e3)
    return out


def _shapes(n, start=0, res=32):
    ds = ShapesDataset(resolution=res, num_images=start + n)
    return torch.stack([ds[i][0] for i in range(start, start + n)])


def _blur(images, sigma):
    r = 3
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.pad(images.float(), (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    return x.round().clamp(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------- the recipe


def test_matches_an_independent_numpy_implementation():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (3, 3, 64, 64), generator=g, dtype=torch.uint8)
    b = _blur(torch.randint(0, 256, (3, 3, 64, 64), generator=g, dtype=torch.uint8), 1.0)
    a_desc = image_descriptors(a, seed=5, patches=24)  # 3 levels: 64, 32, 16
    b_desc = image_descriptors(b, seed=5, patches=24)
    ours = swd_distance(b_desc, a_desc, seed=5)
    ref = _reference_swd(b.numpy(), a.numpy(), seed=5, patches=24)
    assert [ours[f"swd_{r}px"] for r in (64, 32, 16)] == pytest.approx(ref, rel=2e-5)
    assert ours["swd"] == pytest.approx(np.mean(ref), rel=2e-5) and min(ref) > 1


def test_unequal_sizes_are_the_exact_1d_wasserstein_distance():
    scipy_stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(50, 6, generator=g), torch.randn(37, 6, generator=g) * 1.5 + 0.3
    dirs = F.normalize(torch.randn(4, 6, generator=g), dim=1)
    ours = sliced_wasserstein(a, b, dirs)
    for k in range(4):
        ref = scipy_stats.wasserstein_distance((a @ dirs[k]).numpy(), (b @ dirs[k]).numpy())
        assert ours[k].item() == pytest.approx(ref, rel=1e-5)
    # a set against itself repeated: the same distribution
    assert sliced_wasserstein(a, torch.cat([a, a]), dirs).abs().max().item() < 1e-6


def test_identical_sets_zero_determinism_and_batch_size():
    x = _shapes(12)
    assert swd(x, x, seed=3)["swd"] == 0.0
    y = _shapes(12, start=12)
    first = swd(x, y, seed=3, batch_size=5)
    assert swd(x, y, seed=3, batch_size=12) == pytest.approx(first, rel=1e-6)  # batch size changes nothing
    assert swd(x, y, seed=3, batch_size=5) == first  # bit-exact again
    assert swd(x, y, seed=4)["swd"] != pytest.approx(first["swd"], rel=1e-3)  # the seed matters
    assert set(first) == {"swd", "swd_32px", "swd_16px"}


def test_distortion_raises_swd_above_the_floor_monotonically():
    reals, others = _shapes(48), _shapes(48, start=48)
    floor = swd(others, reals)["swd"]
    blurred = [swd(_blur(others, s), reals)["swd"] for s in (0.8, 1.3, 2.0, 3.0)]
    assert floor < blurred[0] < blurred[1] < blurred[2] < blurred[3], (floor, blurred)
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, others.shape, generator=g, dtype=torch.uint8)
    assert swd(noise, reals)["swd"] > 1.5 * blurred[-1] > 3 * floor


def test_resolutions_and_errors():
    assert swd_resolutions(16) == [16] and swd_resolutions(256) == [256, 128, 64, 32, 16]
    assert swd_resolutions(48) == [48, 24] and swd_resolutions(31) == [31]
    with pytest.raises(ValueError, match="at least 16 x 16"):
        swd_resolutions(8)
    with pytest.raises(ValueError, match="halves to an odd side 33"):
        swd_resolutions(66)
    with pytest.raises(ValueError, match="uint8 images"):
        image_descriptors(torch.zeros(2, 3, 32, 32))
    assert reference_split(10, 100, seed=0)[0].__len__() == 5  # halves when the data is short
    a, b = reference_split(1000, 100, seed=0)
    assert len(a) == len(b) == 100 and not set(a) & set(b)


# --------------------------------------------------------------------------- reference, floor, generators


def test_generator_swd_with_floor_and_cache(tmp_path):
    data = ShapesDataset(resolution=16, num_images=96, num_classes=3)
    metric = GeneratorSWD(data, num_samples=40, batch_size=16, seed=0, cache_dir=tmp_path)
    G = TinyGenerator(num_classes=3, resolution=16)  # noise-like images
    out = metric(G)
    assert {"swd", "swd_16px", "swd_floor", "swd_floor_16px", "swd_n", "swd_ref_n"} <= out.keys()
    assert out["swd_n"] == 40 and out["swd_ref_n"] == 40
    assert 0 < out["swd_floor"] < out["swd"] / 3
    assert metric.reference.meta["cache"] == "miss" and len(list(tmp_path.glob("swd-16px-n40-*.npz"))) == 1
    assert metric(G) == out  # the reference is kept; the same samples again
    cached = swd_reference(data, 40, seed=0, batch_size=16, cache_dir=tmp_path, progress=False)
    assert cached.meta["cache"] == "hit" and cached.floor == metric.reference.floor
    torch.testing.assert_close(cached.descriptors.levels[16], metric.reference.descriptors.levels[16])
    # labels follow the dataset's frequencies, as in compute_generator_stats
    assert torch.cat(G.seen_labels).unique().tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- 2 processes = 1 process

N_GEN = 7


def _run_all():
    data = TinyImages(n=30, resolution=16)
    ref = swd_reference(data, N_GEN, seed=2, batch_size=4, progress=False)
    G = TinyGenerator(num_classes=0, resolution=16)
    from maxvit_gan.metrics import generator_swd

    gen = generator_swd(G, ref, N_GEN, batch_size=3, progress=False)
    images = torch.stack([data[i][0] for i in range(9)])
    direct = swd(images[:5], images[5:], seed=1, batch_size=2)
    desc = generator_descriptors(G, N_GEN, 2, seed=2, progress=False)
    return dict(gen=gen, direct=direct, desc=desc.levels[16])


def _worker(rank, world_size, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        res = _run_all()
        res["world_size"] = dist.get_world_size()
        with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
            pickle.dump(res, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(tmp_path):
    single = _run_all()
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [pickle.load(open(tmp_path / f"rank{r}.pkl", "rb")) for r in range(2)]
    assert [r["world_size"] for r in results] == [2, 2]
    assert results[0]["gen"] == results[1]["gen"] and results[0]["direct"] == results[1]["direct"]  # every rank
    for r in results:
        torch.testing.assert_close(r["desc"], single["desc"], rtol=0, atol=0)  # same descriptors, same order
        for key in ("gen", "direct"):
            assert r[key] == pytest.approx(single[key], rel=1e-6)


# --------------------------------------------------------------------------- maxvit-gan evaluate, SWD alone


def test_evaluate_swd_alone_needs_no_inception(tmp_path, monkeypatch, capsys):
    from test_evaluate import _tiny_generator, _write_images
    from train_utils import run_cli

    from maxvit_gan.models import save_generator

    def no_inception(*args, **kwargs):
        raise AssertionError("Inception was built")

    monkeypatch.setattr("maxvit_gan.evaluation.build_feature_extractor", no_inception)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty cache, and no network
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("MAXVIT_GAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    save_generator(_tiny_generator(), run / "generator_ema.safetensors", {"step": 5})
    real = _write_images(tmp_path / "real", 24, seed=0)
    code, out, err = run_cli(capsys, "evaluate", f"run={run}", f"ref={real}", "num_samples=10", "batch_size=4",
                             "metrics.fid=false", "metrics.swd=true")  # fmt: skip
    assert code == 0, err
    line = out.splitlines()[0]
    assert line.startswith("swd ") and "real-vs-real floor" in line and "16px" in line and "fid" not in line
    result = json.loads((run / "eval" / "swd-real-n10-step5.json").read_text())
    assert result["swd"] > 0 and result["swd_floor"] > 0 and result["swd_16px"] == result["swd"]
    assert result["swd_reference"]["n"] == 10 and "mode" not in result and result["num_samples"] == 10
    assert list((tmp_path / "cache" / "swd_refs").glob("swd-16px-n10-*.npz"))  # the reference is cached
    from maxvit_gan.models.card import _metrics_table
    from maxvit_gan.rundir import RunDir

    card = _metrics_table(RunDir(run).latest_metrics())  # the model card of an export shows it
    assert "| swd | " in card and "real-vs-real floor" in card
    # a folder of images: the same images as the reference score 0 against themselves only when they are
    # the same set; here 12 fakes vs 12 of the 24 reals
    fake = _write_images(tmp_path / "fake", 12, seed=1)
    code, out, err = run_cli(capsys, "evaluate", f"fake={fake}", f"ref={real}", "metrics.fid=false",
                             "metrics.swd=true", f"out={tmp_path / 'f.json'}")  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "f.json").read_text())
    assert result["num_samples"] == 12 and result["swd_reference"]["n"] == 12 and result["swd"] > 0
    # statistics files cannot give SWD; nothing at all is an error too
    code, _, err = run_cli(capsys, "evaluate", f"run={run}", "ref=x.npz", "metrics.swd=true")
    assert code == 2 and "ref=x.npz: holds Inception statistics only, and SWD needs reference images" in err
    code, _, err = run_cli(capsys, "evaluate", f"run={run}", "metrics.fid=false")
    assert code == 2 and "nothing to compute" in err


def test_evaluate_fid_and_swd_from_one_pass(tmp_path, monkeypatch):
    from metrics_helpers import TinyExtractor
    from test_evaluate import _write_images

    from maxvit_gan.config import EvalMetricsConfig, EvaluateConfig
    from maxvit_gan.evaluation import evaluate

    monkeypatch.chdir(tmp_path)
    fake, real = _write_images(tmp_path / "fake", 20, seed=1), _write_images(tmp_path / "real", 24, seed=0)
    cfg = EvaluateConfig(fake=str(fake), ref=str(real), batch_size=8,
                         metrics=EvalMetricsConfig(swd=True, cache_dir=str(tmp_path / "c")))  # fmt: skip
    both = evaluate(cfg, "cpu", extractor=TinyExtractor())
    assert "fid20" in both and "swd" in both and both["reference"]["kind"] == "folder"
    cfg.metrics.fid = False
    alone = evaluate(cfg, "cpu")
    assert alone["swd"] == pytest.approx(both["swd"], rel=1e-6) and alone["swd_floor"] == both["swd_floor"]


def test_swd_is_tracked_during_training_without_any_download(tmp_path):
    """metrics.swd.every_kimg: SWD and its floor in metrics.jsonl and the log, the floor computed once."""
    import json

    from train_utils import fresh_trainer, run_config

    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.032", "metrics.swd.every_kimg=0.016", "metrics.swd.num_samples=32",
                                 "metrics.fid.every_kimg=0"))  # fmt: skip
    t.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rows if "swd" in r]
    assert [r["step"] for r in scored] == [2, 4] and all(r["swd"] > r["swd_floor"] > 0 for r in scored)
    assert scored[0]["swd_floor"] == scored[1]["swd_floor"] and "swd_floor" in (tmp_path / "train.log").read_text()


def test_without_fid_the_best_swd_checkpoint_is_kept(tmp_path):
    """FID off (no weights needed): SWD picks the best checkpoint, which survives pruning like the best-FID one."""
    import json

    from train_utils import fresh_trainer, run_config

    t = fresh_trainer(run_config(tmp_path, "train.kimg=0.064", "metrics.swd.every_kimg=0.016", "metrics.swd.num_samples=32",
                                 "metrics.fid.every_kimg=0", "train.checkpoint_kimg=0.016", "train.keep_checkpoints=1"))  # fmt: skip
    t.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scored = {r["step"]: r["swd"] for r in rows if "swd" in r}
    assert len(scored) == 4
    best_step = min(scored, key=scored.get)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    state = json.loads((tmp_path / "checkpoints" / checkpoints[-1] / "train_state.json").read_text())
    assert (state["best_key"], state["best_step"], state["best_fid"]) == ("swd", best_step, scored[best_step])
    assert checkpoints == sorted({f"step-{best_step:09d}", f"step-{max(scored):09d}"})  # the newest and the best
    assert "(best swd so far: this checkpoint is kept)" in (tmp_path / "train.log").read_text()
    from maxvit_gan.loading import load_generator

    best, direct = load_generator(tmp_path, checkpoint="best"), load_generator(tmp_path, checkpoint=f"checkpoints/step-{best_step:09d}")
    assert best.metadata["step"] == best_step
    assert all(torch.equal(v, direct.state_dict()[k]) for k, v in best.state_dict().items())
