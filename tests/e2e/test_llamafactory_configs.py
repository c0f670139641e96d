"""LLaMA-Factory example configs run unchanged (model path and dataset made local), from a folder laid
out like LLaMA-Factory's repository root (dataset_dir defaults to `data`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunesmith.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llamafactory"


OUTPUT = {"sft": "sft", "pt": "pretrain", "dpo": "dpo", "kto": "kto", "rm": "reward"}


@pytest.mark.parametrize("name,stage", [("qwen3_lora_sft.yaml", "sft"), ("qwen3_lora_pretrain.yaml", "pt"),
                                        ("qwen3_lora_dpo.yaml", "dpo"), ("qwen3_lora_kto.yaml", "kto"),
                                        ("qwen3_lora_reward.yaml", "rm")])
def test_llamafactory_example_runs(name, stage, qwen2_model, data_dir, tmp_path, monkeypatch, capsys):
    shutil.copytree(data_dir, tmp_path / "data")
    config = tmp_path / name
    config.write_text((FIXTURES / name).read_text().replace("MODEL_PATH", str(qwen2_model)))
    monkeypatch.chdir(tmp_path)
    assert main(["train", name]) == 0
    out = tmp_path / "saves/qwen3-4b/lora" / OUTPUT[stage]
    assert (out / "adapter_model.safetensors").exists()
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["stage"] == stage and card["global_step"] >= 3
    assert (out / "training_loss.png").exists() or card["global_step"] < 10  # logging_steps is 10
    err = capsys.readouterr().err
    assert err.count("bf16 requested but no CUDA GPU") <= 1  # one warning on a CPU box, no failure
    if stage == "sft":  # LLaMA-Factory's step count: ceil(ceil(examples / batch) / accumulation) x epochs
        examples, batch, accumulation, epochs = card["examples"], 1, 8, 3
        assert examples == 10  # arith (8) + chat (2), every example its own sequence
        assert card["global_step"] == -(-(-(-examples // batch)) // accumulation) * epochs == 6
