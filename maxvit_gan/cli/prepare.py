"""``maxvit-gan prepare``: an image folder -> a dataset zip (StyleGAN2-ADA format, ADM center crop).

    maxvit-gan prepare source=/data/imagenet/train dest=/data/in128.zip resolution=128
    maxvit-gan prepare source=DIR dest=OUT.zip resolution=64 max_images=1000 workers=8

Keys and defaults: maxvit_gan.config.PrepareConfig.
"""

from __future__ import annotations

from maxvit_gan.cli.common import run_command


def task(dcfg) -> None:
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from maxvit_gan.data.prepare import format_report, prepare_dataset

    result = prepare_dataset(**asdict(OmegaConf.to_object(dcfg)))
    print(format_report(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    run_command("prepare", task, argv)


if __name__ == "__main__":
    main()
