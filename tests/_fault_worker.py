"""Run by tests/test_faults_process.py under `accelerate launch`: write this rank's pid to
<out>/pid<rank>, then train with the given Hydra overrides."""

import os
import sys

from maxvit_gan.config import compose
from maxvit_gan.training.trainer import Trainer


def main():
    out, overrides = sys.argv[1], sys.argv[2:]
    cfg = compose("train", overrides)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"pid{os.environ.get('RANK', '0')}"), "w") as f:
        f.write(str(os.getpid()))
    Trainer(cfg).train()


if __name__ == "__main__":
    main()
