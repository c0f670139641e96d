#!/usr/bin/env bash
# Peak memory and step time of AdamW, GaLore, APOLLO, BAdam, Adam-mini and Muon on the same full fine-tune.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python bench/optimizers/bench.py
