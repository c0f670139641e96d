#!/usr/bin/env bash
# Preference-training speed (dpo, rm), tunesmith vs LLaMA-Factory 0.9.5, side by side in one run.
#
#   bash bench/preference/run.sh
#
# Environment knobs (defaults in brackets): N [240] pairs in the data, STEPS [30] optimizer steps of
# BATCH [4] pairs per run, CASES ["dpo-lora dpo-full rm-lora"], REPS [3] runs of tunesmith and LF_REPS
# [3] runs of LLaMA-Factory per case, TS_PYTHON [.venv/bin/python at the repo root: tunesmith's venv],
# PROFILE [1] (0 skips the extra cProfile run of each framework).
#
# Steps (each prints what it does):
#   1. install LLaMA-Factory 0.9.5 into bench/.venvs/lf (skipped when already there; see
#      bench/preprocess/install_lf.sh)
#   2. write the synthetic ranking data to bench/work/preference/lf_root/data (deterministic, seed 0)
#   3. build the model with `tunesmith tiny-model`, its tokenizer trained on that data (skipped when the
#      data and options are unchanged)
#   4. time both frameworks (bench.py), print the table, write results.md
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
REPO="$(dirname "$BENCH")"
WORK="$BENCH/work/preference"
TS_PYTHON="${TS_PYTHON:-$REPO/.venv/bin/python}"
TS_CLI="$(dirname "$TS_PYTHON")/tunesmith"
LF_PYTHON="$BENCH/.venvs/lf/bin/python"
N="${N:-240}"
STEPS="${STEPS:-30}"
BATCH="${BATCH:-4}"
CASES="${CASES:-dpo-lora dpo-full rm-lora}"
REPS="${REPS:-3}"
LF_REPS="${LF_REPS:-3}"
PROFILE="${PROFILE:-1}"

say() { echo "[run] $*"; }

[ -x "$TS_PYTHON" ] || { echo "tunesmith's venv python not found at $TS_PYTHON (set TS_PYTHON)"; exit 1; }
mkdir -p "$WORK"

say "1/4 LLaMA-Factory 0.9.5 venv"
bash "$BENCH/preprocess/install_lf.sh"

say "2/4 synthetic ranking data: $N pairs -> $WORK/lf_root/data"
"$TS_PYTHON" "$HERE/make_data.py" "$WORK/lf_root" --n "$N" --seed 0

MODEL="$WORK/tiny-qwen2"
MODEL_ARGS=(--family qwen2 --vocab-size 4096 --hidden-size 256 --num-layers 6 --intermediate-size 704)
STAMP="$( { sha256sum "$WORK/lf_root/data/bench_dpo.json" | cut -d' ' -f1; echo "${MODEL_ARGS[*]}"; } | sha256sum | cut -d' ' -f1)"
if [ -f "$MODEL/model.safetensors" ] && [ "$(cat "$MODEL/.bench-stamp" 2>/dev/null)" = "$STAMP" ]; then
    say "3/4 model: $MODEL is up to date with the data; skipping tunesmith tiny-model"
else
    say "3/4 model: tunesmith tiny-model $MODEL ${MODEL_ARGS[*]} --corpus $WORK/lf_root/data"
    rm -rf "$MODEL"
    "$TS_CLI" tiny-model "$MODEL" "${MODEL_ARGS[@]}" --corpus "$WORK/lf_root/data"
    echo "$STAMP" > "$MODEL/.bench-stamp"
fi

say "4/4 timing (every run a fresh process)"
PROFILE_FLAG=()
[ "$PROFILE" = "0" ] && PROFILE_FLAG=(--no-profile)
# shellcheck disable=SC2086  # CASES is a list of names
"$TS_PYTHON" "$HERE/bench.py" --root "$WORK/lf_root" --model "$MODEL" --model-args "${MODEL_ARGS[*]}" \
    --lf-python "$LF_PYTHON" --work "$WORK" --cases $CASES --max-steps "$STEPS" --batch "$BATCH" \
    --reps "$REPS" --lf-reps "$LF_REPS" "${PROFILE_FLAG[@]}"
