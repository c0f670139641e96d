"""`do_eval` without `do_train` measures a trained output dir as training's own evaluation did (same loss,
accuracy, perplexity = exp(loss)); early stopping stops a run whose evaluation loss rises."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training

OTHER_REPLIES = [{"instruction": f"What is {a}+{b}?", "input": "", "output": "apple pie tastes sweet today"}
                 for a, b in [(1, 1), (2, 3), (4, 4), (5, 2)]]


def test_eval_without_training_matches_the_runs_own_evaluation(qwen2_model, train_config, tmp_path, monkeypatch):
    cfg = train_config(qwen2_model, eval_dataset="arith", compute_accuracy=True, eval_strategy="steps", eval_steps=8,
                       max_steps=8, per_device_eval_batch_size=4, plot_loss=True)
    out = run_training(cfg).output_dir
    logged = [r for r in read_log(out) if "eval_loss" in r][-1]
    assert (out / "training_eval_loss.png").is_file()
    monkeypatch.chdir(tmp_path)
    args = ["train", f"model_name_or_path={out}", "do_eval=true", "eval_dataset=arith",
            f"dataset_dir={cfg.data.dataset_dir}", "compute_accuracy=true", "per_device_eval_batch_size=4",
            "cutoff_len=128", "output_dir=measured"]
    assert main(args) == 0
    measured = json.loads((tmp_path / "measured" / "eval_results.json").read_text())
    assert measured["eval_loss"] == pytest.approx(logged["eval_loss"], abs=2e-3)
    assert measured["eval_accuracy"] == pytest.approx(logged["eval_accuracy"], abs=1e-3)
    assert measured["eval_perplexity"] == pytest.approx(math.exp(measured["eval_loss"]), rel=1e-3)
    assert measured["eval_samples"] == 8
    assert not (tmp_path / "measured" / "trainer_log.jsonl").exists()  # nothing was trained


def test_early_stopping_stops_a_run_whose_eval_loss_rises(qwen2_model, data_dir, tmp_path):
    from tunesmith.config.load import build_config

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    (data / "other.json").write_text(json.dumps(OTHER_REPLIES), encoding="utf-8")
    info = json.loads((data / "dataset_info.json").read_text())
    info["other"] = {"file_name": "other.json"}
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    raw = {"model_name_or_path": str(qwen2_model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "arith", "eval_dataset": "other", "dataset_dir": str(data), "template": "qwen3_nothink",
           "cutoff_len": 64, "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4,
           "learning_rate": 1e-2, "max_steps": 60, "logging_steps": 2, "save_strategy": "no", "report_to": "none",
           "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "constant", "eval_strategy": "steps",
           "eval_steps": 2, "early_stopping_steps": 2}
    result = run_training(build_config({k: (v, "test.yaml") for k, v in raw.items()}))
    losses = [r["eval_loss"] for r in read_log(result.output_dir) if "eval_loss" in r]
    assert result.global_step < 60  # stopped early
    best = losses.index(min(losses))
    assert len(losses) == best + 3  # the best evaluation, then two without improvement, then the stop


def test_early_stopping_needs_evaluations(tmp_path, data_dir):
    from tunesmith.config.errors import ConfigError
    from tunesmith.config.load import build_config

    raw = {"model_name_or_path": str(tmp_path), "dataset": "arith", "dataset_dir": str(data_dir),
           "output_dir": str(tmp_path / "o"), "early_stopping_steps": 3, "val_size": 2}
    with pytest.raises(ConfigError, match="eval_strategy"):
        build_config({k: (v, "t.yaml") for k, v in raw.items()})
    with pytest.raises(ConfigError, match="val_size"):
        build_config({k: (v, "t.yaml") for k, v in {**raw, "val_size": 0, "eval_strategy": "steps"}.items()})


def test_eval_of_a_run_with_added_tokens_reports_their_f1(lora_tokens_run, data_dir, tmp_path):
    from tunesmith.config.load import build_config
    from tunesmith.evaluation.run import run

    raw = {"model_name_or_path": str(lora_tokens_run), "do_eval": True, "eval_dataset": "arith",
           "dataset_dir": str(data_dir), "output_dir": str(tmp_path / "m"), "cutoff_len": 128}
    metrics = run(build_config({k: (v, "t.yaml") for k, v in raw.items()}))
    assert {"eval_special_precision", "eval_special_recall", "eval_special_f1"} <= set(metrics)  # the run's <tool>
    assert math.isfinite(metrics["eval_loss"]) and metrics["eval_samples"] == 8
    assert json.loads((tmp_path / "m" / "eval_results.json").read_text()) == metrics


@pytest.mark.slow  # fast: test_early_stopping_stops_a_run_whose_eval_loss_rises, the F1 itself in
# test_eval_of_a_run_with_added_tokens_reports_their_f1
def test_special_token_f1_can_decide_early_stopping(qwen2_model, data_dir, tmp_path):
    from tunesmith.config.load import build_config

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    rows = [{"instruction": f"What is {a}+{b}?", "input": "", "output": f"{a}+{b}<sep>{a + b}"}
            for a, b in [(1, 1), (2, 3), (4, 4), (5, 2), (3, 6), (7, 1), (2, 2), (6, 3)]]
    (data / "sep.json").write_text(json.dumps(rows), encoding="utf-8")
    info = json.loads((data / "dataset_info.json").read_text())
    info["sep"] = {"file_name": "sep.json"}
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    raw = {"model_name_or_path": str(qwen2_model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "sep", "eval_dataset": "sep", "dataset_dir": str(data), "template": "qwen3_nothink",
           "add_special_tokens": "<sep>", "cutoff_len": 64, "output_dir": str(tmp_path / "out"),
           "per_device_train_batch_size": 8, "learning_rate": 1e-2, "max_steps": 60, "logging_steps": 3,
           "save_strategy": "no", "report_to": "none", "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "constant",
           "eval_strategy": "steps", "eval_steps": 3, "early_stopping_steps": 2, "metric_for_best_model": "special_f1"}
    result = run_training(build_config({k: (v, "test.yaml") for k, v in raw.items()}))
    f1 = [r["eval_special_f1"] for r in read_log(result.output_dir) if "eval_special_f1" in r]
    assert result.global_step < 60, f1
    assert len(f1) == f1.index(max(f1)) + 3, f1  # greater is better: the best F1, two evaluations without a higher one
