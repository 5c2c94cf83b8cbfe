"""Run by tests/test_faults_process.py under `accelerate launch`: write this rank's pid to
<out>/pid<rank>, then train with the given Hydra overrides."""

import os
import sys

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from maxvit_gan.config import register_configs
from maxvit_gan.training.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    out, overrides = sys.argv[1], sys.argv[2:]
    register_configs()
    with initialize_config_dir(config_dir=os.path.join(ROOT, "maxvit_gan", "conf"), version_base="1.3"):
        cfg = OmegaConf.to_object(compose(config_name="train", overrides=overrides))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"pid{os.environ.get('RANK', '0')}"), "w") as f:
        f.write(str(os.getpid()))
    Trainer(cfg).train()


if __name__ == "__main__":
    main()
