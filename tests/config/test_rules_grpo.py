"""Config rules of stage grpo: each refuses with the key named, and a config that respects them passes."""

from __future__ import annotations

import pytest

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config

BASE = {"model_name_or_path": "m", "stage": "grpo", "do_train": True, "dataset": "a", "template": "qwen",
        "output_dir": "out", "reward_funcs": "accuracy", "per_device_train_batch_size": 8}


def build(**kw):
    return build_config({k: (v, "test.yaml") for k, v in {**BASE, **kw}.items()})


def test_defaults_are_trls():
    grpo = build().grpo
    assert (grpo.num_generations, grpo.max_completion_length, grpo.scale_rewards, grpo.loss_type, grpo.beta,
            grpo.epsilon, grpo.epsilon_high, grpo.num_iterations) == (8, 512, "group", "dapo", 0.0, 0.2, None, 1)


def test_valid_grpo_config_passes():
    cfg = build(reward_funcs="accuracy,format,my_rewards:exact,rules/r.py:ones", reward_weights="1,0.5,1,2",
                beta=0.04, ref_model="ref", epsilon_high=0.28, loss_type="dr_grpo", scale_rewards="none")
    assert cfg.grpo.reward_funcs == ("accuracy", "format", "my_rewards:exact", "rules/r.py:ones")
    assert cfg.grpo.reward_weights == (1.0, 0.5, 1.0, 2.0)


@pytest.mark.parametrize("overrides, message", [
    ({"reward_funcs": ""}, r"stage grpo needs a reward"),
    ({"reward_funcs": "nonsense"}, r"reward function 'nonsense' is neither a built-in"),
    ({"reward_weights": "1,2"}, r"`reward_weights` has 2 values for 1 rewards"),
    ({"num_generations": 3}, r"\(8 x 1\) counts completions and must be a multiple of `num_generations` \(3\)"),
    ({"num_generations": 1, "per_device_train_batch_size": 1}, r"`num_generations` must be >= 2"),
    ({"num_iterations": 0}, r"`num_iterations` must be >= 1"),
    ({"epsilon": -0.1}, r"`epsilon` must be >= 0"),
    ({"do_sample": False}, r"grpo needs `do_sample: true`"),
    ({"ref_model": "ref"}, r"`ref_model` is set but stage grpo uses no reference model with beta 0"),
    ({"packing": True}, r"`packing` is not available with stage grpo"),
    ({"val_size": 0.1}, r"`val_size` is not available with stage grpo"),
    ({"train_on_prompt": True}, r"`train_on_prompt` is not available with stage grpo"),
    ({"resume_from_checkpoint": "out/checkpoint-2"}, r"`resume_from_checkpoint` is not available with stage grpo"),
    ({"loss_type": "cispo"}, r"loss_type"),
])
def test_grpo_rules_refuse(overrides, message):
    with pytest.raises(ConfigError, match=r"^test.yaml: .*" + message):
        build(**overrides)


def test_grpo_keys_need_stage_grpo():
    with pytest.raises(ConfigError, match=r"^test.yaml: `num_generations` is set but only stage grpo uses it"):
        build(stage="sft", reward_funcs="", num_generations=4)
    with pytest.raises(ConfigError, match=r"^test.yaml: `reward_funcs` is set but only stage grpo uses it"):
        build(stage="sft")


def test_reward_model_may_be_grpos_only_reward():
    cfg = build(reward_funcs="", reward_model="http://localhost:1/score", reward_model_type="api")
    assert cfg.ppo.reward_model_type == "api"
