"""Stage ppo end to end on a tiny model: the mean reward from a rule-based HTTP endpoint rises; a lora
reward adapter on the policy's own base (one copy of the base weights) and a full reward model both run;
bad reward settings fail clearly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training


TARGET = "1"  # the endpoint rewards each occurrence of this string in the reply


def config(model, data_dir, out, **overrides):
    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "arith", "dataset_dir": str(data_dir), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(out), "overwrite_output_dir": True, "per_device_train_batch_size": 4,
           "learning_rate": 1e-2, "max_steps": 12, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
           "seed": 0, "disable_tqdm": True, "lr_scheduler_type": "constant"}
    raw.update(overrides)
    return build_config({k: (v, "test") for k, v in raw.items()})


@pytest.fixture(scope="module")
def sft_model(qwen2_model, data_dir, tmp_path_factory):
    """The tiny model after a short sft on arithmetic, so it answers with digits (and sometimes the target)."""
    out = tmp_path_factory.mktemp("ppo") / "sft"
    run_training(config(qwen2_model, data_dir, out, max_steps=20, learning_rate=3e-3))
    return out


@pytest.fixture(scope="module")
def reward_url(score_server):
    with score_server(lambda reply: reply.count(TARGET)) as url:
        yield url


PPO = dict(stage="ppo", per_device_train_batch_size=8, max_new_tokens=8, learning_rate=4e-4)


def card(out) -> dict:
    return json.loads((out / "tunesmith.json").read_text())


def test_mean_reward_rises_with_an_api_reward(sft_model, reward_url, data_dir, tmp_path):
    # sampling from the whole distribution (not the default nucleus top_p 0.7, which can cut the rewarded
    # string off entirely) so that every policy finds some reward to learn from
    out = run_training(config(sft_model, data_dir, tmp_path / "ppo", **PPO, reward_model=reward_url,
                              reward_model_type="api", max_steps=30, plot_loss=True, top_p=1.0,
                              top_k=0)).output_dir
    rows = read_log(out)
    assert [r["current_steps"] for r in rows] == list(range(1, 31))
    for key in ("reward", "reward_std", "kl", "kl_coef", "policy_loss", "value_loss", "loss", "clip_fraction",
                "value_clip_fraction", "response_length", "lr"):
        assert all(isinstance(r[key], float) for r in rows), key
    assert all(1 <= r["response_length"] <= 8 for r in rows)
    # sampled replies make each step's mean reward noisy (within +-0.2 without learning): the last ten steps
    # against the first five. Learning raises it by 3.9-4.8 (seeds 0-3), 2.1-2.5 with half the learning rate,
    # 4.7-5.1 with double, 1.2-1.4 with the sft model's learning rate halved as well.
    early = sum(r["reward"] for r in rows[:5]) / 5
    late = sum(r["reward"] for r in rows[-10:]) / 10
    assert late > early + 0.5, [r["reward"] for r in rows]
    facts = card(out)
    assert facts["stage"] == "ppo" and facts["reward"]["kind"] == "api" and facts["global_step"] == 30
    assert facts["reference"]["kind"] == "frozen model"  # full fine-tuning: a frozen copy of the sft model
    assert (out / "value_head.safetensors").is_file() and (out / "training_reward.png").is_file()
    from transformers import AutoModelForCausalLM

    assert load_file(str(out / "value_head.safetensors"))["weight"].shape == (1, 64)
    AutoModelForCausalLM.from_pretrained(out)  # the policy is a plain causal LM


@pytest.fixture(scope="module")
def reward_models(sft_model, data_dir, tmp_path_factory):
    """Reward models trained from the sft model with stage rm: a lora adapter and a full model."""
    root = tmp_path_factory.mktemp("rm")
    for method in ("lora", "full"):
        run_training(config(sft_model, data_dir, root / method, stage="rm", dataset="pairs", finetuning_type=method,
                            learning_rate=1e-3, max_steps=4))
    return {"lora": root / "lora", "full": root / "full"}


def test_lora_reward_adapter_shares_the_base_weights(sft_model, reward_models, data_dir, tmp_path):
    out = run_training(config(sft_model, data_dir, tmp_path / "ppo", **PPO, finetuning_type="lora",
                              reward_model=str(reward_models["lora"]), reward_model_type="lora",
                              max_steps=3, gradient_checkpointing=True, save_strategy="steps",
                              save_steps=2)).output_dir
    facts = card(out)
    memory = facts["memory"]
    assert facts["reward"]["kind"].startswith("lora reward adapter")
    assert facts["reference"] == {"kind": "policy with adapters off", "extra_parameter_bytes": 0}
    # one copy of the base weights; on top of it exactly the two adapters and the value and score heads
    def file_bytes(path):
        return sum(t.numel() * t.element_size() for t in load_file(str(path)).values())

    policy_adapter = file_bytes(out / "adapter_model.safetensors")
    reward_adapter = file_bytes(reward_models["lora"] / "adapter_model.safetensors")  # lora weights + score head
    value_head = file_bytes(out / "value_head.safetensors")
    assert memory["reference_extra_bytes"] == 0 and memory["reward_extra_bytes"] == reward_adapter
    assert memory["total_parameter_bytes"] == memory["base_weights_bytes"] + policy_adapter + reward_adapter + \
        value_head
    assert memory["total_parameter_bytes"] < 2 * memory["base_weights_bytes"]
    assert (out / "adapter_model.safetensors").is_file() and not (out / "reward").exists()
    assert len(read_log(out)) == 3
    checkpoint = out / "checkpoint-2"  # written, then marked complete
    assert {"adapter_model.safetensors", "value_head.safetensors", "tunesmith_complete"} <= \
        {p.name for p in checkpoint.iterdir()}


def test_adapter_reward_scores_like_the_reward_model_and_keeps_the_policy_trainable(sft_model, reward_models):
    from tunesmith.config.schema import FinetuningArgs, ModelArgs
    from tunesmith.model.load import load_model
    from tunesmith.model.methods import apply_method
    from tunesmith.stages.rl.batch import RolloutBatch
    from tunesmith.train.rl.reward_model import RewardModel
    from tunesmith.train.rl.rewards import AdapterReward

    args = ModelArgs(model_name_or_path=str(sft_model))
    policy = apply_method(load_model(args, torch.float32), args, FinetuningArgs(finetuning_type="lora"))
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    reward = AdapterReward(policy, str(reward_models["lora"]))
    assert {n for n, p in policy.named_parameters() if p.requires_grad} == trainable
    reference = RewardModel.load(str(reward_models["lora"]))
    prompts = [[5, 6, 7, 8], [9, 10]]
    replies = [[11, 12], [13, 14, 15, 16]]
    batch = RolloutBatch.build(prompts, replies, reference.tokenizer.pad_token_id)
    policy.train()
    scores = reward(policy, batch)
    expected = reference.score_ids([p + r for p, r in zip(prompts, replies)])
    assert scores.tolist() == pytest.approx(expected, abs=1e-4)
    assert {n for n, p in policy.named_parameters() if p.requires_grad} == trainable  # set_adapter undone
    assert policy.active_adapter == "default" and policy.training


def test_full_reward_model_runs(sft_model, reward_models, data_dir, tmp_path):
    out = run_training(config(sft_model, data_dir, tmp_path / "ppo", **PPO, reward_model=str(reward_models["full"]),
                              reward_model_type="full", max_steps=3, ppo_score_norm=True,
                              ppo_whiten_rewards=True)).output_dir
    facts = card(out)
    assert facts["reward"]["kind"] == "full reward model" and len(read_log(out)) == 3
    base = facts["memory"]["base_weights_bytes"]
    assert facts["memory"]["reward_extra_bytes"] > 0.8 * base  # a second model, as asked for
    assert facts["memory"]["total_parameter_bytes"] > 2.5 * base  # policy, frozen reference, reward


def test_bad_reward_settings_fail_clearly(sft_model, data_dir, tmp_path):
    with pytest.raises(ConfigError, match="stage ppo needs `reward_model`"):
        config(sft_model, data_dir, tmp_path / "a", **PPO)
    with pytest.raises(ConfigError, match="`reward_model_type: lora` .* needs `finetuning_type: lora`"):
        config(sft_model, data_dir, tmp_path / "b", **PPO, reward_model="rm", finetuning_type="full")
    with pytest.raises(ConfigError, match="`reward_model_type: api` needs `reward_model` to be an http"):
        config(sft_model, data_dir, tmp_path / "c", **PPO, reward_model="rm", reward_model_type="api")
    with pytest.raises(ConfigError, match="`precompute_ref_log_probs` does not apply to ppo"):
        config(sft_model, data_dir, tmp_path / "d", **PPO, reward_model="http://x", reward_model_type="api",
               precompute_ref_log_probs=True)
    with pytest.raises(ConfigError, match="is set but only ppo and grpo use it"):
        config(sft_model, data_dir, tmp_path / "e", reward_model="http://x")
    api = dict(PPO, reward_model="http://127.0.0.1:9/score", reward_model_type="api")
    with pytest.raises(ConfigError, match="`val_size` is not available with stage ppo"):
        config(sft_model, data_dir, tmp_path / "f", **api, val_size=0.25)
    with pytest.raises(ConfigError, match="`resume_from_checkpoint` is not available for stage ppo"):
        run_training(config(sft_model, data_dir, tmp_path / "g", **api, resume_from_checkpoint=True))
    with pytest.raises(ConfigError, match="stage ppo: 8 prompts are fewer than one step needs \\(16"):
        run_training(config(sft_model, data_dir, tmp_path / "h", **api, gradient_accumulation_steps=2))


def test_unreachable_reward_endpoint_names_the_url(sft_model, data_dir, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/score"
    with pytest.raises(ConfigError, match=f"reward endpoint {url} is unreachable"):
        run_training(config(sft_model, data_dir, tmp_path / "ppo", **PPO, reward_model=url, reward_model_type="api",
                            max_steps=1))
