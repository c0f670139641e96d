#!/usr/bin/env bash
# Shared-prompt rows vs separate rows vs LLaMA-Factory (dpo-lora, rm-lora): data and model as run.sh builds
# them, then shared_prompt.py. Knobs: REPS [3], CASES ["dpo-lora rm-lora"], N [240].
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
REPO="$(dirname "$BENCH")"
WORK="$BENCH/work/preference"
TS_PYTHON="${TS_PYTHON:-$REPO/.venv/bin/python}"
TS_CLI="$(dirname "$TS_PYTHON")/tunesmith"
N="${N:-240}"
mkdir -p "$WORK"
bash "$BENCH/preprocess/install_lf.sh"
"$TS_PYTHON" "$HERE/make_data.py" "$WORK/lf_root" --n "$N" --seed 0
MODEL="$WORK/tiny-qwen2"
MODEL_ARGS=(--family qwen2 --vocab-size 4096 --hidden-size 256 --num-layers 6 --intermediate-size 704)
STAMP="$( { sha256sum "$WORK/lf_root/data/bench_dpo.json" | cut -d' ' -f1; echo "${MODEL_ARGS[*]}"; } | sha256sum | cut -d' ' -f1)"
if ! { [ -f "$MODEL/model.safetensors" ] && [ "$(cat "$MODEL/.bench-stamp" 2>/dev/null)" = "$STAMP" ]; }; then
    rm -rf "$MODEL"
    "$TS_CLI" tiny-model "$MODEL" "${MODEL_ARGS[@]}" --corpus "$WORK/lf_root/data"
    echo "$STAMP" > "$MODEL/.bench-stamp"
fi
# shellcheck disable=SC2086
"$TS_PYTHON" "$HERE/shared_prompt.py" --root "$WORK/lf_root" --model "$MODEL" --work "$WORK" \
    --lf-python "$BENCH/.venvs/lf/bin/python" --reps "${REPS:-3}" --cases ${CASES:-dpo-lora rm-lora}
