"""Run by tests under `accelerate launch`: train with the given Hydra overrides, then write
this rank's G, D and EMA weights to <out>/rank<r>.safetensors for comparison."""

import os
import sys

from safetensors.torch import save_file

from maxvit_gan.config import compose
from maxvit_gan.training.trainer import Trainer


def main():
    out, overrides = sys.argv[1], sys.argv[2:]
    trainer = Trainer(compose("train", overrides))
    acc = trainer.accelerator
    assert acc.num_processes == int(os.environ.get("WORLD_SIZE", "1")), (acc.num_processes, os.environ.get("WORLD_SIZE"))
    trainer.train()
    tensors = {}
    for name, module in (("G", acc.unwrap_model(trainer.G)), ("D", acc.unwrap_model(trainer.D)), ("EMA", trainer.ema.module)):
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
    os.makedirs(out, exist_ok=True)
    save_file(tensors, os.path.join(out, f"rank{acc.process_index}.safetensors"), metadata={"world": str(acc.num_processes)})


if __name__ == "__main__":
    main()
