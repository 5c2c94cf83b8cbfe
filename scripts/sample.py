"""Draw images from a trained generator: a grid, one PNG per seed, or interpolation strips.

    python scripts/sample.py run=outputs/<run> seeds=0-63 out=grid.png
    python scripts/sample.py run=outputs/<run> seeds=0-63 truncation=0.7 classes=[0,2] rows=4
    python scripts/sample.py run=outputs/<run> checkpoint=checkpoints/step-000001000 seeds=0-15 outdir=samples/
    python scripts/sample.py run=outputs/<run> seeds=[3,14,15,92] interpolate=true steps=10 out=interp.png

Keys and defaults: maxvit_gan.config.SampleConfig (conf/sample.yaml); the logic lives in
maxvit_gan.sampling.command.run_sample.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import OmegaConf

from maxvit_gan.config import SampleConfig, register_configs
from maxvit_gan.sampling import run_sample

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="sample")
def main(dcfg) -> None:
    cfg: SampleConfig = OmegaConf.to_object(dcfg)
    try:
        written = run_sample(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    for path in written[:8]:
        print(f"wrote {path}")
    if len(written) > 8:
        print(f"... and {len(written) - 8} more in {written[0].parent}")


if __name__ == "__main__":
    main()
