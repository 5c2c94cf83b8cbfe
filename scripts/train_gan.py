"""Train a MaxViT-generator GAN.

    accelerate launch scripts/train_gan.py                       # CPU demo: tiny G on shapes, 32 px
    accelerate launch scripts/train_gan.py experiment=smoke hydra.run.dir=outputs/smoke
    accelerate launch scripts/train_gan.py ... resume=auto       # continue the newest checkpoint
"""

from __future__ import annotations

import hydra
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from maxvit_gan.config import RunConfig, register_configs
from maxvit_gan.launch import quiet_hydra_on_other_ranks
from maxvit_gan.rundir import RunDir
from maxvit_gan.training.checkpoint import CheckpointError, CheckpointWriteError
from maxvit_gan.training.lock import RunDirLockedError
from maxvit_gan.training.trainer import NonFiniteLossError, PeerLostError, Trainer

register_configs()


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(dcfg: DictConfig) -> None:
    cfg: RunConfig = OmegaConf.to_object(dcfg)
    accelerator = Accelerator(
        mixed_precision=cfg.train.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
    )
    run_dir = [HydraConfig.get().runtime.output_dir if accelerator.is_main_process else None]
    broadcast_object_list(run_dir)  # every rank uses rank 0's directory
    cfg.run_dir = str(run_dir[0])
    try:
        trainer = Trainer(cfg, accelerator)  # locks the run dir, checks the config and the checkpoint to resume
    except (RunDirLockedError, CheckpointError) as e:
        accelerator.print(f"ERROR: {e}")
        raise SystemExit(2) from None
    if accelerator.is_main_process:
        RunDir(cfg.run_dir).write_config(cfg)  # only now: a refused start leaves the run's config as it was
    try:
        result = trainer.train()
    except (NonFiniteLossError, CheckpointError, CheckpointWriteError, PeerLostError) as e:
        accelerator.print(f"ERROR: {e}")
        raise SystemExit(3) from None
    accelerator.print(f"Done: step {result['step']}, kimg {result['kimg']:.3f}; outputs in {cfg.run_dir}")
    accelerator.end_training()


if __name__ == "__main__":
    quiet_hydra_on_other_ranks()
    main()
