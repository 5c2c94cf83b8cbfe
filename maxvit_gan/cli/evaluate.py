"""``maxvit-gan evaluate``: FID (+ KID, IS) and/or SWD of a generator, as papers compute it (Hydra config ``evaluate``).

    maxvit-gan evaluate run=outputs/<run> num_samples=50000 ref=imagenet128
    accelerate launch --multi_gpu --num_processes 8 -m maxvit_gan evaluate run=outputs/<run> ref=dataset
    maxvit-gan evaluate run=outputs/<run> checkpoint=latest ref=dataset write_ref=in128_train_tf.npz
    maxvit-gan evaluate run=USER/NAME ref=/data/imagenet128.zip                      # a Hub id, an export folder
    maxvit-gan evaluate fake=generated/ ref=real/                                    # two folders (or zips)
    maxvit-gan evaluate run=outputs/<run> num_samples=10000 metrics.swd=true metrics.fid=false   # SWD alone: no Inception

Keys and defaults: maxvit_gan.config.EvaluateConfig; the logic: maxvit_gan.evaluation.evaluate.
"""

from __future__ import annotations

from maxvit_gan.cli.common import run_command


def task(dcfg) -> None:
    from accelerate import Accelerator
    from omegaconf import OmegaConf

    from maxvit_gan.evaluation import ResultNotWrittenError, evaluate, format_scores

    cfg = OmegaConf.to_object(dcfg)
    acc = Accelerator(mixed_precision="no")  # metrics run in fp32
    try:
        result = evaluate(cfg, acc.device, acc.is_main_process, acc.num_processes)
    except ResultNotWrittenError as err:  # the work is done: the scores first, then the one-line error
        print(format_scores(err.result), flush=True)
        raise
    if acc.is_main_process:
        print(format_scores(result))
        print(f"wrote {result['json']}")
    acc.end_training()


HINTS = {
    "metrics.mode": "evaluate's feature mode is the top-level key: mode=tf or mode=clean",
    **{f"metrics.fid.{k}": "metrics.fid.* is FID tracking during training; evaluate takes num_samples=, batch_size=, ref="
       " (and metrics.fid=true|false: Inception scores on or off)" for k in ("num_samples", "batch_size", "ref", "every_kimg")},
}


def main(argv: list[str] | None = None) -> None:
    run_command("evaluate", task, argv, hints=HINTS)


if __name__ == "__main__":
    main()
