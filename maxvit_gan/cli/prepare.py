"""``maxvit-gan prepare``: an image folder -> a dataset zip (StyleGAN2-ADA format, ADM center crop).

    maxvit-gan prepare source=/data/imagenet/train dest=/data/in128.zip resolution=128
    maxvit-gan prepare source=DIR dest=OUT.zip resolution=64 max_images=1000 workers=8

Keys and defaults: maxvit_gan.config.PrepareConfig. Stopped by SIGTERM (`timeout`, SLURM) or
Ctrl-C: the temporary zip is removed, one ``ERROR:`` line, exit status 128 + the signal number
(143, 130), as a shell reports a process killed by that signal.
"""

from __future__ import annotations

import signal
import sys

from maxvit_gan.cli.common import run_command


def task(dcfg) -> None:
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from maxvit_gan.data.prepare import PrepareStopped, format_report, prepare_dataset

    cfg = OmegaConf.to_object(dcfg)
    try:
        result = prepare_dataset(**asdict(cfg))
    except (PrepareStopped, KeyboardInterrupt) as err:
        signum = err.signum if isinstance(err, PrepareStopped) else signal.SIGINT
        print(f"ERROR: prepare: stopped by {signal.Signals(signum).name}; the temporary zip was removed, "
              f"{cfg.dest} was not written", file=sys.stderr, flush=True)  # fmt: skip
        raise SystemExit(128 + signum) from None
    print(format_report(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    run_command("prepare", task, argv)


if __name__ == "__main__":
    main()
