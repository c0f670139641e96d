"""Stage grpo end to end on a tiny model: after a short sft, GRPO with a rule-based reward raises the mean
reward; the first step's loss is the hand formula of the logged advantages; lora with a KL to the reference
and several passes per batch runs; a failing reward function names itself and the prompt."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.rl.reward_funcs import RewardError
from tunesmith.train.run import run_training

REWARDS = '''
def ones(completions, **kwargs):
    return [float(c.count("1")) for c in completions]


def broken(prompts, completions, **kwargs):
    return [1.0 / ("5+2" not in p) for p in prompts]
'''


def config(model, data_dir, out, **overrides):
    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(out), "overwrite_output_dir": True, "per_device_train_batch_size": 4,
           "learning_rate": 3e-3, "max_steps": 20, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
           "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "constant"}
    raw.update(overrides)
    return build_config({k: (v, "test") for k, v in raw.items()})


@pytest.fixture(scope="module")
def sft_model(qwen2_model, data_dir, tmp_path_factory):
    """The tiny model after a short sft on arithmetic: it answers `a+b=c`, sometimes with a 1 in it."""
    out = tmp_path_factory.mktemp("grpo") / "sft"
    run_training(config(qwen2_model, data_dir, out))
    return out


@pytest.fixture(scope="module")
def rewards_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rewards") / "rules.py"
    path.write_text(REWARDS)
    return path


# sampling from the whole distribution, so that every group has some reward to compare
GRPO = dict(stage="grpo", num_generations=8, per_device_train_batch_size=8, max_completion_length=8,
            learning_rate=4e-4, top_p=1.0, top_k=0)


def test_mean_reward_rises_with_a_rule_reward(sft_model, rewards_file, data_dir, tmp_path):
    out = run_training(config(sft_model, data_dir, tmp_path / "grpo", **GRPO, reward_funcs=f"{rewards_file}:ones",
                              max_steps=30, plot_loss=True)).output_dir
    rows = read_log(out)
    assert [r["current_steps"] for r in rows] == list(range(1, 31))
    for key in ("loss", "reward", "reward_std", "rewards/ones/mean", "rewards/ones/std", "advantages/std",
                "frac_reward_zero_std", "clip_ratio/region", "completion_length", "completions/truncated"):
        assert all(isinstance(r[key], float) for r in rows), key
    assert all(1 <= r["completion_length"] <= 8 for r in rows)
    # one prompt x 8 completions per step: each step's mean reward is noisy. Learning lifts the last ten steps'
    # mean over the first five's by ~0.9 (0.25 -> 1.15); a run that does not learn stays within +-0.2
    early = sum(r["reward"] for r in rows[:5]) / 5
    late = sum(r["reward"] for r in rows[-10:]) / 10
    assert late > early + 0.4, [r["reward"] for r in rows]
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["stage"] == "grpo" and card["global_step"] == 30 and card["rewards"]["names"] == ["ones"]
    assert card["plan"]["shared_prompt"] is True and card["reference"] is None  # beta 0: no reference
    samples = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(samples) == 30 * 4 and samples[-1]["step"] == 30  # num_completions_to_print 4 per logging step
    assert all(s["rewards"]["ones"] == s["completion"].count("1") for s in samples)
    assert (out / "training_reward.png").is_file()


@pytest.mark.parametrize("loss_type", ["dapo", "dr_grpo"])
def test_first_step_loss_is_the_hand_formula(sft_model, rewards_file, data_dir, tmp_path, loss_type):
    """Ratio 1 on the first pass: dapo = -Σ A_i n_i / Σ n_i; dr_grpo = -Σ A_i n_i / (completions x
    max_completion_length), with the advantages and token counts written to completions.jsonl."""
    out = run_training(config(sft_model, data_dir, tmp_path / loss_type, **{**GRPO, "per_device_train_batch_size": 4},
                              gradient_accumulation_steps=2, reward_funcs=f"{rewards_file}:ones", max_steps=1,
                              loss_type=loss_type, num_completions_to_print=None)).output_dir
    samples = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(samples) == 8
    total = sum(s["advantage"] * s["tokens"] for s in samples)
    denominator = sum(s["tokens"] for s in samples) if loss_type == "dapo" else 8 * 8
    assert read_log(out)[0]["loss"] == pytest.approx(-total / denominator, abs=1e-5)


def test_lora_with_kl_and_two_passes_per_batch(sft_model, rewards_file, data_dir, tmp_path):
    out = run_training(config(sft_model, data_dir, tmp_path / "lora", **{**GRPO, "learning_rate": 1e-3},
                              finetuning_type="lora", lora_rank=4, reward_funcs=f"{rewards_file}:ones,format",
                              reward_weights="1.0,0.5", beta=0.1, num_iterations=2, max_steps=4)).output_dir
    rows = read_log(out)
    assert [r["current_steps"] for r in rows] == [1, 2, 3, 4]
    assert all("kl" in r and r["kl"] >= 0 for r in rows) and rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert "rewards/format/mean" in rows[0] and "clip_ratio/high" in rows[0]
    card = json.loads((out / "tunesmith.json").read_text())
    assert card["reference"]["kind"] and card["rewards"]["weights"] == [1.0, 0.5]
    assert (out / "adapter_model.safetensors").is_file()


def test_failing_reward_function_names_itself_and_the_prompt(sft_model, rewards_file, data_dir, tmp_path):
    with pytest.raises(RewardError, match=r"reward function .*rules.py:broken failed: ZeroDivisionError.*5\+2"):
        run_training(config(sft_model, data_dir, tmp_path / "broken", **GRPO, reward_funcs=f"{rewards_file}:broken",
                            max_steps=8))


def test_grpo_needs_a_reward(sft_model, data_dir, tmp_path):
    with pytest.raises(ConfigError, match="stage grpo needs a reward"):
        config(sft_model, data_dir, tmp_path / "none", **GRPO)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_freeze_trains_only_the_chosen_layers(sft_model, rewards_file, data_dir, tmp_path):
    before = _weights(sft_model / "model.safetensors")
    out = run_training(config(sft_model, data_dir, tmp_path / "freeze", **GRPO, finetuning_type="freeze",
                              freeze_trainable_layers=1, reward_funcs=f"{rewards_file}:ones", max_steps=2)).output_dir
    after = _weights(out / "model.safetensors")
    last = max(int(name.split(".")[2]) for name in before if name.startswith("model.layers."))
    moved = {name for name in before if not before[name].equal(after[name])}
    assert moved and all(name.startswith(f"model.layers.{last}.") for name in moved), sorted(moved)


def test_qlora_trains_an_adapter_on_a_4bit_base(sft_model, rewards_file, data_dir, tmp_path):
    pytest.importorskip("bitsandbytes")
    out = run_training(config(sft_model, data_dir, tmp_path / "qlora", **GRPO, finetuning_type="lora", lora_rank=4,
                              quantization_bit=4, reward_funcs=f"{rewards_file}:ones", max_steps=2)).output_dir
    rows = read_log(out)
    assert [r["current_steps"] for r in rows] == [1, 2] and all(r["loss"] == r["loss"] for r in rows)
    adapter = _weights(out / "adapter_model.safetensors")
    assert any("lora_B" in name and tensor.abs().sum() > 0 for name, tensor in adapter.items())  # B starts at 0
