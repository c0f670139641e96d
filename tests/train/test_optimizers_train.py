"""Each optimizer family trains through Trainer's loop (tunesmith's trainer builds it, the gates still hold):
a few steps on the tiny model, the loss finite and falling or the weights moving, gated rows bit-identical."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.train.run import run_training

FAMILIES = {
    "galore": {"use_galore": True, "galore_rank": 8, "galore_update_interval": 2},
    "galore_layerwise": {"use_galore": True, "galore_rank": 8, "galore_layerwise": True},
    "apollo": {"use_apollo": True, "apollo_rank": 8},
    "badam_ratio": {"use_badam": True, "badam_mode": "ratio", "badam_update_ratio": 0.2},
    "adam_mini": {"use_adam_mini": True},
    "muon": {"use_muon": True},
    "loraplus": {"finetuning_type": "lora", "loraplus_lr_ratio": 16.0, "lora_rank": 4},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_trains_in_the_trainer_loop(family, train_config, qwen2_untied_model, tmp_path):
    keys = {"max_steps": 4, "learning_rate": 2e-3, "lr_scheduler_type": "linear", "warmup_steps": 1,
            "freeze_tokens": "<|im_start|>", "freeze_token_steps": 100, **FAMILIES[family]}
    if family == "loraplus":
        keys.pop("freeze_tokens"), keys.pop("freeze_token_steps")
    result = run_training(train_config(qwen2_untied_model, **keys))
    out = tmp_path / "out"
    logs = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in logs if "loss" in entry]
    assert result.global_step == 4 and len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert [entry["lr"] for entry in logs if "loss" in entry][:2] == [0.0, 2e-3]  # warm-up, then lr
    if family == "loraplus":
        assert (out / "adapter_model.safetensors").exists()
        return
    trained, original = load_file(str(out / "model.safetensors")), load_file(str(qwen2_untied_model /
                                                                                "model.safetensors"))
    assert not torch.equal(trained["model.layers.1.mlp.up_proj.weight"], original["model.layers.1.mlp.up_proj.weight"])
    from transformers import AutoTokenizer

    gated = AutoTokenizer.from_pretrained(qwen2_untied_model).convert_tokens_to_ids("<|im_start|>")
    assert torch.equal(trained["model.embed_tokens.weight"][gated], original["model.embed_tokens.weight"][gated])
    assert not torch.equal(trained["model.embed_tokens.weight"], original["model.embed_tokens.weight"]) or \
        family == "badam_ratio"  # BAdam never trains the embedding; the others train its other rows


@pytest.mark.parametrize("layerwise", ["galore_layerwise", "apollo_layerwise"])
def test_layerwise_hooks_run_after_the_tensor_gates(layerwise, train_config, qwen2_model, tmp_path):
    """In the run's own callback order the layer-wise step hooks come after the gates' hooks: a tensor that
    `unfreeze_schedule` keeps closed has its gradient dropped before its step, so it stays bit-identical while
    the open top layer trains."""
    family = layerwise.split("_")[0]
    run_training(train_config(qwen2_model, max_steps=3, learning_rate=2e-3, unfreeze_schedule="top1@0,all@100",
                              **{f"use_{family}": True, f"{family}_rank": 8, layerwise: True}))
    trained = load_file(str(tmp_path / "out" / "model.safetensors"))
    original = load_file(str(qwen2_model / "model.safetensors"))
    assert torch.equal(trained["model.layers.0.mlp.up_proj.weight"], original["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(trained["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
    assert not torch.equal(trained["model.layers.3.mlp.up_proj.weight"], original["model.layers.3.mlp.up_proj.weight"])
