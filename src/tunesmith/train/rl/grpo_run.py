"""A GRPO run: the policy with the run's method applied (lora, full, freeze), no value head; the reference
only when `beta` != 0 (the rules of seed 001, as ppo); rewards from `reward_funcs` and, when set, the reward
model of the ppo section (api, lora adapter on the policy's base, or full model).

The output_dir gets the policy (full model or peft adapter), the tokenizer, trainer_log.jsonl,
completions.jsonl (sample completions with their rewards), plots and tunesmith.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...config.schema import Config
from ...model.load import count_parameters
from ...stages.base import Stage
from ...templates.stops import stop_token_ids
from ...types import IGNORE_INDEX
from ..plan import RunPlan
from ..setup import Policy, RunResult, build_reference, torch_dtype, training_arguments
from .ppo_run import build_reward
from .reward_funcs import RewardSet

logger = logging.getLogger(__name__)


def prompt_items(examples, tokenizer, stop_ids: list[int]) -> list[dict]:
    """Encoded `prompt_reply` records -> {prompt (ids), prompt_text, solution (the dataset's reply, text)}."""
    stops = set(stop_ids)
    items = []
    for ex in examples:
        start = next((i for i, label in enumerate(ex.labels) if label != IGNORE_INDEX), len(ex.labels))
        prompt = list(ex.input_ids[:start])
        answer = [t for t in ex.labels[start:] if t != IGNORE_INDEX and t not in stops]
        items.append({"prompt": prompt, "prompt_text": tokenizer.decode(prompt, skip_special_tokens=False),
                      "solution": tokenizer.decode(answer, skip_special_tokens=True).strip()})
    return items


def train_with_groups(cfg: Config, plan: RunPlan, stage: Stage, prepared, policy: Policy, resume: str | None,
                      callbacks: list) -> RunResult:
    from ..plot import plot_loss
    from ..save import write_run_card
    from .grpo_loop import GRPOTrainer

    tokenizer, data = prepared.tokenizer, prepared.data
    args = training_arguments(cfg, plan)
    reference = build_reference(cfg, plan, policy.model)
    model_reward = build_reward(cfg, policy.model, tokenizer, torch_dtype(plan.load_dtype)) \
        if cfg.ppo.reward_model else None
    rewards = RewardSet(cfg.grpo.reward_funcs, model_reward)
    logger.info("grpo rewards: %s (weights %s)", ", ".join(rewards.names),
                ", ".join(f"{w:g}" for w in cfg.grpo.reward_weights) or "1 each")
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    items = prompt_items(data.train, tokenizer, stop_token_ids(tokenizer, prepared.template))
    trainer = GRPOTrainer(cfg, args, policy.model, stage.loss(cfg), reference, rewards, tokenizer,
                          prepared.template, items, plan.shared_prompt, callbacks=callbacks)
    history = trainer.train()
    trainer.save(cfg.output_dir)
    trainable, total = count_parameters(policy.model)
    final_loss = history[-1]["loss"] if history else None
    if trainer.accelerator.is_main_process:
        write_run_card(cfg, cfg.output_dir, plan=plan.as_dict(), trainable_params=trainable, total_params=total,
                       global_step=trainer.state.global_step, train_loss=final_loss, examples=len(items),
                       added_tokens=prepared.added.ids, embedding_rows=policy.embedding_rows, model_head="lm",
                       reference=None if reference is None else {"kind": reference.kind},
                       rewards={"names": rewards.names, "weights": list(trainer.weights.tolist()),
                                "reward_model": cfg.ppo.reward_model,
                                "reward_model_type": cfg.ppo.reward_model_type if cfg.ppo.reward_model else None})
        if cfg.finetuning.plot_loss:
            for path in plot_loss(cfg.output_dir, keys=("loss", "reward", "kl", "completion_length")):
                logger.info("curve written to %s", path)
    logger.info("policy saved to %s", cfg.output_dir)
    return RunResult(Path(cfg.output_dir), final_loss, trainer.state.global_step, trainable, total)
