"""A run interrupted after a checkpoint and resumed ends with the weights of the uninterrupted run, for the
optimizers whose state Trainer cannot checkpoint by itself: GaLore/APOLLO projectors (reloaded with
weights_only), layer-wise per-weight states and schedules, BAdam's active block and learning rate, Muon's two
inner optimizers under one schedule."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tunesmith.train.run import run_training

FAMILIES = {
    "galore_layerwise": {"use_galore": True, "galore_rank": 8, "galore_layerwise": True, "galore_update_interval": 2},
    "apollo": {"use_apollo": True, "apollo_rank": 8, "apollo_update_interval": 2},
    "badam": {"use_badam": True, "badam_switch_interval": 3},
    "muon": {"use_muon": True},
}


class Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 5:
            raise RuntimeError("simulated crash")


SLOW = ("apollo", "muon")  # their state round trips are covered by fast unit tests (test_optimizers_muon.py)


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f
                                    for f in sorted(FAMILIES)])
def test_resumed_run_matches_the_uninterrupted_one(family, qwen2_model, train_config, tmp_path):
    common = dict(max_steps=6, save_strategy="steps", save_steps=4, learning_rate=2e-3, lr_scheduler_type="linear",
                  weight_decay=0.1, **FAMILIES[family])
    straight = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "straight"), **common))
    cfg = train_config(qwen2_model, output_dir=str(tmp_path / "resumed"), overwrite_output_dir=False, **common)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(cfg, extra_callbacks=[Crash()])
    resumed = run_training(cfg)  # from checkpoint-4: its optimizer state, schedule (and block) continue
    assert resumed.global_step == 6
    a = load_file(str(straight.output_dir / "model.safetensors"))
    b = load_file(str(resumed.output_dir / "model.safetensors"))
    original = load_file(str(qwen2_model / "model.safetensors"))
    moved = 0
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
        moved += not torch.equal(a[name], original[name])
    assert moved > 0
