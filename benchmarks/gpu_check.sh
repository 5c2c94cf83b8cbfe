#!/usr/bin/env bash
# One-shot GPU check (issue #17): paste on a machine with a GPU, from the repository root:
#
#   bash benchmarks/gpu_check.sh                 # extra arguments go to gpu.py, e.g. --presets b
#
# Picks a Python with torch ($PYTHON, else .venv/bin/python, else python3), tries to pip-install
# missing project dependencies (never torch), runs benchmarks/gpu.py under a hard timeout
# (GPU_CHECK_TIMEOUT, default 480 s; gpu.py's own budget is 450 s) and leaves gpu.json, gpu.md and
# gpu.log in $OUT when it is set, else in benchmarks/out/. Exit status: gpu.py's (0 all passed,
# 1 a check or section failed, 2 no GPU / bad arguments, 124 the timeout hit).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DEST=${OUT:-benchmarks/out}
mkdir -p "$DEST"
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "gpu_check: $PY cannot import torch; set PYTHON=/path/to/python (or run scripts/setup_env.sh)" >&2
  exit 2
fi
missing=$("$PY" - <<'PYEOF'
import importlib.util
need = {"accelerate": "accelerate", "hydra": "hydra-core", "omegaconf": "omegaconf", "safetensors": "safetensors",
        "torch_fidelity": "torch-fidelity", "cleanfid": "clean-fid", "PIL": "pillow", "scipy": "scipy", "tqdm": "tqdm"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PYEOF
)
if [ -n "$missing" ]; then
  echo "gpu_check: installing missing packages: $missing"
  timeout 180 "$PY" -m pip install -q --retries 1 --timeout 15 $missing \
    || echo "gpu_check: could not install ($missing); the sections that need them will report it" >&2
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout -k 15 "${GPU_CHECK_TIMEOUT:-480}" \
  "$PY" benchmarks/gpu.py --json "$DEST/gpu.json" "$@" 2>&1 | tee "$DEST/gpu.log"
rc=${PIPESTATUS[0]}
echo "gpu_check: exit $rc; results in $DEST/gpu.json, $DEST/gpu.md and $DEST/gpu.log"
exit "$rc"
