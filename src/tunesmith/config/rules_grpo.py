"""Config rules of stage grpo (config/validate.py runs them with the others; one function per rule)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields

from .errors import ConfigError
from .schema import Config, GRPOArgs

Origins = dict[str, str]
BUILTIN_REWARDS = ("accuracy", "format")  # train/rl/reward_funcs.py
FUNCTION_NAME = re.compile(r"^([A-Za-z_][\w.]*|.+\.py):[A-Za-z_]\w*$")  # module:function or path/file.py:function


def _where(origins: Origins, *keys: str) -> str:
    return next((origins[key] for key in keys if key in origins), "config")


def grpo_keys_only_with_grpo(cfg: Config, origins: Origins) -> None:
    if cfg.stage == "grpo":
        return
    for f in fields(GRPOArgs):
        if f.name in origins:
            raise ConfigError(f"{origins[f.name]}: `{f.name}` is set but only stage grpo uses it; remove it")


def grpo_values_in_range(cfg: Config, origins: Origins) -> None:
    if cfg.stage != "grpo":
        return
    grpo, gen = cfg.grpo, cfg.generating
    if grpo.num_generations < 2:
        raise ConfigError(f"{_where(origins, 'num_generations')}: `num_generations` must be >= 2 (advantages compare "
                          f"the completions of one prompt), got {grpo.num_generations}")
    batch = int(cfg.training.get("per_device_train_batch_size", 8))
    accumulation = int(cfg.training.get("gradient_accumulation_steps", 1))
    if (batch * accumulation) % grpo.num_generations:
        raise ConfigError(f"{_where(origins, 'num_generations', 'per_device_train_batch_size')}: "
                          f"per_device_train_batch_size x gradient_accumulation_steps ({batch} x {accumulation}) counts "
                          f"completions and must be a multiple of `num_generations` ({grpo.num_generations})")
    for key in ("num_iterations", "max_completion_length"):
        if getattr(grpo, key) < 1:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= 1, got {getattr(grpo, key)}")
    for key in ("beta", "epsilon", "epsilon_high"):
        value = getattr(grpo, key)
        if value is not None and value < 0:
            raise ConfigError(f"{_where(origins, key)}: `{key}` must be >= 0, got {value}")
    if grpo.num_completions_to_print is not None and grpo.num_completions_to_print < 0:
        raise ConfigError(f"{_where(origins, 'num_completions_to_print')}: `num_completions_to_print` must be >= 0")
    if gen.num_beams != 1:
        raise ConfigError(f"{_where(origins, 'num_beams')}: grpo samples its completions; `num_beams` must be 1")
    if not gen.do_sample:
        raise ConfigError(f"{_where(origins, 'do_sample')}: grpo needs `do_sample: true` (greedy completions of one "
                          "prompt are all the same, so every group has zero reward variance)")
    if gen.temperature <= 0:
        raise ConfigError(f"{_where(origins, 'temperature')}: `temperature` must be positive, got {gen.temperature}")
    if not 0 < gen.top_p <= 1:
        raise ConfigError(f"{_where(origins, 'top_p')}: `top_p` must be in (0, 1], got {gen.top_p}")


def grpo_rewards_given(cfg: Config, origins: Origins) -> None:
    if cfg.stage != "grpo":
        return
    grpo = cfg.grpo
    where = _where(origins, "reward_funcs", "reward_model")
    count = len(grpo.reward_funcs) + bool(cfg.ppo.reward_model)
    if not count:
        raise ConfigError(f"{where}: stage grpo needs a reward: `reward_funcs` (`module:function` or the built-ins "
                          f"{', '.join(BUILTIN_REWARDS)}) and/or `reward_model`")
    for name in grpo.reward_funcs:
        if name not in BUILTIN_REWARDS and not FUNCTION_NAME.match(name):
            raise ConfigError(f"{_where(origins, 'reward_funcs')}: reward function {name!r} is neither a built-in "
                              f"({', '.join(BUILTIN_REWARDS)}) nor `module:function` (e.g. my_rewards:exact)")
    if grpo.reward_weights and len(grpo.reward_weights) != count:
        raise ConfigError(f"{_where(origins, 'reward_weights')}: `reward_weights` has {len(grpo.reward_weights)} "
                          f"values for {count} rewards (reward_funcs in order, then reward_model)")


def grpo_options_fit(cfg: Config, origins: Origins) -> None:
    """What a GRPO run cannot do: prompts are read into memory; there is no evaluation split, packing, token
    budget, resuming (as ppo), or prompt training."""
    if cfg.stage != "grpo":
        return
    data, tokens = cfg.data, cfg.tokens
    for key, on in (("streaming", data.streaming), ("val_size", data.val_size > 0),
                    ("eval_dataset", bool(data.eval_dataset)), ("packing", bool(data.packing or data.neat_packing)),
                    ("max_tokens_per_batch", bool(cfg.speed.max_tokens_per_batch)),
                    ("train_on_prompt", data.train_on_prompt),
                    ("resume_from_checkpoint", cfg.training.get("resume_from_checkpoint") not in (None, False, ""))):
        if on:
            raise ConfigError(f"{_where(origins, key)}: `{key}` is not available with stage grpo (prompts are read "
                              "into memory; completions are generated, batched in groups, and a run starts fresh)")
    for key in ("unfreeze_schedule", "train_new_tokens_only", "freeze_extra_id_steps", "freeze_token_steps",
                "token_loss_weights", "extra_id_loss_weight"):
        if getattr(tokens, key) not in ((), {}, 0, False, None):
            raise ConfigError(f"{_where(origins, key)}: `{key}` is not available with stage grpo")


RULES: tuple[Callable[[Config, Origins], None], ...] = (
    grpo_keys_only_with_grpo, grpo_values_in_range, grpo_rewards_given, grpo_options_fit)
