"""The PPO loop on accelerate: each step collects rollouts for
``per_device_train_batch_size * gradient_accumulation_steps * ppo_buffer_size`` prompts (generation by the
policy, scores from the reward, log-probs of the reference), turns them into per-token rewards (score on
the last reply token, KL penalty on every one) and GAE advantages, then runs ``ppo_epochs`` passes over
them in minibatches of ``per_device_train_batch_size``, stepping the optimizer every
``gradient_accumulation_steps`` minibatches. The learning rate schedule advances once per PPO step.

Logged per logging step (trainer_log.jsonl, as the other stages): loss, policy_loss, value_loss, reward,
reward_std, kl, kl_coef, clip_fraction, value_clip_fraction, response_length, lr.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext
from pathlib import Path

import torch

from ...config.errors import ConfigError
from ...model.compat import is_peft_model
from ...stages.base import LossContext
from ...stages.rl.batch import RolloutBatch, model_logprobs, policy_outputs
from ...stages.rl.losses import AdaptiveKLController, RunningMoments, gae, masked_whiten, token_rewards
from ...templates.stops import stop_token_ids
from ..callbacks.checkpoint_marker import mark_complete
from ..setup import create_optimizer, create_scheduler
from .generation import generate, rollout_generation_config

logger = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"
LOGGED = ("loss", "policy_loss", "value_loss", "reward", "reward_std", "kl", "kl_coef", "clip_fraction",
          "value_clip_fraction", "response_length")


class UpdateMetrics:
    """The loop's side of stages.base.MetricSink: the loss terms of each minibatch, averaged per PPO step."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def record(self, **values) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def observe_tokens(self, logits, labels) -> None:
        pass  # no special-token metrics on generated replies

    def collect(self) -> dict[str, float]:
        out = {key: value / max(self.count, 1) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


class PPOTrainer:
    def __init__(self, cfg, args, model, loss, reference, reward, tokenizer, template, prompts: list[list[int]],
                 callbacks: list | None = None) -> None:
        from accelerate import Accelerator
        from transformers import TrainerControl, TrainerState

        self.cfg, self.args, self.reference, self.reward, self.tokenizer = cfg, args, reference, reward, tokenizer
        self.loss = loss  # the stage's loss (stages/ppo.py PPOLoss)
        self.hyper = loss.hyper
        self.update_metrics = UpdateMetrics()
        self.loss_context = LossContext(self.update_metrics)
        mixed = "bf16" if args.bf16 else "fp16" if args.fp16 else "no"
        self.accelerator = Accelerator(mixed_precision=mixed)
        self.batch_size, self.accumulation = args.per_device_train_batch_size, args.gradient_accumulation_steps
        self.rollout_size = self.batch_size * self.accumulation * cfg.ppo.ppo_buffer_size
        world = self.accelerator.num_processes
        if len(prompts) < self.rollout_size * world:
            raise ConfigError(f"stage ppo: {len(prompts)} prompts are fewer than one PPO step needs "
                              f"({self.rollout_size * world} = per_device_train_batch_size x "
                              "gradient_accumulation_steps x ppo_buffer_size x processes)")
        if args.gradient_checkpointing:  # recompute activations in the updates; generation keeps its cache
            model.policy.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs or {"use_reentrant": False})
        generator = torch.Generator().manual_seed(args.seed)
        loader = torch.utils.data.DataLoader(prompts, batch_size=self.rollout_size, drop_last=True,
                                             shuffle=not cfg.data.disable_shuffling, generator=generator,
                                             collate_fn=list)
        self.rng = torch.Generator().manual_seed(args.seed)
        optimizer = create_optimizer(model, args)
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.steps_per_epoch = len(self.loader)
        self.max_steps = args.max_steps if args.max_steps > 0 else \
            math.ceil(args.num_train_epochs * self.steps_per_epoch)
        self.scheduler = create_scheduler(self.optimizer, args, self.max_steps)
        self.stop_ids = stop_token_ids(tokenizer, template)
        self.pad_id = tokenizer.pad_token_id
        self.generation = rollout_generation_config(cfg.generating, self.stop_ids, self.pad_id)
        self.kl_ctl = AdaptiveKLController(self.hyper.init_kl_coef, cfg.ppo.ppo_target, self.hyper.kl_horizon)
        self.moments = RunningMoments() if cfg.ppo.ppo_score_norm else None
        self.state = TrainerState(max_steps=self.max_steps, logging_steps=args.logging_steps)
        self.state.is_world_process_zero = self.accelerator.is_main_process
        self.control = TrainerControl()
        self.callbacks = callbacks or []
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    # -- one PPO step -----------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: list[list[int]]) -> dict:
        """Replies, scores and the per-token tensors the updates need (on the CPU, shared width)."""
        wrapper = self.unwrapped
        policy, device = wrapper.policy, self.accelerator.device
        wrapper.eval()
        replies: list[list[int]] = []
        for start in range(0, len(prompts), self.batch_size):
            replies += generate(policy, prompts[start:start + self.batch_size], self.generation, self.stop_ids,
                                self.pad_id)
        batch = RolloutBatch.build(prompts, replies, self.pad_id)
        width = batch.reply_width
        scores, logps, values, ref_logps = [], [], [], []
        for start in range(0, len(prompts), self.batch_size):
            sub = batch.select(torch.arange(start, min(start + self.batch_size, len(prompts))))
            scores.append(self.reward(policy, sub).float())
            sub = sub.to(device)
            with self.accelerator.autocast():
                lp, v = policy_outputs(wrapper, sub, width)
                ref = self.reference.run(policy, lambda m: model_logprobs(m, sub, width))
            logps.append(lp.float().cpu())
            values.append(v.float().cpu())
            ref_logps.append(ref.float().cpu())
        return {"batch": batch, "width": width, "scores": torch.cat(scores), "logps": torch.cat(logps),
                "values": torch.cat(values), "ref_logps": torch.cat(ref_logps), "mask": batch.reply_mask()}

    def advantages(self, roll: dict) -> dict:
        hyper, mask = self.hyper, roll["mask"]
        scores = self.moments.normalise(roll["scores"]) if self.moments is not None else roll["scores"]
        rewards, kl = token_rewards(scores, roll["logps"], roll["ref_logps"], mask, self.kl_ctl.value)
        if self.cfg.ppo.ppo_whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        adv, returns = gae(rewards, roll["values"], mask, hyper.gamma, hyper.lam)
        return {**roll, "advantages": masked_whiten(adv, mask), "returns": returns, "kl": kl}

    def update(self, roll: dict) -> dict[str, float]:
        """``ppo_epochs`` passes over the rollouts; returns the mean losses and clip fractions."""
        device, acc = self.accelerator.device, self.accelerator
        self.model.train()
        n = len(roll["scores"])
        for _ in range(self.cfg.ppo.ppo_epochs):
            order = torch.randperm(n, generator=self.rng)
            for k, start in enumerate(range(0, n, self.batch_size)):
                idx = order[start:start + self.batch_size]
                minibatch = {key: roll[key][idx].to(device) for key in ("logps", "values", "advantages",
                                                                         "returns", "mask")}
                minibatch.update(rollout=roll["batch"].select(idx).to(device), width=roll["width"])
                sync = (k + 1) % self.accumulation == 0
                with (nullcontext() if sync else acc.no_sync(self.model)):
                    with acc.autocast():  # the forward pass; the loss terms are float32 element-wise math
                        loss = self.loss(self.loss_context, self.model, minibatch)
                    acc.backward(loss / self.accumulation)
                if sync:
                    if self.args.max_grad_norm and self.args.max_grad_norm > 0:
                        acc.clip_grad_norm_(self.trainable, self.args.max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                self.update_metrics.record(loss=loss.detach())
                self.update_metrics.count += 1
        return self.update_metrics.collect()

    def step(self, prompts: list[list[int]]) -> dict[str, float]:
        roll = self.advantages(self.rollout(prompts))
        stats = self.update(roll)
        self.scheduler.step()
        scores, mask = roll["scores"], roll["mask"]
        sequence_kl = roll["kl"].sum(-1).mean()
        reduced = self.accelerator.reduce(torch.tensor([scores.mean().item(), scores.std(unbiased=False).item(),
                                                        sequence_kl.item(), mask.sum(-1).mean().item()],
                                                       device=self.accelerator.device), reduction="mean").tolist()
        stats.update(reward=reduced[0], reward_std=reduced[1], kl=reduced[2], response_length=reduced[3],
                     kl_coef=self.kl_ctl.value)
        self.kl_ctl.update(reduced[2], len(scores) * self.accelerator.num_processes)
        return stats

    # -- the run ----------------------------------------------------------------------------------------
    def _batches(self):
        while True:
            yield from self.loader

    def train(self) -> list[dict]:
        from tqdm.auto import tqdm

        args, acc = self.args, self.accelerator
        logger.info("ppo: %d steps of %d prompts per process (%d minibatches of %d, %d PPO epochs, optimizer "
                    "step every %d minibatches), %d steps per epoch", self.max_steps, self.rollout_size,
                    self.rollout_size // self.batch_size, self.batch_size, self.cfg.ppo.ppo_epochs,
                    self.accumulation, self.steps_per_epoch)
        self._callbacks("on_train_begin")
        window: list[dict] = []
        history: list[dict] = []
        save_every = self._save_every()
        bar = tqdm(total=self.max_steps, desc="ppo", disable=args.disable_tqdm or not acc.is_local_main_process)
        for prompts in self._batches():
            if self.state.global_step >= self.max_steps:
                break
            stats = self.step(prompts)
            window.append(stats)
            history.append(stats)
            self.state.global_step += 1
            self.state.epoch = self.state.global_step / self.steps_per_epoch
            bar.update(1)
            bar.set_postfix(reward=f"{stats['reward']:.3f}", kl=f"{stats['kl']:.3f}")
            last = self.state.global_step == self.max_steps
            if self.state.global_step % max(int(args.logging_steps), 1) == 0 or last:
                logs = {key: sum(s[key] for s in window) / len(window) for key in LOGGED}
                logs["learning_rate"] = self.scheduler.get_last_lr()[0]
                self.state.log_history.append({**logs, "step": self.state.global_step})
                self._callbacks("on_log", logs=logs)
                window = []
            if save_every and self.state.global_step % save_every == 0 and not last:
                self.save_checkpoint()
        bar.close()
        self._callbacks("on_train_end")
        return history

    def _callbacks(self, event: str, **kwargs) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.args, self.state, self.control, **kwargs)

    def _save_every(self) -> int:
        if self.args.save_strategy != "steps" or not self.args.save_steps:
            return 0
        steps = self.args.save_steps
        return int(steps) if steps >= 1 else max(1, math.ceil(self.max_steps * steps))

    # -- saving -----------------------------------------------------------------------------------------
    def save(self, output_dir: str | Path) -> None:
        """The policy as usual (full model or its own peft adapter), the tokenizer, and the value head."""
        from safetensors.torch import save_file

        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
            wrapper = self.unwrapped
            policy = wrapper.policy
            if is_peft_model(policy):
                policy.save_pretrained(str(out), selected_adapters=["default"])
            else:
                policy.save_pretrained(str(out))
            self.tokenizer.save_pretrained(str(out))
            head = {k: v.detach().float().cpu().contiguous() for k, v in wrapper.value_head.state_dict().items()}
            save_file(head, str(out / VALUE_HEAD_FILE))
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self) -> None:
        """checkpoint-N with the policy and value head, marked complete once everything is written."""
        folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
        self.save(folder)
        if self.accelerator.is_main_process:
            mark_complete(folder, self.state.global_step)
