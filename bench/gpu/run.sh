#!/usr/bin/env bash
# One device call: tunesmith's CUDA-only tests (tests/gpu), then the GPU SFT throughput of tunesmith and
# LLaMA-Factory 0.9.5, side by side on the same model
# (Qwen2.5-0.5B shape, random init, bf16), data (4,000 synthetic alpaca examples), batch (8), cutoff (2048) and
# token meter (harness/common.py), then the table and the ratios against the targets (report.py).
#
# On the GPU machine:  bash bench/gpu/run.sh          (carry .whl from bench/gpu/fetch_wheels.sh; ~8 minutes)
# CPU smoke test:      BENCH_TINY=1 bash bench/gpu/run.sh   (tiny model; LLaMA-Factory from bench/.venvs/lf)
# Results: $OUT (or bench/work/gpu) gets summary.md, results.tgz (JSONs and logs); commit summary.md as
# bench/gpu/results-<gpu>-<date>.md.  Knobs: BUDGET_S (default 560), WINDOW_S (20), RUNS (see below).
# Device call: command "bash bench/gpu/run.sh", carry [".whl"], timeout_s 600.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
H=$REPO/bench/gpu
OUT=${OUT:-$REPO/bench/work/gpu}
RES=${RES:-/tmp/bench_res}
ASSETS=${ASSETS:-/tmp/bench_assets}
BUDGET_S=${BUDGET_S:-560}
WINDOW_S=${WINDOW_S:-20}
T0=$(date +%s)
mkdir -p "$OUT" "$RES/logs"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf \
       TOKENIZERS_PARALLELISM=false
elapsed() { echo $(( $(date +%s) - T0 )); }
pack() { (cd "$RES" && tar czf "$OUT/results.tgz" .) 2>/dev/null; }
run() {  # run NAME TIMEOUT CMD...: one step, logged, time-guarded; results re-packed after each
  local name=$1 tmo=$2; shift 2
  local left=$(( BUDGET_S - $(elapsed) ))
  if [ "$left" -lt 45 ]; then echo "SKIP $name (only ${left}s left)"; return; fi
  [ "$tmo" -gt "$left" ] && tmo=$left
  echo "=== $name (t=$(elapsed)s, timeout ${tmo}s)"
  timeout -k 5 "$tmo" "$@" > "$RES/logs/$name.log" 2>&1; local rc=$?
  grep -E "^(RESULT|MATMUL)" "$RES/logs/$name.log"
  [ $rc -ne 0 ] && { echo "!! $name rc=$rc"; tail -n 25 "$RES/logs/$name.log"; }
  pack
}

if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  DEVICE=cuda
  for set in lf ts; do  # each framework in its own environment
    [ -f /tmp/site-$set/.installed ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site-$set "$REPO"/.whl/$set/*.whl && touch /tmp/site-$set/.installed; } \
      || { echo "wheel install ($set) failed: run bench/gpu/fetch_wheels.sh here and carry .whl"; exit 1; }
  done
  LF_PY="env PYTHONPATH=/tmp/site-lf python3"
  TS_PY="env PYTHONPATH=/tmp/site-ts:$REPO/src python3"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit,memory.total --format=csv | tee "$RES/nvidia-smi.txt"
  run matmul 60 python3 "$H/harness/matmul.py" --out "$RES/matmul.json"
  (cd "$REPO" && run gpu_tests 150 $TS_PY -m pytest -q tests/gpu -rs); tail -n 4 "$RES/logs/gpu_tests.log"
else
  DEVICE=cpu
  [ "${BENCH_TINY:-}" = 1 ] || { echo "no CUDA GPU: run the CPU smoke test with BENCH_TINY=1"; exit 1; }
  bash "$REPO/bench/preprocess/install_lf.sh" >/dev/null
  LF_PY="$REPO/bench/.venvs/lf/bin/python"
  TS_PY="$REPO/.venv/bin/python"
  LF_SETS="bf16=false"  # LLaMA-Factory refuses bf16 without a GPU; tunesmith falls back by itself
  LOSS_ARGS="--tokens 1024 --vocab 8192 --reps 2"
fi
echo "device $DEVICE, setup done t=$(elapsed)s"
# the assets are written with LLaMA-Factory's transformers (the older one; tunesmith's newer one reads them)
[ -f "$ASSETS/assets.json" ] || run assets 150 $LF_PY "$H/harness/make_assets.py" --out "$ASSETS" --device $DEVICE
cp "$ASSETS/assets.json" "$RES/" 2>/dev/null

LF="$LF_PY $H/harness/run_llamafactory.py --assets $ASSETS --skip-steps 10 --window-s $WINDOW_S --max-total-s 110"
# tunesmith's first steps compile the decoder layers (twice: then with dynamic shapes): more time before the window
TS="$TS_PY $H/run_tunesmith.py --assets $ASSETS --skip-steps 10 --window-s $WINDOW_S --max-total-s 160"
# RUNS: which runs, in order (the targets' runs first, then attribution variants while the budget lasts).
# lf:lora_neat_packing is LLaMA-Factory's LoRA on the same packed 8 x 2048 rows (the same-batch memory check).
# loss_path times the loss alone (standard vs chunked, loss_path.py).
RUNS=${RUNS:-"ts:full ts:full_packed lf:neat_packing lf:full ts:lora lf:lora loss_path lf:lora_neat_packing ts:full_eager ts:full_sdpa"}
for item in $RUNS; do
  fw=${item%%:*} variant=${item#*:}
  if [ "$item" = loss_path ]; then run loss_path 90 $TS_PY "$H/loss_path.py" ${LOSS_ARGS:-}; cat "$RES/logs/loss_path.log"
  elif [ "$fw" = ts ]; then run "ts_$variant" 200 $TS --variant "$variant" --out "$RES/ts_$variant.json"
  elif [ "$variant" = lora_neat_packing ]; then
    run "lf_$variant" 150 $LF --variant lora --name "$variant" --out "$RES/lf_$variant.json" --set neat_packing=true ${LF_SETS:-}
  else run "lf_$variant" 150 $LF --variant "$variant" --out "$RES/lf_$variant.json" ${LF_SETS:+--set $LF_SETS}; fi
done
$TS_PY "$H/report.py" "$RES" | tee "$OUT/summary.md"
[ -f "$RES/logs/loss_path.log" ] && { echo; cat "$RES/logs/loss_path.log"; } >> "$OUT/summary.md"
pack
echo "done t=$(elapsed)s"
