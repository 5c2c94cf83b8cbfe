"""Prepare a dataset zip from an image folder (StyleGAN2-ADA format, ADM center crop).

    python scripts/prepare_dataset.py source=/data/imagenet/train dest=/data/in128.zip resolution=128
    python scripts/prepare_dataset.py source=DIR dest=OUT.zip resolution=64 max_images=1000 workers=8

Keys and defaults: maxvit_gan.config.PrepareConfig (conf/prepare.yaml).
"""

from __future__ import annotations

from dataclasses import asdict

import hydra
from omegaconf import OmegaConf

from maxvit_gan.config import PrepareConfig, register_configs
from maxvit_gan.data.prepare import format_report, prepare_dataset

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="prepare")
def main(cfg) -> None:
    c: PrepareConfig = OmegaConf.to_object(cfg)
    result = prepare_dataset(**asdict(c))
    print(format_report(result), flush=True)


if __name__ == "__main__":
    main()
