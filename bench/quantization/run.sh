#!/usr/bin/env bash
# LoRA vs QLoRA (bnb 4-bit, bnb 8-bit, hqq 4-bit) on one model, data and batch: weights held, peak RSS (and CUDA
# peak on a GPU), median step time, loss after N steps.
#
#   bash bench/quantization/run.sh [--steps N] [--batch B] [--no-results]
#
# Model, data and runs go to bench/work/quantization/ (git-ignored); the table is printed and written to
# bench/quantization/results.md. TS_PYTHON [.venv/bin/python at the repo root] picks the python.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$(dirname "$HERE")")"
TS_PYTHON="${TS_PYTHON:-$REPO/.venv/bin/python}"
[ -x "$TS_PYTHON" ] || { echo "tunesmith's venv python not found at $TS_PYTHON (set TS_PYTHON)"; exit 1; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$TS_PYTHON" "$HERE/run.py" "$@"
