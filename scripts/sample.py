"""Draw images from a trained generator (the same as `maxvit-gan sample`).

    python scripts/sample.py run=outputs/<run> seeds=0-63 out=grid.png
    python scripts/sample.py run=outputs/<run> seeds=0-63 truncation=0.7 classes=[0,2] rows=4
    python scripts/sample.py run=outputs/<run> checkpoint=latest seeds=0-15 outdir=samples/
    python scripts/sample.py run=outputs/<run> seeds=3,14,15,92 interpolate=true steps=10 out=interp.png

Keys and defaults: maxvit_gan.config.SampleConfig (`--help`); the logic: maxvit_gan.sampling.run_sample.
"""

from maxvit_gan.cli.sample import main

if __name__ == "__main__":
    main()
