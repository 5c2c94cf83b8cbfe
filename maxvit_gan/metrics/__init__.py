"""FID / KID / IS: Inception features, streaming distributed statistics, reference statistics; SWD.

Where each concept lives:

    features.py     Inception-V3 feature extraction (modes tf / clean), weights download and cache
    stand_ins.py    the real Inception architecture with random weights (tests, benchmarks only)
    distributed.py  rank / world size, a rank's share of N, all-reduce sum, all-gather of rows
    frechet.py      the Frechet distance (FID) in float64; fid_key, the name of an FID result
    kid_is.py       KID, Inception Score (in memory and streaming), torch-fidelity's sample order
    precision_recall.py  improved precision/recall (k-NN manifolds, StyleGAN2-ADA's definition)
    stats.py        FeatureStats (mu, sigma, n, ...), the streaming accumulators, compute_metrics
    compute.py      one pass over generated samples or a dataset -> FeatureStats; LabelSampler
    reference.py    reference statistics: from a dataset (cached by content hash) or a file
    swd.py          sliced Wasserstein distance of Laplacian-pyramid patches (ProGAN): no network,
                    no download; per-level values, the real-vs-real floor, GeneratorSWD for tracking

Typical use (every call on every rank; see docs/metrics.md):

    extractor = build_feature_extractor(cfg.mode, cfg.inception_weights, device)
    ref = get_reference(cfg.fid.ref, dataset, extractor, cache_dir=cfg.cache_dir, device=device)
    fake = compute_generator_stats(G_ema, cfg.fid.num_samples, cfg.fid.batch_size, extractor, device,
                                   label_sampler=LabelSampler(dataset_labels))
    results = compute_metrics(fake, ref)   # {"fid", "kid", "kid_std", "is", "is_std"}
    # + "precision", "recall" with compute_metrics(fake, ref, precision_recall=True)

    swd = GeneratorSWD(dataset, num_samples=2000, batch_size=64, device=device, seed=0)  # once
    swd(G_ema)   # {"swd", "swd_floor", "swd_32px", "swd_floor_32px", ...}: every rank, every time
"""

from maxvit_gan.images import quantize_images  # the one quantisation, shared with sampling
from maxvit_gan.metrics.compute import (
    LabelSampler,
    compute_dataset_stats,
    compute_generator_stats,
    sample_latents,
)
from maxvit_gan.metrics.features import (
    FeatureExtractor,
    InceptionWeightsError,
    build_feature_extractor,
)
from maxvit_gan.metrics.frechet import fid_key, frechet_distance
from maxvit_gan.metrics.kid_is import StreamingInceptionScore, inception_score, kid
from maxvit_gan.metrics.precision_recall import precision_recall
from maxvit_gan.metrics.reference import (
    get_reference,
    load_reference,
    reference_stats_for_dataset,
    save_reference,
)
from maxvit_gan.metrics.stand_ins import save_random_inception_weights
from maxvit_gan.metrics.stats import FeatureAccumulator, FeatureStats, StreamingStats, compute_metrics
from maxvit_gan.metrics.swd import (
    GeneratorSWD,
    SWDDescriptors,
    SWDReference,
    dataset_descriptors,
    generator_descriptors,
    generator_swd,
    image_descriptors,
    swd,
    swd_distance,
    swd_reference,
)

__all__ = [
    "FeatureAccumulator",
    "FeatureExtractor",
    "FeatureStats",
    "GeneratorSWD",
    "InceptionWeightsError",
    "LabelSampler",
    "StreamingInceptionScore",
    "StreamingStats",
    "SWDDescriptors",
    "SWDReference",
    "build_feature_extractor",
    "compute_dataset_stats",
    "compute_generator_stats",
    "compute_metrics",
    "dataset_descriptors",
    "fid_key",
    "frechet_distance",
    "generator_descriptors",
    "generator_swd",
    "get_reference",
    "image_descriptors",
    "inception_score",
    "kid",
    "load_reference",
    "precision_recall",
    "quantize_images",
    "reference_stats_for_dataset",
    "sample_latents",
    "save_random_inception_weights",
    "save_reference",
    "swd",
    "swd_distance",
    "swd_reference",
]
