"""The GRPO loop on accelerate (TRL's GRPOTrainer semantics): ``per_device_train_batch_size`` counts
completions, as in TRL. Each generation batch holds ``per_device_train_batch_size x
gradient_accumulation_steps`` completions per process: that many / ``num_generations`` prompts, each sampled
``num_generations`` times (batched HF generate with the KV cache). The completions are scored by every reward
(weighted sum), rewards become group-normalised advantages (``scale_rewards``), and ``num_iterations``
optimizer steps each pass over the batch in ``gradient_accumulation_steps`` micro-batches. max_steps and the
learning-rate schedule count optimizer steps.

Logged per logging step: loss, reward, reward_std, rewards/<name>/mean and /std, advantages/mean, /std,
/min, /max, frac_reward_zero_std, kl (beta != 0), clip_ratio/low, /high, /region, completion_length (mean,
/min, /max), completions/truncated, learning_rate. Sample completions with their rewards go to
completions.jsonl in output_dir at each logging step (`log_completions`).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch

from ...stages.base import LossContext
from ...stages.grpo import completion_logps
from ...stages.preference.shared_prompt import pack_shared
from ...stages.rl.batch import RolloutBatch
from ...stages.rl.grpo_math import divides_by_accumulation, group_advantages, nanstd, weighted_rewards
from .generation import generate, rollout_generation_config
from .loop_base import RolloutLoop, UpdateMetrics
from .reward_funcs import RewardInputs

COMPLETIONS_FILE = "completions.jsonl"


def shared_layout(prompts: list[list[int]], completions: list[list[int]], pad_id: int) -> dict:
    """Consecutive completions of one prompt share one row (a micro-batch holds whole or partial groups)."""
    groups: list[tuple[list[int], list[list[int]]]] = []
    for prompt, completion in zip(prompts, completions):
        if groups and groups[-1][0] is prompt:
            groups[-1][1].append(completion)
        else:
            groups.append((prompt, [completion]))
    return pack_shared([p for p, _ in groups], [c for _, c in groups], pad_id)


class GRPOTrainer(RolloutLoop):
    name = "grpo"

    def __init__(self, cfg, args, model, loss, reference, rewards, tokenizer, template, items: list[dict],
                 shared_prompt: bool, callbacks: list | None = None) -> None:
        self.loss, self.hyper = loss, loss.hyper
        self.reference, self.rewards, self.shared_prompt = reference, rewards, shared_prompt
        self.group = cfg.grpo.num_generations
        self.completions_per_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps
        super().__init__(cfg, args, model, tokenizer, template, items, self.completions_per_batch // self.group,
                         cfg.grpo.num_iterations, callbacks,
                         "per_device_train_batch_size x gradient_accumulation_steps / num_generations")
        self.update_metrics = UpdateMetrics()
        self.loss_context = LossContext(self.update_metrics)
        generating = replace(cfg.generating, max_new_tokens=cfg.grpo.max_completion_length)
        self.generation = rollout_generation_config(generating, self.stop_ids, self.pad_id)
        weights = cfg.grpo.reward_weights or (1.0,) * len(rewards.names)
        self.weights = torch.tensor(weights, dtype=torch.float32)
        self.logged = ("loss", "reward", "reward_std",
                       *(f"rewards/{n}/{s}" for n in rewards.names for s in ("mean", "std")),
                       "advantages/mean", "advantages/std", "advantages/min", "advantages/max",
                       "frac_reward_zero_std", "kl", "clip_ratio/low", "clip_ratio/high", "clip_ratio/region",
                       "completion_length", "completion_length/min", "completion_length/max",
                       "completions/truncated")
        self.samples: list[dict] = []

    def describe(self) -> str:
        return (f"{self.completions_per_batch // self.group} prompts x {self.group} completions per process and "
                f"generation batch, {self.hyper.loss_type} loss, {self.cfg.grpo.num_iterations} optimizer step(s) "
                f"per batch over {self.accumulation} micro-batches of {self.batch_size}, "
                f"{'shared-prompt rows' if self.shared_prompt else 'one row per completion'}, "
                f"{self.steps_per_epoch} steps per epoch")

    # -- one generation batch ----------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, items: list[dict]) -> dict:
        acc, model = self.accelerator, self.unwrapped
        model.eval()
        prompts = [it["prompt"] for it in items for _ in range(self.group)]
        completions = generate(model, prompts, self.generation, self.stop_ids, self.pad_id)
        stops = set(self.stop_ids)
        truncated = torch.tensor([c[-1] not in stops for c in completions])
        texts = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        inputs = RewardInputs(prompts=[it["prompt_text"] for it in items for _ in range(self.group)],
                              completions=texts, completion_ids=completions,
                              solution=[it["solution"] for it in items for _ in range(self.group)],
                              step=self.state.global_step)
        per_func = self.rewards(inputs, model, RolloutBatch.build(prompts, completions, self.pad_id))
        everyone = acc.gather(per_func.to(acc.device)).float().cpu()  # groups never span processes
        totals = weighted_rewards(everyone, self.weights)
        advantages, zero_std = group_advantages(totals, self.group, self.hyper.scale_rewards)
        n = len(completions)
        mine = slice(acc.process_index * n, (acc.process_index + 1) * n)
        lengths = torch.tensor([len(c) for c in completions], dtype=torch.float32)
        loss_mask = (~truncated).float() if self.cfg.grpo.mask_truncated_completions else torch.ones(n)
        stats = {"reward": torch.nanmean(totals).item(), "reward_std": nanstd(totals).item(),
                 "advantages/mean": advantages.mean().item(), "advantages/std": advantages.std().item(),
                 "advantages/min": advantages.min().item(), "advantages/max": advantages.max().item(),
                 "frac_reward_zero_std": zero_std.float().mean().item()}
        for k, name in enumerate(self.rewards.names):
            stats[f"rewards/{name}/mean"] = torch.nanmean(everyone[:, k]).item()
            stats[f"rewards/{name}/std"] = nanstd(everyone[:, k]).item()
        local = torch.tensor([lengths.mean().item(), -lengths.min().item(), lengths.max().item(),
                              truncated.float().mean().item(), float((lengths * loss_mask).sum())], device=acc.device)
        reduced = acc.reduce(local, reduction="mean").tolist()
        stats.update({"completion_length": reduced[0], "completion_length/min": -reduced[1],
                      "completion_length/max": reduced[2], "completions/truncated": reduced[3]})
        self.samples = [{"step": self.state.global_step + 1, "prompt": p, "completion": c, "solution": s,
                         "rewards": {name: (None if v != v else v) for name, v in zip(self.rewards.names, row)},
                         "advantage": a, "tokens": len(ids)} for p, c, s, row, a, ids in
                        zip(inputs.prompts, texts, inputs.solution, per_func.tolist(), advantages[mine].tolist(),
                            completions)]
        batches = [self.micro_batch(prompts[i:i + self.batch_size], completions[i:i + self.batch_size],
                                    advantages[mine][i:i + self.batch_size], loss_mask[i:i + self.batch_size])
                   for i in range(0, n, self.batch_size)]
        for batch in batches:
            batch["window_tokens"] = reduced[4]
            self.score_old_and_reference(batch)
        return {"batches": batches, "stats": stats}

    def micro_batch(self, prompts, completions, advantages, loss_mask) -> dict:
        width = max(len(c) for c in completions)
        batch = {"width": width, "advantages": advantages, "loss_mask": loss_mask}
        if self.shared_prompt:
            batch["shared"] = shared_layout(prompts, completions, self.pad_id)
        else:
            batch["rollout"] = RolloutBatch.build(prompts, completions, self.pad_id)
        return batch

    def on_device(self, batch: dict) -> dict:
        device = self.accelerator.device
        out = dict(batch)
        if "shared" in batch:
            out["shared"] = {k: v.to(device) for k, v in batch["shared"].items()}
        else:
            out["rollout"] = batch["rollout"].to(device)
        for key in ("advantages", "loss_mask", "old_logps", "ref_logps"):
            if key in batch:
                out[key] = batch[key].to(device)
        return out

    def score_old_and_reference(self, batch: dict) -> None:
        """The policy's log-probs at generation time (only needed when a batch serves several optimizer
        steps) and the reference's (beta != 0), on the CPU beside the batch."""
        if self.cfg.grpo.num_iterations > 1 or self.reference is not None:
            on_device = self.on_device(batch)
            with self.accelerator.autocast():
                if self.cfg.grpo.num_iterations > 1:
                    batch["old_logps"] = completion_logps(self.model, on_device)[0].float().cpu()
                if self.reference is not None:
                    batch["ref_logps"] = self.reference.run(
                        self.unwrapped, lambda m: completion_logps(m, on_device)[0]).float().cpu()

    def step(self, items: list[dict]):
        acc = self.accelerator
        roll = self.rollout(items)
        divide = divides_by_accumulation(self.hyper.loss_type)
        for _ in range(self.cfg.grpo.num_iterations):
            self.model.train()
            total = 0.0
            for k, batch in enumerate(roll["batches"]):
                sync = k + 1 == len(roll["batches"])
                with (nullcontext() if sync else acc.no_sync(self.model)):
                    with acc.autocast():
                        loss = self.loss(self.loss_context, self.model, self.on_device(batch))
                    loss = loss / self.accumulation if divide else loss
                    acc.backward(loss)
                total += float(loss.detach())
                self.update_metrics.count += 1
            self.optimizer_step()
            self.scheduler.step()
            stats = {**roll["stats"], **self.update_metrics.collect(), "loss": total}
            if acc.num_processes > 1:
                keys = sorted(stats)
                values = acc.reduce(torch.tensor([stats[k] for k in keys], device=acc.device), reduction="mean")
                stats = dict(zip(keys, values.tolist()))
            yield stats

    def on_log(self, stats: dict) -> None:
        if not self.cfg.grpo.log_completions:
            return
        count = self.cfg.grpo.num_completions_to_print
        samples = self.samples if count is None else self.samples[:count]
        path = Path(self.args.output_dir) / COMPLETIONS_FILE
        with path.open("a", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps(sample, ensure_ascii=False) + "\n")
