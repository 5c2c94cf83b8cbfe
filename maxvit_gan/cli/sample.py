"""``maxvit-gan sample``: images from a trained generator (Hydra config ``sample``).

    maxvit-gan sample run=outputs/<run> seeds=0-63 out=grid.png
    maxvit-gan sample run=outputs/<run> seeds=0-63 truncation=0.7 classes=[0,2] rows=4
    maxvit-gan sample run=outputs/<run> checkpoint=latest seeds=0-15 outdir=samples/
    maxvit-gan sample run=outputs/<run> seeds=3,14,15,92 interpolate=true steps=10 out=interp.png
    maxvit-gan sample run=user/maxvit-gan-shapes seeds=0-7            # a Hugging Face Hub repo id

Keys and defaults: maxvit_gan.config.SampleConfig; the logic: maxvit_gan.sampling.run_sample.
"""

from __future__ import annotations

from maxvit_gan.cli.common import run_command


def task(dcfg) -> None:
    from omegaconf import OmegaConf

    from maxvit_gan.sampling import run_sample

    written = run_sample(OmegaConf.to_object(dcfg))
    for path in written[:8]:
        print(f"wrote {path}")
    if len(written) > 8:
        print(f"... and {len(written) - 8} more in {written[0].parent}")


def main(argv: list[str] | None = None) -> None:
    run_command("sample", task, argv)


if __name__ == "__main__":
    main()
