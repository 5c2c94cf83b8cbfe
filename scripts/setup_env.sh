#!/usr/bin/env bash
# Create .venv (if missing) and install the project with its dev extras. Idempotent.
# pip (not uv/poetry) so that torch/torchvision come from the local wheel cache where one exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import maxvit_gan, torch, accelerate, hydra, timm, pytest, xdist, torchmetrics, tensorboard, nbclient, matplotlib" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch .venv/.installed
fi
