#!/usr/bin/env bash
# Run the test suite (offline, CPU). Sets up .venv first if needed. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
