"""LLaMA-Factory's examples/extras optimizer configs (GaLore, APOLLO, BAdam, Adam-mini, Muon, LoRA+) run unchanged
on the tiny models (model path and dataset made local), and the run used the optimizer it names. The files are
unchanged; the command line caps the run at a few steps (`max_steps=2`), their 3 epochs being slow on 2 cores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunesmith.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory" / "extras"

# fixture -> (tiny model, output dir of the YAML, what the log says about the optimizer)
SLOW = ("badam", "adam_mini", "muon", "loraplus")  # gradient_accumulation_steps 8: 8 micro-batches per step; the
# fast tests of tests/train/test_optimizers_*.py train the same optimizers through the same loop
EXAMPLES = {
    "galore_llama3_full_sft.yaml": ("llama3", "saves/llama3-8b/full/sft", "layer-wise GaLore"),
    "apollo_llama3_full_sft.yaml": ("llama3", "saves/llama3-8b/full/sft", "layer-wise APOLLO"),
    "badam_llama3_full_sft.yaml": ("llama3", "saves/llama3-8b/full/sft", "BAdam layer-wise"),
    "adam_mini_qwen2_full_sft.yaml": ("qwen2", "saves/qwen2-1_5b/full/sft", "Adam-mini optimizer"),
    "muon_qwen2_full_sft.yaml": ("qwen2", "saves/qwen2-1_5b/full/sft", "Muon for"),
    "loraplus_llama3_lora_sft.yaml": ("llama3", "saves/llama3-8b/lora/sft", "LoRA+: B matrices"),
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith(SLOW) else n
                                  for n in sorted(EXAMPLES)])
def test_llamafactory_optimizer_example_runs(name, request, data_dir, tmp_path, monkeypatch, caplog):
    family, output, said = EXAMPLES[name]
    model = request.getfixturevalue(f"{family}_model")
    shutil.copytree(data_dir, tmp_path / "data")
    (tmp_path / name).write_text((FIXTURES / name).read_text().replace("MODEL_PATH", str(model)))
    monkeypatch.chdir(tmp_path)
    caplog.set_level("INFO")
    assert main(["train", name, "max_steps=2"]) == 0
    out = tmp_path / output
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["global_step"] == 2 and card["train_loss"] == card["train_loss"]  # finite (nan != nan)
    assert said in caplog.text
    assert (out / ("adapter_model.safetensors" if "lora" in name else "model.safetensors")).exists()
