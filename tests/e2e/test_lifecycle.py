"""What a run does with its output_dir over its life: a diverged run stops without saving broken weights; a
checkpoint is marked complete before older ones are rotated out; a fresh start with overwrite unmarks an earlier
run's checkpoints; a finished run is not trained again; a resume with settings that change what is trained is
refused, listing them, while logging, saving and speed settings may change."""

from __future__ import annotations

import json
import logging
import math

import pytest
from transformers import TrainerCallback

from tunesmith.config.errors import ConfigError
from tunesmith.train.callbacks.checkpoint_marker import MARKER, SETTINGS, checkpoints, rotate
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training
from tunesmith.train.trainer import TrainingDiverged


@pytest.mark.parametrize("lr", [1e12, 1e30])
def test_a_diverged_run_stops_and_saves_no_broken_weights(lr, qwen2_model, train_config, tmp_path):
    cfg = train_config(qwen2_model, learning_rate=lr, max_steps=8, save_strategy="steps", save_steps=1)
    with pytest.raises(TrainingDiverged, match=r"training diverged .*loss nan.*lower it") as err:
        run_training(cfg)
    out = tmp_path / "out"
    assert not (out / "model.safetensors").exists() and not (out / "tunesmith.json").exists()
    complete = [step for step, _, done in checkpoints(out) if done]
    assert complete and f"checkpoint-{complete[-1]}" in str(err.value)  # the last good one is named
    from safetensors.torch import load_file
    import torch

    good = load_file(str(out / f"checkpoint-{complete[-1]}" / "model.safetensors"))
    assert all(bool(torch.isfinite(w).all()) for w in good.values())  # no checkpoint holds broken weights
    logged = [r["loss"] for r in read_log(out) if "loss" in r]
    assert all(math.isfinite(v) for v in logged)  # the divergence is reported, not logged as a number


def test_the_cli_exits_non_zero_on_divergence(qwen2_model, data_dir, tmp_path, capsys):
    from tunesmith.cli import main

    code = main(["train", "--model_name_or_path", str(qwen2_model), "--dataset", "arith", "--dataset_dir",
                 str(data_dir), "--template", "qwen3_nothink", "--finetuning_type", "full", "--output_dir",
                 str(tmp_path / "o"), "--max_steps", "4", "--learning_rate", "1e12",
                 "--report_to", "none", "--disable_tqdm", "true"])
    assert code != 0 and "training diverged" in capsys.readouterr().err


def test_rotation_happens_only_after_the_new_checkpoint_is_complete(tmp_path):
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / MARKER).write_text(str(step))
    (tmp_path / "checkpoint-6").mkdir()  # being written: not complete yet
    assert rotate(tmp_path, limit=1) == [tmp_path / "checkpoint-2"]  # the newest complete one stays
    assert [(s, done) for s, _, done in checkpoints(tmp_path)] == [(4, True), (6, False)]
    (tmp_path / "checkpoint-6" / MARKER).write_text("6")
    assert rotate(tmp_path, limit=1, keep={tmp_path / "checkpoint-4"}) == []  # the best model is kept
    (tmp_path / "checkpoint-3").mkdir()  # left by a killed save, older than the newest complete
    assert rotate(tmp_path, limit=1) == [tmp_path / "checkpoint-3", tmp_path / "checkpoint-4"]


def test_save_total_limit_keeps_the_newest_complete_checkpoints(qwen2_model, train_config, tmp_path):
    out = run_training(train_config(qwen2_model, max_steps=6, save_strategy="steps", save_steps=2,
                                    save_total_limit=1, learning_rate=5e-3)).output_dir
    assert [(s, done) for s, _, done in checkpoints(out)] == [(6, True)]
    settings = json.loads((out / "checkpoint-6" / SETTINGS).read_text())
    assert settings["learning_rate"] == 5e-3 and settings["dataset"] == ["arith"]


def test_overwrite_unmarks_an_earlier_runs_checkpoints(qwen2_model, train_config, tmp_path, caplog):
    common = dict(max_steps=4, save_strategy="steps", save_steps=2, learning_rate=5e-3)
    run_training(train_config(qwen2_model, **common))

    class Stop(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            raise RuntimeError("killed before the first save")

    with caplog.at_level(logging.INFO, logger="tunesmith"), pytest.raises(RuntimeError, match="killed"):
        run_training(train_config(qwen2_model, **common), extra_callbacks=[Stop()])
    assert "2 checkpoint(s) of an earlier run" in caplog.text
    assert all(not done for _, _, done in checkpoints(tmp_path / "out"))


def test_a_finished_run_is_not_trained_again(qwen2_model, train_config, tmp_path, caplog):
    common = dict(max_steps=7, per_device_train_batch_size=3, save_strategy="steps", save_steps=7,
                  learning_rate=5e-3)  # 7 steps end mid-epoch (8 examples, 3 per step)
    first = run_training(train_config(qwen2_model, **common))
    weights = (first.output_dir / "model.safetensors").read_bytes()
    again = train_config(qwen2_model, overwrite_output_dir=False, logging_steps=2, **common)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        second = run_training(again)
    assert second.global_step == 7 and "finished at step 7: nothing to train" in caplog.text
    assert (first.output_dir / "model.safetensors").read_bytes() == weights
    with pytest.raises(ConfigError, match=r"`max_steps` 7 -> 9"):
        run_training(train_config(qwen2_model, overwrite_output_dir=False, **{**common, "max_steps": 9}))


def test_resume_refuses_settings_that_change_what_is_trained(qwen2_model, train_config, tmp_path, caplog):
    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("simulated crash")

    common = dict(max_steps=6, save_strategy="steps", save_steps=2, learning_rate=5e-3)
    with pytest.raises(RuntimeError):
        run_training(train_config(qwen2_model, **common), extra_callbacks=[Crash()])
    changed = train_config(qwen2_model, overwrite_output_dir=False, **{**common, "learning_rate": 1e-2},
                           lr_scheduler_type="cosine")
    with pytest.raises(ConfigError, match=r"`learning_rate` 0.005 -> 0.01; `lr_scheduler_type` 'constant' -> "
                                          r"'cosine'.*overwrite_output_dir"):
        run_training(changed)
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        resumed = run_training(train_config(qwen2_model, overwrite_output_dir=False, logging_steps=2, **common))
    assert resumed.global_step == 6 and "`logging_steps` changed" in caplog.text
