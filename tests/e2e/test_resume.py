"""Resume continues where a run stopped; a finished or foreign output_dir is never clobbered."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tunesmith.config.errors import ConfigError
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training


class Crash(TrainerCallback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise RuntimeError("simulated crash")


def test_interrupted_run_resumes_to_the_same_weights(qwen2_model, train_config, tmp_path):
    common = dict(max_steps=10, save_strategy="steps", save_steps=5, learning_rate=5e-3,
                  lr_scheduler_type="linear", weight_decay=0.1)
    straight = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "straight"), **common))

    cfg = train_config(qwen2_model, output_dir=str(tmp_path / "resumed"), overwrite_output_dir=False, **common)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(cfg, extra_callbacks=[Crash(at=7)])
    (tmp_path / "resumed" / "checkpoint-9").mkdir()  # a half-written checkpoint (no completion marker)
    resumed = run_training(cfg)  # output_dir holds checkpoint-5: continue from there

    assert resumed.global_step == 10
    a = load_file(str(straight.output_dir / "model.safetensors"))
    b = load_file(str(resumed.output_dir / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    steps = [r["current_steps"] for r in read_log(resumed.output_dir) if "loss" in r]
    assert steps == list(range(1, 11))  # lines past the checkpoint were replaced, none duplicated


def test_non_empty_output_dir_is_refused_without_overwrite(qwen2_model, train_config, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("user's file")
    with pytest.raises(ConfigError, match="already exists and is not empty; set `overwrite_output_dir: true`"):
        run_training(train_config(qwen2_model, output_dir=str(out), overwrite_output_dir=False))
    assert (out / "notes.txt").read_text() == "user's file"


def test_resume_true_without_checkpoint_is_an_error(qwen2_model, train_config, tmp_path):
    with pytest.raises(ConfigError, match="holds no complete checkpoint"):
        run_training(train_config(qwen2_model, output_dir=str(tmp_path / "x"), resume_from_checkpoint=True))
