"""Train a MaxViT-generator GAN (the same as `maxvit-gan train`).

    accelerate launch scripts/train_gan.py                       # CPU demo: tiny G on shapes, 32 px
    accelerate launch scripts/train_gan.py experiment=smoke run_dir=outputs/smoke
    accelerate launch scripts/train_gan.py ... resume=auto       # continue the newest checkpoint

Keys and defaults: maxvit_gan/conf/train.yaml, maxvit_gan.config.RunConfig; `--help` lists them.
"""

from maxvit_gan.cli.train import main

if __name__ == "__main__":
    main()
