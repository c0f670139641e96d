#!/usr/bin/env bash
# Create .venv at the repository root with tunesmith (editable) and its pinned dependencies.
# Idempotent: a second run only re-checks. torch is installed first from its pinned CPU build so that
# nothing pulls a multi-GB CUDA build on a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tunesmith-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing torch 2.13.0 and tunesmith with its pinned dependencies (a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[dev,serve]"
  touch "$stamp"
fi
.venv/bin/tunesmith version >/dev/null
echo "[setup] .venv ready: $(.venv/bin/tunesmith version) ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
