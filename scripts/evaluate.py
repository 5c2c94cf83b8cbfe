"""FID (+ KID, IS, precision/recall) of a generator or a folder of images (the same as `maxvit-gan evaluate`).

    python scripts/evaluate.py run=outputs/<run> num_samples=50000 ref=imagenet128
    accelerate launch --multi_gpu --num_processes 8 scripts/evaluate.py run=outputs/<run> ref=dataset

Keys and defaults: maxvit_gan.config.EvaluateConfig (`--help`); the logic: maxvit_gan.evaluation.evaluate.
"""

from maxvit_gan.cli.evaluate import main

if __name__ == "__main__":
    main()
