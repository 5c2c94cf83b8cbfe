"""Prepare a dataset zip from an image folder (StyleGAN2-ADA format, ADM center crop).

    python scripts/prepare_dataset.py source=/data/imagenet/train dest=/data/in128.zip resolution=128
    python scripts/prepare_dataset.py source=DIR dest=OUT.zip resolution=64 max_images=1000 workers=8

Keys and defaults: maxvit_gan.config.PrepareConfig (conf/prepare.yaml).
"""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from maxvit_gan.config import PrepareConfig  # noqa: E402
from maxvit_gan.data.prepare import format_report, prepare_dataset  # noqa: E402

ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
def main(cfg) -> None:
    c: PrepareConfig = OmegaConf.to_object(cfg)
    result = prepare_dataset(
        source=c.source,
        dest=c.dest,
        resolution=c.resolution,
        max_images=c.max_images,
        workers=c.workers,
        use_labels=c.use_labels,
        compress_level=c.compress_level,
        overwrite=c.overwrite,
        progress=c.progress,
    )
    print(format_report(result), flush=True)


if __name__ == "__main__":
    main()
