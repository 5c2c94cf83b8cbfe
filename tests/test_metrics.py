"""Metrics: Frechet distance, streaming statistics, KID, IS, generation pass, references, Inception path."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch
from metrics_helpers import TinyExtractor, TinyGenerator, TinyImages

from maxvit_gan.metrics import (
    InceptionWeightsError,
    LabelSampler,
    StreamingInceptionScore,
    StreamingStats,
    build_feature_extractor,
    compute_dataset_stats,
    compute_generator_stats,
    compute_metrics,
    fid_key,
    frechet_distance,
    inception_score,
    kid,
    load_reference,
    quantize_images,
    reference_stats_for_dataset,
    save_reference,
)
from maxvit_gan.metrics import features as features_mod
from maxvit_gan.metrics.stand_ins import save_random_inception_weights


def _gauss_stats(rng, n, d, scale=1.0, shift=0.0):
    x = rng.normal(size=(n, d)) * scale + shift
    return x, x.mean(0), np.cov(x, rowvar=False)


def _fid_scipy(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# ----------------------------------------------------------------------------- Frechet distance


@pytest.mark.parametrize("n,d", [(300, 24), (20, 64)])  # full rank; rank-deficient (n < d)
def test_frechet_matches_scipy_sqrtm(n, d):
    rng = np.random.default_rng(0)
    x1, mu1, s1 = _gauss_stats(rng, n, d)
    x2, mu2, s2 = _gauss_stats(rng, n, d, scale=1.3, shift=0.2)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_fid_scipy(mu1, s1, mu2, s2), rel=1e-6)
    # independent exact form: tr sqrt(s1 s2) = nuclear norm of A1 A2^T with s_i = A_i^T A_i
    a1, a2 = (x1 - mu1) / np.sqrt(n - 1), (x2 - mu2) / np.sqrt(n - 1)
    exact = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * scipy.linalg.svdvals(a1 @ a2.T).sum()
    assert ours == pytest.approx(exact, rel=1e-9)
    # torch float32 input is promoted to float64 internally: same value
    t = [torch.from_numpy(a) for a in (mu1, s1, mu2, s2)]
    assert frechet_distance(*t) == pytest.approx(ours, rel=1e-12)


def test_frechet_symmetric_zero_and_shape_check():
    rng = np.random.default_rng(1)
    _, mu1, s1 = _gauss_stats(rng, 50, 32)
    _, mu2, s2 = _gauss_stats(rng, 40, 32, shift=0.5)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)
    assert frechet_distance(mu1, s1, mu2, s2) > 1.0
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-9
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(mu1, s1, mu2[:-1], s2)


def test_fid_key_names_the_sample_count_exactly():
    assert fid_key(50000) == "fid50k" and fid_key(10000) == "fid10k" and fid_key(1000) == "fid1k"
    assert fid_key(1500) == "fid1500" and fid_key(999) == "fid999" and fid_key(8) == "fid8"  # never rounded
    assert fid_key(12345) == "fid12345" and fid_key(0) == "fid0"
    with pytest.raises(ValueError):
        fid_key(-1)
    with pytest.raises(TypeError):
        fid_key(1.5e4)


# ----------------------------------------------------------------------------- streaming statistics, KID, IS


def test_streaming_stats_equal_numpy_cov():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(37, 12)) * 3 + 5  # large mean: the naive formula must still be accurate
    st = StreamingStats(12)
    for chunk in np.array_split(x, [3, 4, 20]):  # uneven batches, one of size 1
        st.update(torch.from_numpy(chunk).float() if len(chunk) == 1 else chunk)
    st.update(np.zeros((0, 12)))
    assert st.count == 37
    mu, sigma = st.mean_cov()
    x[3] = np.float32(x[3])  # the float32 row
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-10)
    assert st.all_reduce() is st and st.count == 37  # no process group: a no-op
    with pytest.raises(ValueError):
        st.update(np.zeros((2, 11)))


def test_kid_matches_torch_fidelity():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(3)
    f1 = torch.from_numpy(rng.normal(size=(70, 16)) + 0.3)
    f2 = torch.from_numpy(rng.normal(size=(60, 16)))
    ref = kid_features_to_metric(f1, f2, kid_subsets=7, kid_subset_size=50, verbose=False, rng_seed=11)
    mean, std = kid(f1, f2, num_subsets=7, subset_size=50, seed=11)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-9)
    assert mean > 0
    # same distribution: unbiased estimate close to 0; subset size clamps to the available count
    same, _ = kid(f2[:30], f2[30:], num_subsets=5, subset_size=1000)
    assert abs(same) < 0.1 * mean


def test_inception_score_matches_torch_fidelity_and_streams():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(53, 11, dtype=torch.float64) * 3
    ref = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)
    ref_ns = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert inception_score(logits, splits=10, shuffle=False)[0] == pytest.approx(
        ref_ns["inception_score_mean"], rel=1e-10
    )
    # streaming in arbitrary batch order gives the same numbers
    from maxvit_gan.metrics.kid_is import sample_positions

    pos = sample_positions(53)
    acc = StreamingInceptionScore(11, 53, splits=10)
    order = np.random.default_rng(0).permutation(53)
    for chunk in np.array_split(order, 6):
        acc.update(logits[chunk], pos[chunk])
    assert acc.compute()[0] == pytest.approx(mean, rel=1e-10)


# ----------------------------------------------------------------------------- generation pass


def test_quantize_images():
    x = torch.tensor([-2.0, -1.0, 0.0, 0.999, 1.0, 3.0])
    assert quantize_images(x).tolist() == [0, 0, 128, 255, 255, 255]
    assert quantize_images(x).dtype == torch.uint8


def test_generator_stats_exact_count_and_batch_size_invariance():
    ext, gen = TinyExtractor(), TinyGenerator()
    a = compute_generator_stats(gen, 23, 5, ext, seed=1, progress=False, is_splits=4)
    assert a.n == 23 and ext.images_seen == 23
    b = compute_generator_stats(gen, 23, 7, ext, seed=1, progress=False, is_splits=4)
    np.testing.assert_allclose(a.mu, b.mu, rtol=1e-12)
    np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(a.kid_features, b.kid_features)
    assert a.inception_score == pytest.approx(b.inception_score, rel=1e-10)
    c = compute_generator_stats(gen, 23, 5, ext, seed=2, progress=False)
    assert frechet_distance(a.mu, a.sigma, c.mu, c.sigma) > 1e-6  # another seed: other samples
    assert c.inception_score is not None and c.kid_features.shape == (23, ext.dim)
    d = compute_generator_stats(gen, 23, 5, ext, seed=1, progress=False, kid_max_samples=10)
    assert d.kid_features.shape == (10, ext.dim)  # bounded KID subset


def test_label_sampler_frequencies_and_generator_labels():
    sampler = LabelSampler([0, 0, 0, 1, 4, 4])  # classes 0, 1, 4 with 1/2, 1/6, 1/3
    draws = sampler(torch.rand(6000, generator=torch.Generator().manual_seed(0)))
    assert set(draws.unique().tolist()) == {0, 1, 4}
    freq = [(draws == c).float().mean().item() for c in (0, 1, 4)]
    assert freq == pytest.approx([1 / 2, 1 / 6, 1 / 3], abs=0.03)

    gen = TinyGenerator(num_classes=5)
    compute_generator_stats(
        gen, 12, 4, TinyExtractor(), label_sampler=LabelSampler([2, 2, 3]), progress=False
    )
    seen = torch.cat(gen.seen_labels)
    assert len(seen) == 12 and set(seen.tolist()) <= {2, 3} and (seen == 2).any()

    unconditional = TinyGenerator(num_classes=0)
    assert compute_generator_stats(unconditional, 6, 4, TinyExtractor(), progress=False).n == 6  # labels None


# ----------------------------------------------------------------------------- references


class _Counting(TinyExtractor):
    pass


def test_reference_cache_hit_miss_and_invalidation(tmp_path):
    data, ext = TinyImages(n=9), _Counting()
    r1 = reference_stats_for_dataset(data, ext, cache_dir=tmp_path, batch_size=4, progress=False)
    assert r1.meta["cache"] == "miss" and ext.images_seen == 9 and r1.n == 9
    direct = compute_dataset_stats(data, TinyExtractor(), batch_size=9, progress=False)
    np.testing.assert_allclose(r1.mu, direct.mu, rtol=1e-12)

    r2 = reference_stats_for_dataset(data, ext, cache_dir=tmp_path, batch_size=4, progress=False)
    assert r2.meta["cache"] == "hit" and ext.images_seen == 9  # nothing recomputed
    np.testing.assert_array_equal(r1.sigma, r2.sigma)
    np.testing.assert_array_equal(r1.kid_features, r2.kid_features)

    data.images[4, 0, 0, 0] ^= 1  # one pixel of one image changes
    r3 = reference_stats_for_dataset(data, ext, cache_dir=tmp_path, batch_size=4, progress=False)
    assert r3.meta["cache"] == "miss" and ext.images_seen == 18 and r3.path != r1.path
    assert not np.array_equal(r3.sigma, r1.sigma)

    other = TinyExtractor(dim=32)  # another network: another key
    assert (
        reference_stats_for_dataset(data, other, cache_dir=tmp_path, progress=False).meta["cache"] == "miss"
    )
    data.content_hash = "v1"  # datasets that know their own hash are not re-read
    r4 = reference_stats_for_dataset(data, ext, cache_dir=tmp_path, progress=False)
    data.content_hash = "v2"
    r5 = reference_stats_for_dataset(data, ext, cache_dir=tmp_path, progress=False)
    assert r4.path != r5.path and r5.meta["cache"] == "miss"
    assert len(list(tmp_path.glob("*.npz"))) == 5 and not list(tmp_path.glob("*.tmp*"))


def test_load_reference_adm_cleanfid_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    mu, sigma = rng.normal(size=8), np.eye(8) * 2
    adm = tmp_path / "VIRTUAL_imagenet128_labeled.npz"
    np.savez(
        adm,
        arr_0=np.zeros((3, 4, 4, 3), np.uint8),
        mu=mu.astype(np.float32),
        sigma=sigma,
        mu_s=mu,
        sigma_s=sigma,
    )
    ref = load_reference(adm)
    assert ref.mu.dtype == np.float64 and ref.n is None and ref.kid_features is None
    np.testing.assert_allclose(ref.mu, mu.astype(np.float32))

    mine = save_reference(
        tmp_path / "x.npz", mu, sigma, 77, {"mode": "tf"}, kid_features=rng.normal(size=(5, 8))
    )
    back = load_reference(mine)
    assert back.n == 77 and back.meta == {"mode": "tf"} and back.kid_features.shape == (5, 8)
    assert frechet_distance(back.mu, back.sigma, mu, sigma) == pytest.approx(0, abs=1e-12)

    bad = tmp_path / "bad.npz"
    np.savez(bad, m=mu, s=sigma)
    with pytest.raises(ValueError, match=r"bad\.npz.*'mu'.*'sigma'"):
        load_reference(bad)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_reference(tmp_path / "nope.npz")


def test_compute_metrics_end_to_end_tiny():
    ext, gen = TinyExtractor(), TinyGenerator()
    ref = compute_dataset_stats(TinyImages(n=40), ext, batch_size=16, progress=False)
    fake = compute_generator_stats(gen, 30, 8, ext, progress=False)
    out = compute_metrics(fake, ref, kid_subsets=5)
    assert set(out) == {"fid", "kid", "kid_std", "is", "is_std"}
    assert out["fid"] > 0 and np.isfinite(out["kid"]) and out["is"] >= 1.0
    assert compute_metrics(ref, ref)["fid"] == pytest.approx(0, abs=1e-9)


# ----------------------------------------------------------------------------- the real Inception path


def test_offline_without_weights_names_both_ways_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(url, dst, *a, **k):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    for mode in ("tf", "clean"):
        with pytest.raises(InceptionWeightsError) as exc:
            build_feature_extractor(mode)
        msg = str(exc.value)
        assert "metrics.inception_weights=PATH" in msg and "internet" in msg
        assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg and "https://" in msg
    assert not list((tmp_path / "torch_home").rglob("*.p*"))  # nothing (random or partial) cached
    with pytest.raises(InceptionWeightsError, match="missing.pth"):
        build_feature_extractor("tf", weights_path=tmp_path / "missing.pth")
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    with pytest.raises(ValueError, match="refusing"):
        save_random_inception_weights(cache / features_mod.TF_URL.rsplit("/", 1)[1], "tf")


@pytest.mark.slow
def test_real_inception_tf_mode_random_weights(tmp_path):
    """Real architecture and loading code path (tf: torch-fidelity's net), random weights from tmp_path."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = save_random_inception_weights(tmp_path / "inception_tf.pth", "tf")
    ext = build_feature_extractor("tf", weights_path=path)
    assert ext.dim == 2048 and ext.network_id.startswith("tf/") and "sha256:" in ext.network_id
    with pytest.raises(InceptionWeightsError, match="TorchScript"):
        build_feature_extractor("clean", weights_path=path)  # a state dict is not the clean network

    data = TinyImages(n=5, resolution=32)
    out = ext(data.images)
    assert out["features"].shape == (5, 2048) and out["features"].dtype == torch.float64
    assert out["logits"].shape == (5, 1008)
    assert out["features"].std() > 1e-3  # Kaiming re-init: features are not ~1e-8
    # the same numbers as torch-fidelity loading the same file itself
    tf_net = FeatureExtractorInceptionV3(
        "x", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
    )
    f_ref, l_ref = tf_net(data.images)
    torch.testing.assert_close(out["features"].float(), f_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["logits"], l_ref, rtol=1e-5, atol=1e-5)

    ref = reference_stats_for_dataset(data, ext, cache_dir=tmp_path / "refs", batch_size=5, progress=False)
    assert ref.mu.shape == (2048,) and ref.n == 5 and ref.meta["network"] == ext.network_id
    fake = compute_generator_stats(TinyGenerator(resolution=32), 4, 4, ext, progress=False)
    fid = compute_metrics(fake, ref)["fid"]
    assert np.isfinite(fid) and fid > 0  # n < d on both sides: rank-deficient covariances


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load inside clean-fid
def test_real_inception_clean_mode_matches_cleanfid(tmp_path):
    """clean: clean-fid's resize + NVIDIA-interface TorchScript; features equal clean-fid's own loop."""
    from cleanfid.fid import get_files_features
    from cleanfid.inception_torchscript import InceptionV3W

    path = save_random_inception_weights(tmp_path / "inception-2015-12-05.pt", "clean")
    ext = build_feature_extractor("clean", weights_path=path)
    assert ext.network_id.startswith("clean/")
    data = TinyImages(n=4, resolution=24)
    out = ext(data.images)
    assert out["features"].shape == (4, 2048) and out["logits"].shape == (4, 1008)

    files = []
    for i, img in enumerate(data.images):
        files.append(tmp_path / f"{i}.npy")
        np.save(files[-1], img.permute(1, 2, 0).numpy())
    model = InceptionV3W(str(tmp_path), download=False, resize_inside=False)
    theirs = get_files_features(
        files, model=model, num_workers=0, batch_size=4, device=torch.device("cpu"), verbose=False
    )
    np.testing.assert_allclose(out["features"].numpy(), theirs, rtol=1e-5, atol=1e-6)
