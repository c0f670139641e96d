"""A PPO run: the policy (with the run's method applied) gets a value head; the reference and the reward
follow LLaMA-Factory's rules (seed 001):

- reference: `ref_model` (+ `ref_model_adapters`) when given; with lora the policy's own base weights with
  its adapters switched off; otherwise a frozen copy of the starting (sft) model;
- reward: `reward_model_type: api` an HTTP endpoint; `lora` a reward adapter loaded next to the policy's
  adapter on the same base weights (one copy of them); `full` a separate reward model (+ adapters).

The output_dir gets the policy (full model or peft adapter), the tokenizer, `value_head.safetensors`,
trainer_log.jsonl, plots and tunesmith.json, which records the parameter memory of each part.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ...config.errors import ConfigError
from ...config.schema import Config
from ...model.load import count_parameters, load_model, load_tokenizer
from ...stages.base import Stage
from ...stages.rl.batch import PolicyWithValue
from ..plan import RunPlan
from ..reference import parameter_bytes
from ..setup import Policy, RunResult, build_reference, torch_dtype, training_arguments
from .rewards import AdapterReward, ApiReward, ModelReward

logger = logging.getLogger(__name__)


def load_full_reward(cfg: Config, tokenizer, dtype):
    """A reward model directory: a tunesmith rm output (its card says how to rebuild it) or any
    sequence-classification checkpoint, with `reward_model_adapters` merged in order."""
    from peft import PeftModel

    from ...utils.run_card import embedding_rows_of, read_run_card
    from .reward_model import RewardModel

    path = cfg.ppo.reward_model
    if not Path(path).is_dir():
        raise ConfigError(f"`reward_model` {path} is not a directory")
    card = read_run_card(path)
    if card is not None and card.get("model_head") == "score":
        loaded = RewardModel.load(path, dtype, quantization_bit=cfg.ppo.reward_model_quantization_bit,
                                  quantization_method=cfg.model.quantization_method)
        model, reward_tokenizer = loaded.model, loaded.tokenizer
    else:
        args = replace(cfg.model, model_name_or_path=path, adapter_name_or_path=(), train_from_scratch=False,
                       quantization_bit=cfg.ppo.reward_model_quantization_bit)
        reward_tokenizer = load_tokenizer(args)
        model = load_model(args, dtype, head="score", pad_token_id=reward_tokenizer.pad_token_id)
    for adapter in cfg.ppo.reward_model_adapters:
        rows = embedding_rows_of(adapter)
        if rows and rows != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(rows, mean_resizing=False)
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    if reward_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(f"`reward_model` {path} has another vocabulary than the policy: it scores the policy's "
                          "token ids, so it must use the same tokenizer (and the tokens added in this run)")
    logger.info("reward: full model %s%s", path,
                f" + adapters {', '.join(cfg.ppo.reward_model_adapters)}" if cfg.ppo.reward_model_adapters else "")
    return ModelReward(model)


def build_reward(cfg: Config, policy, tokenizer, dtype):
    kind = cfg.ppo.reward_model_type
    if kind == "api":
        logger.info("reward: scores from the endpoint %s", cfg.ppo.reward_model)
        return ApiReward(cfg.ppo.reward_model, tokenizer)
    if kind == "lora":
        logger.info("reward: lora adapter %s on the policy's base weights (no second copy)", cfg.ppo.reward_model)
        return AdapterReward(policy, cfg.ppo.reward_model)
    return load_full_reward(cfg, tokenizer, dtype)


def memory_facts(wrapper, reference, reward) -> dict:
    """Parameter bytes of the parts (shared storage counted once): the base weights, and what the value
    head, adapters, reference and reward add to them."""
    base = sum(p.numel() * p.element_size() for name, p in wrapper.policy.named_parameters()
               if "lora_" not in name and "modules_to_save" not in name)
    held = [wrapper, *reference.parameter_holders(), *reward.parameter_holders()]
    return {"base_weights_bytes": base, "total_parameter_bytes": parameter_bytes(*held),
            "reference_extra_bytes": reference.extra_bytes(wrapper.policy),
            "reward_extra_bytes": reward.extra_bytes(wrapper.policy)}


def train_with_rollouts(cfg: Config, plan: RunPlan, stage: Stage, prepared, policy: Policy, resume: str | None,
                        callbacks: list) -> RunResult:
    from ..plot import plot_loss
    from ..save import write_run_card
    from .ppo_loop import PPOTrainer

    tokenizer, data = prepared.tokenizer, prepared.data
    args = training_arguments(cfg, plan)
    reference = build_reference(cfg, plan, policy.model)
    reward = build_reward(cfg, policy.model, tokenizer, torch_dtype(plan.load_dtype))
    wrapper = PolicyWithValue(policy.model, policy.model.config.hidden_size)
    trainable, total = count_parameters(wrapper)
    memory = memory_facts(wrapper, reference, reward)
    logger.info("parameter memory: %.1f MB in all (base weights %.1f MB; reference adds %.1f MB, reward %.1f MB)",
                memory["total_parameter_bytes"] / 2**20, memory["base_weights_bytes"] / 2**20,
                memory["reference_extra_bytes"] / 2**20, memory["reward_extra_bytes"] / 2**20)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    prompts = [ex.input_ids for ex in data.train]
    trainer = PPOTrainer(cfg, args, wrapper, stage.loss(cfg), reference, reward, tokenizer, prepared.template,
                         prompts, callbacks=callbacks)
    history = trainer.train()
    trainer.save(cfg.output_dir)
    final_loss = history[-1]["loss"] if history else None
    if trainer.accelerator.is_main_process:
        write_run_card(cfg, cfg.output_dir, plan=plan.as_dict(), trainable_params=trainable, total_params=total,
                       global_step=trainer.state.global_step, train_loss=final_loss, examples=len(prompts),
                       added_tokens=prepared.added.ids, embedding_rows=policy.embedding_rows,
                       model_head="lm", value_head="value_head.safetensors",
                       reference={"kind": reference.kind, "extra_parameter_bytes": memory["reference_extra_bytes"]},
                       reward={"kind": reward.kind, "reward_model": cfg.ppo.reward_model,
                               "extra_parameter_bytes": memory["reward_extra_bytes"]},
                       memory=memory)
        if cfg.finetuning.plot_loss:
            for path in plot_loss(cfg.output_dir, keys=("loss", "reward", "kl")):
                logger.info("curve written to %s", path)
    logger.info("policy and value head saved to %s", cfg.output_dir)
    return RunResult(Path(cfg.output_dir), final_loss, trainer.state.global_step, trainable, total)
