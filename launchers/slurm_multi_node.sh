#!/bin/bash
# Multi-node training on SLURM: one task per node, `accelerate launch` starts 8 processes per node.
#   sbatch launchers/slurm_multi_node.sh
# Preemption: SLURM sends SIGTERM; the trainer finishes its step, saves a checkpoint and exits.
# `--requeue` + `resume=auto` with a fixed run directory makes the job continue where it stopped.
#SBATCH --job-name=maxvit-gan-in128
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --requeue
#SBATCH --signal=TERM@120
#SBATCH --output=slurm-%j.out
set -euo pipefail

RUN_DIR=${RUN_DIR:-outputs/imagenet128}
DATA=${DATA:-/data/imagenet128.zip}
MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)

srun --kill-on-bad-exit=1 bash -c "source .venv/bin/activate && accelerate launch \
  --multi_gpu --num_machines $SLURM_NNODES --num_processes $((SLURM_NNODES * 8)) \
  --machine_rank \$SLURM_NODEID --main_process_ip $MAIN_IP --main_process_port 29500 \
  --rdzv_backend static --same_network \
  scripts/train_gan.py experiment=imagenet128 data.path=$DATA hydra.run.dir=$RUN_DIR resume=auto"
