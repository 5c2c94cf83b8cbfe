"""Prepare a dataset zip from an image folder (the same as `maxvit-gan prepare`).

    python scripts/prepare_dataset.py source=/data/imagenet/train dest=/data/in128.zip resolution=128
    python scripts/prepare_dataset.py source=DIR dest=OUT.zip resolution=64 max_images=1000 workers=8

Keys and defaults: maxvit_gan.config.PrepareConfig (`--help`).
"""

from maxvit_gan.cli.prepare import main

if __name__ == "__main__":
    main()
