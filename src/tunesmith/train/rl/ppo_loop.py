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
from contextlib import nullcontext
from pathlib import Path

import torch

from ...stages.base import LossContext
from ...stages.rl.batch import RolloutBatch, model_logprobs, policy_outputs
from ...stages.rl.losses import AdaptiveKLController, RunningMoments, gae, masked_whiten, token_rewards
from .generation import generate, rollout_generation_config
from .loop_base import RolloutLoop, UpdateMetrics

logger = logging.getLogger(__name__)

VALUE_HEAD_FILE = "value_head.safetensors"
LOGGED = ("loss", "policy_loss", "value_loss", "reward", "reward_std", "kl", "kl_coef", "clip_fraction",
          "value_clip_fraction", "response_length")


class PPOTrainer(RolloutLoop):
    name = "ppo"
    logged = LOGGED

    def __init__(self, cfg, args, model, loss, reference, reward, tokenizer, template, prompts: list[list[int]],
                 callbacks: list | None = None) -> None:
        self.reference, self.reward = reference, reward
        self.loss = loss  # the stage's loss (stages/ppo.py PPOLoss)
        self.hyper = loss.hyper
        self.update_metrics = UpdateMetrics()
        self.loss_context = LossContext(self.update_metrics)
        self.rollout_size = args.per_device_train_batch_size * args.gradient_accumulation_steps * \
            cfg.ppo.ppo_buffer_size
        super().__init__(cfg, args, model, tokenizer, template, prompts, self.rollout_size, 1, callbacks,
                         "per_device_train_batch_size x gradient_accumulation_steps x ppo_buffer_size")
        self.generation = rollout_generation_config(cfg.generating, self.stop_ids, self.pad_id)
        self.kl_ctl = AdaptiveKLController(self.hyper.init_kl_coef, cfg.ppo.ppo_target, self.hyper.kl_horizon)
        self.moments = RunningMoments() if cfg.ppo.ppo_score_norm else None

    @staticmethod
    def policy_of(model):
        return model.policy

    def describe(self) -> str:
        return (f"{self.rollout_size} prompts per process and step ({self.rollout_size // self.batch_size} "
                f"minibatches of {self.batch_size}, {self.cfg.ppo.ppo_epochs} PPO epochs, optimizer step every "
                f"{self.accumulation} minibatches), {self.steps_per_epoch} steps per epoch")

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
                    self.optimizer_step()
                self.update_metrics.record(loss=loss.detach())
                self.update_metrics.count += 1
        return self.update_metrics.collect()

    def step(self, prompts: list[list[int]]):
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
        yield stats

    # -- saving -----------------------------------------------------------------------------------------
    def save_extra(self, out: Path) -> None:
        """The value head beside the policy."""
        from safetensors.torch import save_file

        head = {k: v.detach().float().cpu().contiguous() for k, v in self.unwrapped.value_head.state_dict().items()}
        save_file(head, str(out / VALUE_HEAD_FILE))
