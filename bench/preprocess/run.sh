#!/usr/bin/env bash
# Preprocessing speed, tunesmith vs LLaMA-Factory 0.9.5, side by side in one run.
#
#   bash bench/preprocess/run.sh
#
# Environment knobs (defaults in brackets): N [20000] examples, WORKERS ["1 2"], REPS [3] runs of
# tunesmith and bare encode_batch, LF_REPS [2] runs of LLaMA-Factory, TS_PYTHON [.venv/bin/python at
# the repo root: tunesmith's venv], PROFILE [1] (0 skips the extra cProfile run).
#
# Steps (each prints what it does):
#   1. install LLaMA-Factory 0.9.5 into bench/.venvs/lf (skipped when already there; see install_lf.sh)
#   2. write the synthetic dataset to bench/work/preprocess/lf_root/data (deterministic, seed 0)
#   3. build the tokenizer with `tunesmith tiny-model` trained on that data (skipped when the data
#      and options are unchanged)
#   4. time both frameworks and bare tokenizers (bench.py), print the table, write results.md
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
REPO="$(dirname "$BENCH")"
WORK="$BENCH/work/preprocess"
TS_PYTHON="${TS_PYTHON:-$REPO/.venv/bin/python}"
TS_CLI="$(dirname "$TS_PYTHON")/tunesmith"
LF_PYTHON="$BENCH/.venvs/lf/bin/python"
N="${N:-20000}"
WORKERS="${WORKERS:-1 2}"
REPS="${REPS:-3}"
LF_REPS="${LF_REPS:-2}"
PROFILE="${PROFILE:-1}"

say() { echo "[run] $*"; }

[ -x "$TS_PYTHON" ] || { echo "tunesmith's venv python not found at $TS_PYTHON (set TS_PYTHON)"; exit 1; }
mkdir -p "$WORK"

say "1/4 LLaMA-Factory 0.9.5 venv"
bash "$HERE/install_lf.sh"

say "2/4 synthetic data: $N examples -> $WORK/lf_root/data"
"$TS_PYTHON" "$HERE/make_data.py" "$WORK/lf_root" --n "$N" --seed 0

MODEL="$WORK/tiny-qwen2"
MODEL_ARGS=(--family qwen2 --vocab-size 8000 --hidden-size 64 --num-layers 2)
STAMP="$( { sha256sum "$WORK/lf_root/data/bench_alpaca.json" | cut -d' ' -f1; echo "${MODEL_ARGS[*]}"; } | sha256sum | cut -d' ' -f1)"
if [ -f "$MODEL/tokenizer.json" ] && [ "$(cat "$MODEL/.bench-stamp" 2>/dev/null)" = "$STAMP" ]; then
    say "3/4 tokenizer: $MODEL is up to date with the data; skipping tunesmith tiny-model"
else
    say "3/4 tokenizer: tunesmith tiny-model $MODEL ${MODEL_ARGS[*]} --corpus $WORK/lf_root/data"
    rm -rf "$MODEL"
    "$TS_CLI" tiny-model "$MODEL" "${MODEL_ARGS[@]}" --corpus "$WORK/lf_root/data"
    echo "$STAMP" > "$MODEL/.bench-stamp"
fi

say "4/4 timing (every run a fresh process)"
PROFILE_FLAG=()
[ "$PROFILE" = "0" ] && PROFILE_FLAG=(--no-profile)
# shellcheck disable=SC2086  # WORKERS is a list of numbers
"$TS_PYTHON" "$HERE/bench.py" --root "$WORK/lf_root" --model "$MODEL" --lf-python "$LF_PYTHON" --work "$WORK" \
    --workers $WORKERS --reps "$REPS" --lf-reps "$LF_REPS" "${PROFILE_FLAG[@]}"
