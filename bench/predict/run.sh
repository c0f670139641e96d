#!/usr/bin/env bash
# Predict throughput (generated tokens/s), tunesmith vs LLaMA-Factory 0.9.5, same model, data and config.
#
#   bash bench/predict/run.sh
#
# Environment knobs: N [48] evaluation examples, MAX_NEW [64] max_new_tokens, BATCHES ["1,8"]
# per_device_eval_batch_size values,
# TS_PYTHON [.venv/bin/python at the repo root].
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH="$(dirname "$HERE")"
REPO="$(dirname "$BENCH")"
WORK="$BENCH/work/predict"
TS_PYTHON="${TS_PYTHON:-$REPO/.venv/bin/python}"
TS_CLI="$(dirname "$TS_PYTHON")/tunesmith"
LF_PYTHON="$BENCH/.venvs/lf/bin/python"
N="${N:-48}"
MAX_NEW="${MAX_NEW:-64}"
BATCHES="${BATCHES:-1,8}"
say() { echo "[run] $*"; }
mkdir -p "$WORK"

say "1/4 LLaMA-Factory 0.9.5 venv"
bash "$BENCH/preprocess/install_lf.sh"
# LLaMA-Factory's `metrics` extra (BLEU / ROUGE of do_predict), as tunesmith's `eval` extra pins them
"$LF_PYTHON" -c "import jieba, nltk, rouge_chinese" 2>/dev/null ||
    "$LF_PYTHON" -m pip install -q jieba==0.42.1 nltk==3.10.4 rouge-chinese==1.0.3

say "2/4 evaluation data: $N alpaca examples -> $WORK/data"
"$TS_PYTHON" "$HERE/make_data.py" "$WORK" --n "$N" --seed 0

MODEL="$WORK/tiny-qwen2"
if [ ! -f "$MODEL/model.safetensors" ]; then
    say "3/4 model: tunesmith tiny-model $MODEL (qwen2, vocab 4096, hidden 256, 6 layers)"
    "$TS_CLI" tiny-model "$MODEL" --family qwen2 --vocab-size 4096 --hidden-size 256 --num-layers 6 \
        --intermediate-size 704 --corpus "$WORK/data/bench_predict.json"
else
    say "3/4 model: $MODEL exists"
fi

sed -e "s#max_new_tokens: 64#max_new_tokens: $MAX_NEW#" -e "s#MODEL#$MODEL#" -e "s#DATA#$WORK/data#" -e "s#OUT#$WORK/out#" "$HERE/predict.yaml" > "$WORK/predict.yaml"
say "4/4 timing (every run a fresh process)"
"$TS_PYTHON" "$HERE/bench.py" --config "$WORK/predict.yaml" --work "$WORK" --ts-python "$TS_PYTHON" \
    --lf-python "$LF_PYTHON" --batches "$BATCHES" "$@"
