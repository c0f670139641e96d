#!/usr/bin/env bash
# sft batching layouts on the CPU (padding-free default vs packed vs padded); writes bench/batching/results.md
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/setup.sh >/dev/null
HF_HUB_OFFLINE=1 .venv/bin/python bench/batching/run.py "$@"
