"""FID (+ KID, IS) of a run's EMA generator, as papers compute it.

    python scripts/evaluate.py run=outputs/<run> num_samples=50000 ref=imagenet128
    accelerate launch --multi_gpu --num_processes 8 scripts/evaluate.py run=outputs/<run> ref=/data/VIRTUAL_imagenet128_labeled.npz
    python scripts/evaluate.py run=outputs/<run> ref=dataset write_ref=in128_train_tf.npz   # also save the reference

Keys and defaults: maxvit_gan.config.EvaluateConfig (conf/evaluate.yaml).
"""

from __future__ import annotations

import hydra
from accelerate import Accelerator
from omegaconf import OmegaConf

from maxvit_gan.config import EvaluateConfig, register_configs
from maxvit_gan.evaluation import evaluate

register_configs()


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(dcfg) -> None:
    cfg: EvaluateConfig = OmegaConf.to_object(dcfg)
    acc = Accelerator(mixed_precision="no")  # metrics run in fp32
    result = evaluate(cfg, acc.device, acc.is_main_process, acc.num_processes)
    if acc.is_main_process:
        scores = {k: v for k, v in result.items() if k.startswith(("fid", "kid", "is"))}
        print("  ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float)))
        print(f"written {result['json']}")
    acc.end_training()


if __name__ == "__main__":
    main()
