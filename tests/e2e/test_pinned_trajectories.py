"""Pinned loss trajectories: the first logged losses and a checksum of the saved weights of short runs on the
tiny models, per stage x method, stored in tests/golden/trajectories.json (torchtune's regression-test style).

A refactor must change no numbers. The stored values were produced by the code before the stage contract
and run plan were introduced; regenerate them only for a change that is meant to alter training, with
`TUNESMITH_UPDATE_TRAJECTORIES=1 pytest tests/e2e/test_pinned_trajectories.py`, and say why in the commit.

Tolerances cover float differences between CPUs (BLAS kernels) after a few steps at moderate learning
rates; any real change of the computation (another batch, loss term, scale or update) moves the losses by
far more, and the checksum weighs every saved value with its own coefficient, so one changed step shows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "trajectories.json"
UPDATE = os.environ.get("TUNESMITH_UPDATE_TRAJECTORIES") == "1"
STEPS = 5

RUNS: dict[str, dict] = {
    "sft_full": dict(model="qwen2", finetuning_type="full", packing=True),
    "sft_full_unpacked_weighted": dict(model="qwen2_untied", finetuning_type="full", packing=False,
                                       add_special_tokens="<tool>", token_loss_weights="<|im_end|>=2.0",
                                       dataset="arith,chat"),
    "sft_lora": dict(model="llama3", finetuning_type="lora", template="llama3", lora_rank=4, packing=True),
    "sft_freeze": dict(model="qwen2", finetuning_type="freeze", freeze_trainable_layers=2, packing=True),
    "pt_full": dict(model="qwen2", stage="pt", dataset="pt"),
    "rm_lora": dict(model="qwen2", stage="rm", dataset="pairs", finetuning_type="lora", lora_rank=4),
    "dpo_full": dict(model="qwen2", stage="dpo", dataset="pairs", pref_ftx=0.5),
    "dpo_lora": dict(model="qwen2", stage="dpo", dataset="pairs", finetuning_type="lora", lora_rank=4),
    "kto_full": dict(model="qwen2", stage="kto", dataset="feedback"),
    "ppo_full": dict(model="qwen2", stage="ppo", reward_model_type="api", max_new_tokens=6,
                     per_device_train_batch_size=8, learning_rate=3e-4),
}


@pytest.fixture(scope="module")
def reward_url(score_server):
    with score_server(lambda reply: sum(c.isdigit() for c in reply)) as url:
        yield url


def checksum(out: Path) -> list[float]:
    """(Σ w, Σ c·w) over every saved tensor, c a fixed ramp in [-1, 1] per tensor, in float64."""
    plain = weighted = 0.0
    for path in sorted(out.glob("*.safetensors")):
        tensors = load_file(str(path))
        for name in sorted(tensors):
            w = tensors[name].double().reshape(-1)
            plain += float(w.sum())
            weighted += float((w * torch.linspace(-1.0, 1.0, w.numel(), dtype=torch.float64)).sum())
    return [plain, weighted]


def trajectory(name: str, request, train_config, reward_url) -> dict:
    spec = dict(RUNS[name])
    model = request.getfixturevalue(f"{spec.pop('model')}_model")
    if spec.get("stage") == "ppo":
        spec["reward_model"] = reward_url
    settings = {"max_steps": STEPS, "learning_rate": 5e-3, "lr_scheduler_type": "cosine", "warmup_steps": 1, **spec}
    out = run_training(train_config(model, **settings)).output_dir
    losses = [r["loss"] for r in read_log(out) if "loss" in r]
    assert len(losses) == STEPS
    return {"losses": losses, "checksum": checksum(out)}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_trajectory_is_unchanged(name, request, train_config, reward_url):
    got = trajectory(name, request, train_config, reward_url)
    stored = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
    if UPDATE:
        stored[name] = got
        GOLDEN.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return
    assert name in stored, f"no pinned trajectory for {name}; run with TUNESMITH_UPDATE_TRAJECTORIES=1"
    want = stored[name]
    assert got["losses"] == pytest.approx(want["losses"], abs=2e-4), f"{name}: losses {got['losses']}"
    assert got["checksum"] == pytest.approx(want["checksum"], rel=1e-5, abs=1e-4), f"{name}: {got['checksum']}"
