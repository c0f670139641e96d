#!/usr/bin/env bash
# The main job, from a fresh clone: install, build the offline demo model, fine-tune it on the bundled
# identity data, and show what it answers now. About two minutes on 2 CPU cores; nothing is downloaded
# except Python packages.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
echo "[quickstart] building the offline demo model (Qwen2-style, own BPE tokenizer) in models/tiny-qwen2"
.venv/bin/tunesmith tiny-model models/tiny-qwen2 --family qwen2 --vocab-size 2048 --hidden-size 128 \
  --num-layers 4 --num-heads 4 --num-kv-heads 2 --intermediate-size 384 --corpus data
echo "[quickstart] fine-tuning it: tunesmith train examples/quickstart/tiny_full_sft.yaml"
.venv/bin/tunesmith train examples/quickstart/tiny_full_sft.yaml
echo "[quickstart] what the model answers now (loss curve: saves/tiny-qwen2/full/sft/training_loss.png)"
.venv/bin/python examples/quickstart/ask.py saves/tiny-qwen2/full/sft --base models/tiny-qwen2 2>/dev/null
