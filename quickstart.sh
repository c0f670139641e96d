#!/usr/bin/env bash
# The main job, from a fresh clone: install, build the offline demo model, fine-tune it on the bundled
# identity data, and show what it answers now; then the same for a tiny vision-language model (Qwen2-VL) on the
# bundled images. About two minutes on 2 CPU cores; nothing is downloaded except Python packages.
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
echo "[quickstart] second example: a tiny Qwen2-VL model fine-tuned on the bundled images (data/mllm_demo.json)"
.venv/bin/tunesmith tiny-model models/tiny-qwen2-vl --family qwen2_vl
.venv/bin/tunesmith train examples/quickstart/tiny_vl_full_sft.yaml
for pair in "1.jpg|Which shapes are in the picture?" "2.jpg|What shape is this?" "3.jpg|Please describe this image"; do
  image=${pair%%|*} question=${pair#*|}
  echo "[quickstart] $image, \"$question\":"
  .venv/bin/tunesmith chat saves/tiny-qwen2-vl/full/sft --image "data/mllm_demo_data/$image" --query "$question" \
    temperature=0 2>/dev/null
done
