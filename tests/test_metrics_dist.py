"""A real 2-process gloo run: distributed statistics equal the single-process ones, exactly N samples."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from metrics_helpers import TinyExtractor, TinyGenerator, TinyImages

from maxvit_gan.metrics import compute_dataset_stats, compute_generator_stats, reference_stats_for_dataset

N_GEN, N_DATA, IS_SPLITS = 7, 11, 3


def _run(out_dir, cache_dir, rank=None):
    ext = TinyExtractor()
    gen = compute_generator_stats(TinyGenerator(), N_GEN, 2, ext, seed=5, is_splits=IS_SPLITS, progress=False)
    seen_gen = ext.images_seen
    data = compute_dataset_stats(TinyImages(n=N_DATA), ext, batch_size=3, is_splits=IS_SPLITS, progress=False)
    ref = reference_stats_for_dataset(
        TinyImages(n=N_DATA), ext, cache_dir=cache_dir, batch_size=4, progress=False
    )
    return dict(gen=gen, data=data, ref=ref, seen_gen=seen_gen, seen_total=ext.images_seen)


def _worker(rank, world_size, init_file, out_dir, cache_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        res = _run(out_dir, cache_dir)
        res["world_size"] = dist.get_world_size()
        with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
            pickle.dump(res, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(tmp_path):
    single = _run(tmp_path, tmp_path / "cache_single")

    mp.spawn(
        _worker,
        args=(2, str(tmp_path / "init"), str(tmp_path), str(tmp_path / "cache_dist")),
        nprocs=2,
        join=True,
    )
    results = [pickle.load(open(tmp_path / f"rank{r}.pkl", "rb")) for r in range(2)]

    assert [r["world_size"] for r in results] == [2, 2]
    # N=7 over 2 ranks: 4 + 3 generated images, no duplicates or padding
    assert [r["seen_gen"] for r in results] == [4, 3]
    # dataset (11 images) strided over ranks: 6 + 5, twice (plain pass + reference cache miss)
    assert [r["seen_total"] - r["seen_gen"] for r in results] == [12, 10]
    for r in results:  # every rank holds the full, identical result
        for key, n in (("gen", N_GEN), ("data", N_DATA), ("ref", N_DATA)):
            a, b = r[key], single[key]
            assert a.n == n
            np.testing.assert_allclose(a.mu, b.mu, rtol=1e-12)
            np.testing.assert_allclose(a.sigma, b.sigma, rtol=1e-9, atol=1e-15)
            np.testing.assert_array_equal(a.kid_features, b.kid_features)  # same subset, same order
        assert r["gen"].inception_score == pytest.approx(single["gen"].inception_score, rel=1e-10)
        assert r["data"].inception_score == pytest.approx(single["data"].inception_score, rel=1e-10)
    assert results[0]["ref"].meta["cache"] == "miss"
    assert len(list((tmp_path / "cache_dist").glob("*.npz"))) == 1  # written once, by rank 0
