#!/usr/bin/env bash
# Special-token learning speed: tunesmith's <extra_id_N> strategies vs a naive baseline, same data and budget.
#
#   bash bench/special_tokens/run.sh [run.py options]      # e.g. --seeds 0 --arms naive,all --no-results
#
# Writes the synthetic data, the tiny model and every run to bench/work/special_tokens/ (git-ignored),
# prints the table and rewrites bench/special_tokens/results.md (its hand-written analysis section is
# kept). About 8 minutes on 2 free CPU cores, 11 with --references. TS_PYTHON [.venv/bin/python at the repo root] picks the python.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$(dirname "$HERE")")"
TS_PYTHON="${TS_PYTHON:-$REPO/.venv/bin/python}"
[ -x "$TS_PYTHON" ] || { echo "tunesmith's venv python not found at $TS_PYTHON (set TS_PYTHON)"; exit 1; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$TS_PYTHON" "$HERE/run.py" "$@"
