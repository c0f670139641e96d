"""Evaluation during training: `compute_accuracy` reports the accuracy a by-hand evaluation of the saved model
gives, and config errors about it come before anything loads."""

from __future__ import annotations

import pytest
import torch

from tunesmith.config.errors import ConfigError
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training


def by_hand_accuracy(out, tokenizer_dir, examples) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    shares = []
    with torch.no_grad():
        for ex in examples:
            preds = model(torch.tensor([ex.input_ids])).logits[0, :-1].argmax(-1)
            targets = torch.tensor(ex.labels[1:])
            trained = targets != -100
            shares.append(float((preds[trained] == targets[trained]).double().mean()))
    return sum(shares) / len(shares)


def test_compute_accuracy_matches_a_by_hand_evaluation(qwen2_model, train_config):
    from tunesmith.train.prepare import prepare_as_planned

    cfg = train_config(qwen2_model, eval_dataset="arith", compute_accuracy=True, eval_strategy="steps",
                       eval_steps=6, max_steps=12, learning_rate=5e-3, lr_scheduler_type="cosine")
    out = run_training(cfg).output_dir
    evals = [r for r in read_log(out) if "eval_accuracy" in r]
    assert [r["current_steps"] for r in evals] == [6, 12]
    assert 0.0 <= evals[0]["eval_accuracy"] <= 1.0
    examples = prepare_as_planned(cfg).data.eval
    assert evals[-1]["eval_accuracy"] == pytest.approx(by_hand_accuracy(out, out, examples), abs=0.02)


@pytest.mark.parametrize("overrides,message", [
    (dict(compute_accuracy=True), "needs|set `val_size` or `eval_dataset`"),
    (dict(compute_accuracy=True, stage="dpo", dataset="pairs", val_size=2), "logs its own accuracy"),
])
def test_compute_accuracy_needs_an_evaluation_set(overrides, message, tmp_path, data_dir):
    from tunesmith.config.load import build_config

    raw = {"model_name_or_path": str(tmp_path), "dataset": "arith", "dataset_dir": str(data_dir),
           "output_dir": str(tmp_path / "out"), "do_train": True, **overrides}
    with pytest.raises(ConfigError, match=message):
        build_config({k: (v, "test") for k, v in raw.items()})
