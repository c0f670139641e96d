"""GRPO math as pure functions, with TRL's GRPOTrainer semantics (checked against hand computations in
tests/stages/test_grpo_math.py).

A batch is groups of ``num_generations`` consecutive completions of one prompt. Per-token tensors are
(completions, completion length) with a 0/1 mask of real completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .losses import masked_mean

STD_EPS = 1e-4  # as TRL: advantages = (r - mean) / (std + 1e-4)


@dataclass(frozen=True)
class GRPOHyper:
    num_generations: int = 8
    scale_rewards: str = "group"  # group | batch | none
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo | bnpo
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float = 0.2
    max_completion_length: int = 512

    @classmethod
    def from_args(cls, grpo) -> GRPOHyper:
        return cls(grpo.num_generations, grpo.scale_rewards, grpo.loss_type, grpo.beta, grpo.epsilon,
                   grpo.epsilon if grpo.epsilon_high is None else grpo.epsilon_high, grpo.max_completion_length)


def weighted_rewards(per_func: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(N, F) rewards of each function (NaN where a function returned None) -> (N,) weighted sums; a
    completion no function scored is NaN (left out of the baselines, advantage 0)."""
    total = (per_func * weights[None, :]).nansum(-1)
    return torch.where(torch.isnan(per_func).all(-1), torch.full_like(total, float("nan")), total)


def nanstd(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Unbiased standard deviation ignoring NaN (n - 1 in the denominator, as torch.std)."""
    if dim is None:
        values, dim = values.reshape(-1), 0
    mean = torch.nanmean(values, dim=dim, keepdim=True)
    count = (~torch.isnan(values)).sum(dim)
    var = torch.nanmean((values - mean) ** 2, dim=dim) * count / (count - 1).clamp_min(1)
    return var.sqrt()


def group_advantages(rewards: torch.Tensor, num_generations: int, scale: str
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) rewards in groups of ``num_generations`` -> (advantages, zero_std): A = r - mean(group), divided by
    (std + 1e-4) of the group (``group``) or of the whole batch (``batch``), not scaled with ``none``;
    ``zero_std`` marks completions whose group's rewards are all equal."""
    grouped = rewards.view(-1, num_generations)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)
    group_std = nanstd(grouped, dim=1).repeat_interleave(num_generations)
    advantages = rewards - mean
    if scale == "group":
        advantages = advantages / (group_std + STD_EPS)
    elif scale == "batch":
        advantages = advantages / (nanstd(rewards) + STD_EPS)
    elif scale != "none":
        raise ValueError(f"scale_rewards must be group, batch or none, got {scale!r}")
    zero_std = torch.isclose(group_std, torch.zeros_like(group_std))
    return torch.nan_to_num(advantages, nan=0.0), zero_std


def per_token_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def clipped_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, eps_low: float,
                       eps_high: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A) per token, r = exp(logp - old_logp); ``advantages`` is
    (N,) per completion. Returns (loss, low-clipped, high-clipped): tokens whose ratio fell below 1 - eps_low
    with A < 0, or rose above 1 + eps_high with A > 0 (their gradient is cut)."""
    ratio = torch.exp(logps - old_logps)
    adv = advantages[:, None]
    loss = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv)
    low = ((ratio < 1 - eps_low) & (adv < 0)).float()
    high = ((ratio > 1 + eps_high) & (adv > 0)).float()
    return loss, low, high


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str, max_completion_length: int,
              window_tokens: float | None = None) -> torch.Tensor:
    """One micro-batch's loss as TRL aggregates it, before the division by the accumulation steps (which
    ``dapo`` does not take: its denominator ``window_tokens`` already counts every completion token of the
    accumulation window, per process):

    - grpo: mean over completions of each completion's token mean;
    - bnpo: sum over tokens / tokens of the micro-batch;
    - dr_grpo: sum over tokens / (completions x max_completion_length);
    - dapo: sum over tokens / window_tokens.
    """
    total = (per_token * mask).sum()
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp_min(1)).mean()
    if loss_type == "bnpo":
        return total / mask.sum().clamp_min(1)
    if loss_type == "dr_grpo":
        return total / (per_token.shape[0] * max_completion_length)
    if loss_type == "dapo":
        if window_tokens is None:
            raise ValueError("loss_type dapo needs the token count of the accumulation window")
        return total / max(window_tokens, 1.0)
    raise ValueError(f"unknown loss_type {loss_type!r}")


def divides_by_accumulation(loss_type: str) -> bool:
    return loss_type != "dapo"


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, hyper: GRPOHyper, window_tokens: float | None = None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The micro-batch loss (aggregated as ``hyper.loss_type``, not yet divided by the accumulation steps) and
    its metrics: kl (token mean), clip_ratio/low, clip_ratio/high, clip_ratio/region (token means)."""
    per_token, low, high = clipped_token_loss(logps, old_logps, advantages, hyper.epsilon, hyper.epsilon_high)
    metrics = {}
    if hyper.beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs the reference log-probs")
        kl = per_token_kl(logps, ref_logps)
        per_token = per_token + hyper.beta * kl
        metrics["kl"] = masked_mean(kl.detach(), mask)
    loss = aggregate(per_token, mask, hyper.loss_type, hyper.max_completion_length, window_tokens)
    metrics.update({"clip_ratio/low": masked_mean(low, mask), "clip_ratio/high": masked_mean(high, mask),
                    "clip_ratio/region": masked_mean(torch.maximum(low, high), mask)})
    return loss, metrics
