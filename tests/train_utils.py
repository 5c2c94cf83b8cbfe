"""In-process helpers for training tests: compose the Hydra config, build a fresh Trainer."""

from pathlib import Path

from accelerate.state import AcceleratorState, GradientState
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from maxvit_gan.config import CONFIG_DIR, register_configs
from maxvit_gan.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


def run_config(run_dir, *overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=smoke", "data.shapes_num_images=64",
                                                      "train.log_with=none", *overrides])  # fmt: skip
    cfg = OmegaConf.to_object(cfg)
    cfg.run_dir = str(run_dir)
    return cfg


def fresh_trainer(cfg) -> Trainer:
    """Accelerate keeps process-wide singletons: reset them so each Trainer starts clean."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return Trainer(cfg)


def model_state(trainer) -> dict:
    """Every weight of G, D and the EMA generator, cloned (for bit-exact comparisons)."""
    acc = trainer.accelerator
    out = {}
    for name, module in (("G", acc.unwrap_model(trainer.G)), ("D", acc.unwrap_model(trainer.D)), ("EMA", trainer.ema.module)):
        out.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return out


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`maxvit-gan ARGV...` in this process: (exit code, stdout, stderr)."""
    from maxvit_gan.cli import main

    code = 0
    try:
        main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
